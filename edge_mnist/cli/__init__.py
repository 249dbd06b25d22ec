"""The `edge-mnist` command line: a thin click layer over the library.

Options are parsed here, the work is done by the stage functions, and results are printed
here. Heavy imports (TensorFlow, tf2onnx, tfmot) happen inside the stages that need them, so
bench, check and predict run on a device with only the runtime installed. Every expected
failure is one line on stderr with exit code 2 (bad input) or 1 (gate failed); --debug
shows the traceback.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from edge_mnist.bench import bench
from edge_mnist.check import evaluate
from edge_mnist.core.errors import EdgeMnistError, GateFailed
from edge_mnist.core.progress import say, set_quiet
from edge_mnist.core.tfenv import import_tf
from edge_mnist.data import DEFAULT_DATASET, load_dataset, load_for_folder, need_folder
from edge_mnist.debug import debug
from edge_mnist.emulate import NOTE, emulate, known_cpus
from edge_mnist.export import export
from edge_mnist.folder.layout import BENCH_FILE, DEBUG_FILE, DEBUG_PLOT, EMULATE_FILE
from edge_mnist.folder.records import Manifest
from edge_mnist.gate import Criteria
from edge_mnist.info import gather, render
from edge_mnist.pipeline import run
from edge_mnist.predict import describe, predict
from edge_mnist.quantize.fallback import Request
from edge_mnist.registry.datasets import DATASETS
from edge_mnist.registry.formats import METHODS, OPTIONAL_RUNTIMES
from edge_mnist.registry.models import ARCHITECTURES
from edge_mnist.render.tables import (
    BENCH_HEADERS,
    EMULATE_HEADERS,
    UNTIMED_NOTE,
    bench_rows,
    check_text,
    emulate_rows,
    failure_line,
    mixed_note,
    prepare_report_path,
    rounded,
    table,
    verdict_json,
    write_reports,
)
from edge_mnist.report import report
from edge_mnist.train import STRATEGIES, TrainConfig
from edge_mnist.train import train as train_model
from edge_mnist.train.user_model import import_model

DEFAULT_OUT = Path("export")
GATE = Criteria()
METHOD_CHOICES = [m for m in METHODS if m != "float"] + ["both"]


def _say(msg: str) -> None:
    """Progress to stderr so stdout stays for results (silent under --quiet)."""
    say(msg)


def _methods(method: str) -> tuple[str, ...]:
    """--method value -> the quantization methods to export."""
    return tuple(m for m in METHODS if m != "float") if method == "both" else (method,)


out_option = click.option("--out", "out", type=click.Path(path_type=Path), default=DEFAULT_OUT, show_default=True,
                          help="Artifact folder.")


class _CommandHelp(click.Option):
    """An option several commands share whose help text is each command's own: `helps` maps a command name
    to its text, "*" to the text for the others."""

    def __init__(self, *args, helps: dict[str, str], **kwargs):
        """Keep the texts; click's own help is set when the help is shown."""
        super().__init__(*args, **kwargs)
        self.helps = helps

    def get_help_record(self, ctx):
        """The help line with the text of the command being shown."""
        self.help = self.helps.get(ctx.info_name, self.helps["*"])
        return super().get_help_record(ctx)


FOLDER_DATASET = "The folder's dataset (recorded at training) is used; naming another one is an error."
dataset_option = click.option("--dataset", type=click.Choice(list(DATASETS)), default=None, cls=_CommandHelp, helps={
    "train": f"Dataset to train on (default: {DEFAULT_DATASET}).",
    "run": f"Dataset to train on, or to import --model for (default: {DEFAULT_DATASET}).",
    "export": f"{FOLDER_DATASET} With --model: the dataset the model is for (default: {DEFAULT_DATASET}).",
    "*": FOLDER_DATASET})
data_dir_option = click.option("--data-dir", type=click.Path(path_type=Path), default=None,
                               help="Folder with the dataset's .npz or its four IDX .gz files (offline use).")
threads_option = click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True,
                              help="Threads for every runtime (fixed, so figures are comparable).")
skip_runtime_option = click.option(
    "--skip-runtime", "skip_runtimes", multiple=True, type=click.Choice(list(OPTIONAL_RUNTIMES)),
    help="Leave an optional runtime out (tflm: TensorFlow Lite Micro's reference kernels take milliseconds "
         "per image); said in the results.")
skip_qat_source_option = click.option(
    "--skip-qat-source", is_flag=True,
    help="Leave out disagreement and per-class drop of QAT artifacts against their QAT Keras model "
         "(for a device without TensorFlow); said in the verdict.")
seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Seed for training and sampling.")
method_option = click.option("--method", type=click.Choice(METHOD_CHOICES), default="ptq", show_default=True,
                             help="int8 by post-training quantization, quantization-aware training, or both.")
calib_option = click.option("--calib-samples", type=click.IntRange(1), default=500, show_default=True,
                            help="Training images used to calibrate int8 ranges.")
qat_epochs_option = click.option("--qat-epochs", type=click.IntRange(1), default=1, show_default=True,
                                 help="Epochs of quantization-aware fine-tuning.")
batch_option = click.option("--batch-size", type=click.IntRange(1), default=128, show_default=True,
                            help="Training batch size.")


def _options(*options):
    """Apply several click options in the order listed."""
    def apply(func):
        for option in reversed(options):
            func = option(func)
        return func
    return apply


training_options = _options(
    out_option, dataset_option, data_dir_option,
    click.option("--epochs", type=click.IntRange(1), default=2, show_default=True, cls=_CommandHelp, helps={
        "run": "Passes over the training set (not used with --model, which is imported, not trained).",
        "*": "Passes over the training set."}),
    batch_option, seed_option,
    click.option("--arch", "architecture", type=click.Choice(list(ARCHITECTURES)), default="reference_cnn",
                 show_default=True, help="Architecture to train (listed below)."),
    click.option("--augment", is_flag=True, help="Random rotation, shift and zoom of the training images "
                                                 "(the notebooks' ranges; recorded in history.json)."),
    click.option("--strategy", type=click.Choice(STRATEGIES), default="default", show_default=True,
                 help="tf.distribute: mirrored = every local GPU (or --devices CPUs); multiworker = the "
                      "cluster in TF_CONFIG. The batch size is per replica."),
    click.option("--devices", type=click.IntRange(1, 64), default=None,
                 help="With --strategy mirrored: this many logical CPU devices (testing without GPUs)."))
ARCH_EPILOG = ("\b\nArchitectures (--arch): C32:3 = Conv 32 3x3 (C32:5s: 5x5 'same'), P = MaxPool 2x2, D0.5 = Dropout,"
               "\n B = BatchNorm, F = Flatten, H128 = Dense 128; hidden layers ReLU, then a Dense softmax.\n"
               + "\n".join(f"  {a.describe()}" for a in ARCHITECTURES.values()))
model_option = click.option("--model", "model", type=click.Path(path_type=Path), default=None,
                            help="Your own Keras model (.keras from Keras 3 or tf_keras, or .h5): 28x28x1 input, "
                                 "one output per class. It becomes DIR's float reference; nothing is trained.")

gate_options = _options(
    click.option("--tolerance", type=float, default=GATE.tolerance_pp, show_default=True,
                 help="Max accuracy drop of an int8 artifact below float, in percentage points (pp)."),
    click.option("--relative", type=float, default=GATE.relative_pct,
                 help="Max accuracy drop relative to float, in percent of the float accuracy."),
    click.option("--min-accuracy", type=float, default=GATE.min_accuracy,
                 help="Minimum accuracy of every int8 artifact, a fraction 0..1 (0.9 means 90.00%)."),
    click.option("--max-disagreement", type=float, default=GATE.max_disagreement_pct, show_default=True,
                 help="Max percent of test images where an int8 artifact and its source model disagree."),
    click.option("--max-class-drop", type=float, default=GATE.max_class_drop_pp, show_default=True,
                 help="Max accuracy drop of any single class, in percentage points."),
    click.option("--parity", type=float, default=GATE.parity, show_default=True,
                 help="Min share of images on which the int8 artifacts of one group agree, a fraction 0..1 "
                      "(0.99 means 99.00%)."),
    click.option("--baseline", type=click.Path(path_type=Path), default=None,
                 help="An earlier bench.json (e.g. the last release's): each int8 artifact may fall at most "
                      "--tolerance below its accuracy there."))


fallback_options = _options(
    click.option("--fallback", is_flag=True,
                 help="Keep the fewest layers of the post-training int8 files float, by `debug`'s ranking, until "
                      "the .tflite and .onnx pass the gate (its options below); exit 1 if no mix does."),
    click.option("--max-float-layers", type=click.IntRange(1), default=None,
                 help="With --fallback: at most this many float layers."))


def _fallback_request(fallback: bool, max_float_layers: int | None, criteria: Criteria):
    """--fallback options -> a fallback.Request, or None without --fallback."""

    if max_float_layers is not None and not fallback:
        raise EdgeMnistError("--max-float-layers goes with --fallback")
    return Request(criteria, max_float_layers) if fallback else None


def _criteria(tolerance, relative, min_accuracy, max_disagreement, max_class_drop, parity, baseline) -> Criteria:
    """Gate options -> validated Criteria (NaN, negative and out-of-range limits are refused)."""
    return Criteria(tolerance, relative, min_accuracy, max_disagreement, max_class_drop, parity, baseline).validate()


@click.group()
@click.option("--debug", is_flag=True, help="Show tracebacks and TensorFlow's own logging.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or stage messages on stderr; results and "
                                                  "errors are still printed.")
@click.version_option(package_name="edge-mnist")
def cli(debug, quiet):
    """Train, int8-quantize, export, benchmark and gate the reference MNIST CNN for edge devices.

    Progress goes to stderr: bars with rate and ETA on a terminal, a plain line every few seconds
    in a log."""
    set_quiet(quiet)
    if debug:
        os.environ["EDGE_MNIST_DEBUG"] = "1"


@cli.command(epilog=ARCH_EPILOG)
@training_options
@click.option("--mixed-precision", is_flag=True, help="mixed_float16 on a GPU; ignored (float32) on the CPU.")
def train(out, dataset, data_dir, mixed_precision, **training):
    """Train an architecture (GPU when TensorFlow sees one, else CPU)."""

    import_tf()
    data = load_dataset(dataset or DEFAULT_DATASET, data_dir)
    _say(f"dataset {data.name} from {data.source}: {len(data.x_train)} train / {len(data.x_test)} test images")
    history = train_model(data, out, TrainConfig(**training, mixed_precision=mixed_precision))
    _report_training(history, out)


def _report_training(history: dict, out: Path) -> None:
    """One line on where and how well training went (or where an imported model came from)."""
    if "source_model" in history:
        _say(f"imported {history['source_model']['path']} (Keras {history['source_model']['keras_version']}): "
             f"{history['parameters']:,} parameters, test accuracy {history['test_accuracy']:.4f}")
        return
    dev = history["device"]
    if not history.get("chief", True):
        _say(f"worker done (test accuracy {history['test_accuracy']:.4f}); the chief worker writes the model")
        return
    if dev["note"]:
        _say(dev["note"])
    ips = history["history"]["images_per_second"]
    _say(f"trained on {dev['device']} ({dev['policy']}): test accuracy {history['test_accuracy']:.4f}, "
         f"{ips[-1]:.0f} images/s in the last epoch; wrote model, history.json and training_curves.png to {out}")


@cli.command("export")
@out_option
@dataset_option
@data_dir_option
@click.option("--int8", "int8", is_flag=True, help="Also write int8 artifacts (full-integer TFLite and ONNX).")
@method_option
@calib_option
@qat_epochs_option
@batch_option
@seed_option
@model_option
@fallback_options
@gate_options
def export_cmd(out, dataset, data_dir, int8, method, calib_samples, qat_epochs, batch_size, seed, model, fallback,
               max_float_layers, **gate):
    """Export float TFLite/ONNX and, with --int8, int8 artifacts, plus manifest.json."""

    request = _fallback_request(fallback, max_float_layers, _criteria(**gate))
    if request is not None and not int8:
        raise EdgeMnistError("--fallback goes with --int8")
    import_tf()
    if model is not None:

        data = load_dataset(dataset or DEFAULT_DATASET, data_dir)
        _report_training(import_model(model, out, data), out)
    need_folder(out)
    data = load_for_folder(out, dataset, data_dir)
    methods = _methods(method) if int8 else ("float",)
    manifest = export(out, data, methods, calib_samples, seed, qat_epochs, batch_size, progress=_say,
                      fallback=request)
    _say(f"float accuracy {manifest.float_accuracy:.4f}; wrote {len(manifest.artifacts)} artifacts and "
         f"manifest.json to {out}")


@cli.command("bench")
@out_option
@dataset_option
@data_dir_option
@threads_option
@click.option("--runs", type=click.IntRange(1), default=1000, show_default=True, help="Timed single-image runs.")
@click.option("--warmup", type=click.IntRange(0), default=100, show_default=True, help="Untimed runs first.")
@skip_runtime_option
def bench_cmd(out, dataset, data_dir, threads, runs, warmup, skip_runtimes):
    """Accuracy and latency of every artifact (LiteRT, ONNX Runtime, Keras and TFLM if installed)."""

    need_folder(out)
    result = bench(out, load_for_folder(out, dataset, data_dir), threads=threads, runs=runs, warmup=warmup,
                   progress=_say, skip_runtimes=skip_runtimes)
    _print_bench(result, out)


def _print_bench(result, out: Path) -> None:
    """The bench table and how it was measured."""

    float_layers = Manifest.load(out).float_layers()
    click.echo(table(BENCH_HEADERS, bench_rows(result, float_layers)))
    if any(row.latency_us is None for row in result.rows):
        click.echo(UNTIMED_NOTE)
    if float_layers:
        click.echo(mixed_note(float_layers))
    click.echo(f"{result.n_samples} test images, {result.threads} thread(s), {result.timing['runs']} timed runs "
               f"after {result.timing['warmup']} warm-up; wrote {out / BENCH_FILE}")


# What `check` and `report` share: the folder, its data, and how the gate runs on it.
gate_run_options = _options(out_option, dataset_option, data_dir_option, threads_option, gate_options,
                            skip_qat_source_option, skip_runtime_option)
STDOUT = Path("-")  # check's bare --json: print the JSON instead of the text


@cli.command("check")
@gate_run_options
@click.option("--json", "json_path", type=click.Path(path_type=Path), is_flag=False, flag_value=STDOUT,
              default=None, metavar="[PATH]",
              help="The verdict as JSON (6 significant digits): --json alone prints it instead of the text, like "
                   "predict's and info's --json; --json PATH writes it to a file for CI (DIR/check.json is "
                   "shown by `edge-mnist info`).")
@click.option("--junit", "junit_path", type=click.Path(path_type=Path), default=None, help="Write JUnit XML.")
@click.option("--markdown", "md_path", type=click.Path(path_type=Path), default=None,
              help="Append a Markdown summary (default: $GITHUB_STEP_SUMMARY when set).")
def check_cmd(out, dataset, data_dir, threads, tolerance, relative, min_accuracy, max_disagreement, max_class_drop,
              parity, baseline, skip_qat_source, skip_runtimes, json_path, junit_path, md_path):
    """CI gate: runs every int8 artifact and the float model on the test set; exit 0 when every int8
    artifact is within the limits, 1 when one is not, 2 on bad input.

    Prints each file's checks as sentences ("accuracy 81.00% vs float 80.80%: drop 0.20 pp, tolerance
    0.50 pp"): accuracies and shares of images in %, accuracy differences in percentage points (pp),
    with 2 decimals (more where needed to tell a value from its limit). --min-accuracy and --parity
    are given as fractions (0.9 is shown as 90.00%)."""

    criteria = _criteria(tolerance, relative, min_accuracy, max_disagreement, max_class_drop, parity, baseline)
    need_folder(out)
    json_path, junit_path, md_path = (p if p == STDOUT else prepare_report_path(p, out, _say)
                                      for p in (json_path, junit_path, md_path or _step_summary()))
    verdict = evaluate(out, load_for_folder(out, dataset, data_dir), criteria, threads, skip_qat_source, skip_runtimes)
    _conclude(verdict, json_path, junit_path, md_path)


def _step_summary() -> Path | None:
    """GitHub's step-summary file, when running in GitHub Actions."""
    summary_env = os.environ.get("GITHUB_STEP_SUMMARY")
    return Path(summary_env) if summary_env else None


def _conclude(verdict, json_path=None, junit_path=None, md_path=None) -> None:
    """Print the gate's verdict (as text, or as JSON for a bare --json), write its report files, and raise
    GateFailed on a failure."""

    to_stdout = json_path == STDOUT
    click.echo(json.dumps(verdict_json(verdict), indent=2) if to_stdout else check_text(verdict))
    write_reports(verdict, None if to_stdout else json_path, junit_path, md_path)
    if not verdict.passed:
        raise GateFailed(failure_line(verdict))


@cli.command("run", epilog=ARCH_EPILOG)
@training_options
@model_option
@method_option
@calib_option
@qat_epochs_option
@threads_option
@gate_options
@skip_runtime_option
@fallback_options
def run_cmd(out, dataset, data_dir, model, method, calib_samples, qat_epochs, threads, tolerance, relative,
            min_accuracy, max_disagreement, max_class_drop, parity, baseline, skip_runtimes, fallback,
            max_float_layers, **training):
    """The main job: train (or import --model) -> export --int8 -> bench -> check -> report.html."""

    criteria = _criteria(tolerance, relative, min_accuracy, max_disagreement, max_class_drop, parity, baseline)
    request = _fallback_request(fallback, max_float_layers, criteria)
    config = TrainConfig(**training)
    if model is not None and (config.architecture, config.augment, config.strategy) != ("reference_cnn", False, "default"):
        raise EdgeMnistError("--model imports a trained model; --arch, --augment and --strategy are for training")
    md_path = prepare_report_path(_step_summary(), out, _say)
    import_tf()
    data = load_dataset(dataset or DEFAULT_DATASET, data_dir)
    result = run(out, data, config, model=model, methods=_methods(method),
                 calib_samples=calib_samples, qat_epochs=qat_epochs, threads=threads, criteria=criteria,
                 progress=_say, skip_runtimes=skip_runtimes, fallback=request)
    _report_training(result.history, out)
    _print_bench(result.bench, out)
    _say(f"wrote {result.report} (open it in a browser)")
    _conclude(result.verdict, md_path=md_path)


@cli.command("report")
@gate_run_options
def report_cmd(out, dataset, data_dir, threads, skip_qat_source, skip_runtimes, **gate):
    """Write DIR/report.html: the bench table, the gate's verdict (re-run on the artifacts, with the gate
    options below) and the pictures, all in one file; the PNGs are also left in DIR."""

    criteria = _criteria(**gate)
    need_folder(out)
    path, verdict = report(out, load_for_folder(out, dataset, data_dir), criteria, threads, skip_runtimes,
                           skip_qat_source)
    click.echo(f"gate {'PASS' if verdict.passed else 'FAIL'}; wrote {path}")


@cli.command("debug")
@out_option
@dataset_option
@data_dir_option
@calib_option
@seed_option
def debug_cmd(out, dataset, data_dir, calib_samples, seed):
    """Per-layer int8 error of DIR's post-training int8 .tflite and .onnx, by Keras layer, worst first:
    weight and activation SQNR (dB), RMSE over the quantization step, and the test accuracy with each
    layer kept float. Writes DIR/debug.json and DIR/debug.png. --calib-samples and --seed must be
    export's (they rebuild its calibration)."""

    need_folder(out)
    import_tf()
    data = load_for_folder(out, dataset, data_dir)
    for result in debug(out, data, calib_samples, seed, progress=_say):
        click.echo(_debug_table(result))
    click.echo(f"wrote {out / DEBUG_FILE} and {out / DEBUG_PLOT}")


def _debug_table(result) -> str:
    """One artifact's layers as text, worst first (fits 100 columns)."""
    number = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
    lines = [f"{result.file} ({result.runtime}): accuracy {result.accuracy:.4f}; worst layer first",
             f"  {'layer':<18} {'weights dB':>10} {'input dB':>9} {'output dB':>9} {'end-to-end dB':>13} "
             f"{'accuracy if float':>17} {'gain pp':>8}"]
    for r in result.layers:
        lines.append(f"  {r.layer[:18]:<18} {number(r.weight_sqnr_db, '.1f'):>10} {number(r.input_sqnr_db, '.1f'):>9} "
                     f"{number(r.output_sqnr_db, '.1f'):>9} {number(r.end_to_end_sqnr_db, '.1f'):>13} "
                     f"{number(r.accuracy_if_float, '.4f'):>17} {number(r.accuracy_gain_pp, '+.2f'):>8}")
    return "\n".join(lines)


@cli.command("predict")
@out_option
@click.argument("images", nargs=-1, required=True)
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Model file to run (default: DIR/model_int8.tflite). A file that is not an artifact of DIR's "
                   "manifest runs unverified, and is said to be.")
@threads_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of text.")
@click.option("--top", type=click.IntRange(1), default=None, metavar="K",
              help="Also list the K most likely classes, best first, with names and probabilities.")
@click.option("--save-preprocessed", "save_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              metavar="DIR", help="Folder to save the 28x28 image each input became, exactly as the model got it "
                   "(photo.jpg -> photo.28x28.png; never over an input).")
def predict_cmd(out, images, model, threads, as_json, top, save_dir):
    """Classify PNG/JPEG photos or scans (or .npy arrays); every file gets a line, exit 2 if any could not be read.

    IMAGES are files, folders (their image files, sorted) or quoted patterns such as 'photos/*.jpg'.
    Photos of dark ink on paper are flattened (uneven light), thresholded, cut to the digit or item
    and centred like the training data; --save-preprocessed shows the result."""

    if model is None:

        need_folder(out)
    results, verified = predict(out, list(images), model, threads, top, save_dir)
    if not verified:
        click.echo(f"warning: {model} is not an artifact of {out}/manifest.json with a matching sha256; running it "
                   "unverified", err=True)  # a warning, not progress: --quiet keeps it
    for item in results:
        if as_json:
            click.echo(json.dumps(item))
        elif "error" in item:
            click.echo(f"edge-mnist: error: {item['error']}", err=True)
        else:
            click.echo(describe(item))
    failed = sum("error" in item for item in results)
    if failed:
        raise EdgeMnistError(f"{failed} of {len(results)} images could not be classified (see above)")


def _cpu_list(ctx, param, value: str) -> tuple[str, ...]:
    """--cpu value -> emulated CPU names, each a known one."""

    try:
        return known_cpus(tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip())))
    except EdgeMnistError as exc:
        raise click.BadParameter(str(exc)) from exc


@cli.command("emulate")
@out_option
@dataset_option
@data_dir_option
@threads_option
@click.option("--cpu", "cpus", default="cortex-a72,cortex-a76", show_default=True, callback=_cpu_list,
              help="Comma-separated cores to emulate: cortex-a72 (Raspberry Pi 4), cortex-a76 (Pi 5).")
@click.option("--parity", type=float, default=GATE.parity, show_default=True,
              help="Min fraction 0..1 of images on which each int8 artifact's top-1 matches this x86-64 host.")
@click.option("--mirror", default=None,
              help="Debian mirror for the one-time arm64 root filesystem (default: the one this host's apt uses).")
def emulate_cmd(out, dataset, data_dir, threads, cpus, parity, mirror):
    """Run every int8 artifact on an emulated Raspberry Pi 4 / Pi 5 (arm64 under qemu-user; needs root) and
    compare with this x86-64 host: exit 0 when top-1 agreement meets --parity everywhere, 1 when not, 2 when
    emulation cannot run."""

    parity = Criteria(parity=parity).validate().parity
    need_folder(out)
    result = emulate(out, load_for_folder(out, dataset, data_dir), cpus, threads, parity, mirror, progress=_say)
    click.echo(table(EMULATE_HEADERS, emulate_rows(result)))
    click.echo(f"compared with the same runners on this x86-64 host; {NOTE}")
    word = "PASS" if result.passed else "FAIL"
    click.echo(f"{word}: {len(result.rows) - len(result.failed)}/{len(result.rows)} artifact x CPU runs agree with "
               f"x86-64 on >= {parity:.2%} of {result.n_samples} images; wrote {out / EMULATE_FILE}")
    if not result.passed:
        raise GateFailed(f"{len(result.failed)} of {len(result.rows)} emulated runs below top-1 agreement "
                         f"{parity:.4g}: " + "; ".join(f"{r.file} on {r.board} {r.agreement:.4g}"
                                                        for r in result.failed[:3]))


@cli.command("info")
@out_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object instead of text.")
def info_cmd(out, as_json):
    """What an export folder holds, from its records (no model is run): each model file with its format,
    method, size and whether it is still as exported (size and sha256 against manifest.json); the dataset,
    its test-set fingerprint and the architecture; the accuracies recorded at export, by bench (bench.json)
    and by the gate (DIR/check.json, from `check --json DIR/check.json`); and that recorded gate verdict
    with its date. Exit 2 when DIR or its manifest is missing or unreadable."""

    need_folder(out)
    info = gather(out)
    click.echo(json.dumps(rounded(info.to_json()), indent=2) if as_json else render(info))


def main(argv=None) -> None:
    """Console entry point: maps expected errors to one line and an exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="edge-mnist", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("edge-mnist: interrupted; files already written are intact", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except (EdgeMnistError, GateFailed) as exc:
        if debug:
            raise
        click.echo(f"edge-mnist: {exc.label if isinstance(exc, GateFailed) else 'error'}: {exc}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:  # the environment: a full disk, a permission, a missing folder
        if debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"edge-mnist: error: {where}{exc.strerror or exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # the last line of defence: one line, never a traceback, unless --debug
        if debug:
            raise
        click.echo(f"edge-mnist: unexpected error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                   " (rerun with --debug for the traceback)", err=True)
        sys.exit(3)


if __name__ == "__main__":
    main()
