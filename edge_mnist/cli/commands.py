"""Each `edge-mnist` command: its options, one call into the library, and what it prints."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click

from edge_mnist.bench import bench
from edge_mnist.check import evaluate
from edge_mnist.cli.options import (
    ARCH_EPILOG,
    GATE,
    batch_option,
    calib_option,
    configs,
    data_dir_option,
    dataset_option,
    fallback_options,
    gate_options,
    gate_run_options,
    method_option,
    micro_images_option,
    model_option,
    out_option,
    own_data_options,
    qat_epochs_option,
    seed_option,
    skip_runtime_option,
    tflm_images_option,
    threads_option,
    training_options,
    wait_option,
)
from edge_mnist.config import (
    THROUGHPUT_SECONDS,
    BenchConfig,
    DataConfig,
    EmulateConfig,
    ExportConfig,
    GateConfig,
    RunConfig,
    TrainConfig,
)
from edge_mnist.core.errors import EdgeMnistError, GateFailed
from edge_mnist.core.lock import writes_into
from edge_mnist.core.progress import say
from edge_mnist.core.tfenv import import_tf
from edge_mnist.debug import debug
from edge_mnist.doctor import diagnose
from edge_mnist.emulate import emulate
from edge_mnist.emulate.targets import DEFAULT_TARGETS, NOTE, split_targets
from edge_mnist.folder.layout import DEBUG_FILE, DEBUG_PLOT, EMULATE_FILE
from edge_mnist.folder.opener import need_folder, open_folder
from edge_mnist.info import gather, render
from edge_mnist.pipeline import export_folder, run
from edge_mnist.predict import describe, predict
from edge_mnist.registry.methods import FLOAT
from edge_mnist.render.console import debug_table, doctor_text, print_bench, report_training
from edge_mnist.render.tables import (
    BOARD_HEADERS,
    EMULATE_HEADERS,
    board_rows,
    check_text,
    emulate_rows,
    failure_line,
    prepare_report_path,
    rounded,
    table,
    verdict_json,
    write_reports,
)
from edge_mnist.report import report
from edge_mnist.train import train as train_model
from edge_mnist.train.user_model import require_model_file
from edge_mnist.userdata import load_data


@click.command("train", epilog=ARCH_EPILOG)
@training_options
@click.option("--mixed-precision", is_flag=True, help="mixed_float16 on a GPU; ignored (float32) on the CPU.")
@wait_option
def train_cmd(out, wait, **options):
    """Train an architecture (GPU when TensorFlow sees one, else CPU)."""

    data, config = configs(options, DataConfig, TrainConfig)
    import_tf()
    dataset = load_data(data)
    say(f"dataset {dataset.name} from {dataset.source}: {len(dataset.x_train)} train / {len(dataset.x_test)} test "
        "images")
    history = train_model(dataset, out, config, wait=wait)
    report_training(history, out)


@click.command("export")
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
@own_data_options
@fallback_options
@gate_options
@wait_option
def export_cmd(out, int8, model, wait, **options):
    """Export float TFLite/ONNX and, with --int8, int8 artifacts, plus manifest.json."""

    if not int8:
        options["methods"] = (FLOAT.name,)
    data, config = configs(options, DataConfig, ExportConfig)
    import_tf()
    history, manifest = export_folder(out, data, config, model=model, progress=say, wait=wait)
    if history is not None:
        report_training(history, out)
    say(f"float accuracy {manifest.float_accuracy:.4f}; wrote {len(manifest.artifacts)} artifacts and "
         f"manifest.json to {out}")


@click.command("bench")
@out_option
@dataset_option
@data_dir_option
@threads_option
@click.option("--runs", type=click.IntRange(1), default=1000, show_default=True, help="Timed single-image runs.")
@click.option("--warmup", type=click.IntRange(0), default=100, show_default=True, help="Untimed runs first.")
@click.option("--throughput-seconds", type=click.FloatRange(0, 600), default=THROUGHPUT_SECONDS, show_default=True,
              help="Time per artifact for batch-256 throughput (the median of 5 loops; 0: one batch per loop).")
@skip_runtime_option
@tflm_images_option
@wait_option
def bench_cmd(out, wait, **options):
    """Accuracy and latency of every artifact (LiteRT, ONNX Runtime, Keras and TFLM if installed)."""

    data, config = configs(options, DataConfig, BenchConfig)
    with open_folder(out, "bench", data, wait=wait) as folder:
        result = bench(folder, config, progress=say)
    print_bench(result, folder.exported, out)


STDOUT = Path("-")  # check's bare --json: print the JSON instead of the text


@click.command("check")
@gate_run_options
@click.option("--json", "json_path", type=click.Path(path_type=Path), is_flag=False, flag_value=STDOUT,
              default=None, metavar="[PATH]",
              help="The verdict as JSON (6 significant digits): --json alone prints it instead of the text, like "
                   "predict's and info's --json; --json PATH writes it to a file for CI (DIR/check.json is "
                   "shown by `edge-mnist info`).")
@click.option("--junit", "junit_path", type=click.Path(path_type=Path), default=None, help="Write JUnit XML.")
@click.option("--markdown", "md_path", type=click.Path(path_type=Path), default=None,
              help="Append a Markdown summary (default: $GITHUB_STEP_SUMMARY when set).")
@wait_option
def check_cmd(out, json_path, junit_path, md_path, wait, **options):
    """CI gate: runs every int8 artifact and the float model on the test set; exit 0 when every int8
    artifact is within the limits, 1 when one is not, 2 on bad input.

    Prints each file's checks as sentences ("accuracy 81.00% vs float 80.80%: drop 0.20 pp, tolerance
    0.50 pp"): accuracies and shares of images in %, accuracy differences in percentage points (pp),
    with 2 decimals (more where needed to tell a value from its limit). --min-accuracy and --parity
    are given as fractions (0.9 is shown as 90.00%). Each accuracy drop also states its images and 95%
    interval; on too few images to resolve --tolerance a drop beyond it fails only when real (a warning
    says so; --strict-drop fails it anyway)."""

    data, config = configs(options, DataConfig, GateConfig)
    need_folder(out)
    json_path, junit_path, md_path = (p if p == STDOUT else prepare_report_path(p, out, say)
                                      for p in (json_path, junit_path, md_path or _step_summary()))
    into_dir = writes_into(out, (p for p in (json_path, junit_path, md_path) if p != STDOUT))
    with open_folder(out, "check", data, wait=wait, lock=into_dir) as folder:  # a report in DIR: check writes there
        _conclude(evaluate(folder, config), json_path, junit_path, md_path)


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


@click.command("run", epilog=ARCH_EPILOG)
@training_options
@model_option
@method_option
@calib_option
@qat_epochs_option
@threads_option
@gate_options
@skip_runtime_option
@tflm_images_option
@fallback_options
@wait_option
def run_cmd(out, wait, **options):
    """The main job: train (or import --model) -> export --int8 -> bench -> check -> report.html."""

    (config,) = configs(options, RunConfig)
    if config.model is not None:
        require_model_file(config.model)
    md_path = prepare_report_path(_step_summary(), out, say)
    import_tf()
    result = run(out, load_data(config.data), config, progress=say, wait=wait)
    report_training(result.history, out)
    print_bench(result.bench, result.manifest, out)
    say(f"wrote {result.report} (open it in a browser)")
    _conclude(result.verdict, md_path=md_path)


@click.command("report")
@gate_run_options
@wait_option
def report_cmd(out, wait, **options):
    """Write DIR/report.html: the bench table, the gate's verdict (re-run on the artifacts, with the gate
    options below) and the pictures, all in one file; the PNGs are also left in DIR."""

    data, config = configs(options, DataConfig, GateConfig)
    with open_folder(out, "report", data, wait=wait) as folder:
        path, verdict = report(folder, config)
    click.echo(f"gate {'PASS' if verdict.passed else 'FAIL'}; wrote {path}")


@click.command("debug")
@out_option
@dataset_option
@data_dir_option
@calib_option
@seed_option
@wait_option
def debug_cmd(out, wait, **options):
    """Per-layer int8 error of DIR's int8 .tflite and .onnx (post-training and QAT), by Keras layer, worst
    first: weight and activation SQNR (dB), RMSE over the quantization step, and the test accuracy with each
    layer kept float (post-training files). QAT files are measured against the QAT model with its fake
    quantization off. Writes DIR/debug.json and DIR/debug.png. --calib-samples and --seed must be
    export's (they rebuild its calibration)."""

    data, config = configs(options, DataConfig, ExportConfig)
    need_folder(out)
    import_tf()
    with open_folder(out, "debug", data, wait=wait) as folder:
        for result in debug(folder, config, progress=say):
            click.echo(debug_table(result))
    click.echo(f"wrote {out / DEBUG_FILE} and {out / DEBUG_PLOT}")


@click.command("predict")
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
    For MNIST and Fashion-MNIST, photos of dark ink on paper are flattened (uneven light), thresholded,
    cut to the digit or item and centred like the training data; for your own data the whole photo is
    resized to the model's size, in colour for a colour model. --save-preprocessed shows the result."""

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


def _target_list(ctx, param, value: str | None) -> tuple[str, ...] | None:
    """--target (or its alias --cpu) value -> target names, each a known one."""
    if value is None:
        return None
    names = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    try:
        split_targets(names)
    except EdgeMnistError as exc:
        raise click.BadParameter(str(exc)) from exc
    return names


@click.command("emulate")
@out_option
@dataset_option
@data_dir_option
@threads_option
@click.option("--target", "targets", default=None, callback=_target_list, metavar="NAMES",
              help="Comma-separated targets (default pi4,pi5): pi4 (Cortex-A72) and pi5 (Cortex-A76) run every int8 "
                   "file under qemu-user (needs root); cortex-m4 (mps2-an386), cortex-m7 (mps2-an500) and "
                   "cortex-m33 (mps2-an505) run the interpreter-free C under qemu-system-arm.")
@click.option("--cpu", "cpus", default=None, callback=_target_list, metavar="NAMES",
              help="Alias of --target (also takes the Pi cores' names: cortex-a72, cortex-a76).")
@micro_images_option
@click.option("--parity", type=float, default=GATE.parity, show_default=True,
              help="Min fraction 0..1 of images on which each int8 artifact's top-1 matches this x86-64 host "
                   "(on a Cortex-M: LiteRT's for the same .tflite, and every output must equal TFLM's).")
@click.option("--mirror", default=None,
              help="Debian mirror for the one-time arm64 root filesystem (default: the one this host's apt uses).")
@wait_option
def emulate_cmd(out, cpus, wait, **options):
    """Run DIR's int8 artifacts on emulated targets and compare with this x86-64 host: the int8 files on a Raspberry
    Pi 4 / Pi 5 (arm64, qemu-user; needs root), the interpreter-free C on Cortex-M boards (bare metal,
    qemu-system-arm; outputs compared with TFLM's byte for byte, flash, RAM and instructions per inference
    measured). Exit 0 when top-1 agreement meets --parity everywhere, 1 when not, 2 when emulation cannot run."""

    if options["targets"] and cpus:
        raise click.BadParameter("give --target or its alias --cpu, not both", param_hint="--cpu")
    options["targets"] = options["targets"] or cpus or DEFAULT_TARGETS
    data, config = configs(options, DataConfig, EmulateConfig)
    with open_folder(out, "emulate", data, wait=wait, writable=False) as folder:  # the host's lacks are said first
        result = emulate(folder, config, progress=say)
    parity = config.parity
    click.echo(table(EMULATE_HEADERS, emulate_rows(result)))
    if board_rows(result):
        click.echo(table(BOARD_HEADERS, board_rows(result)))
    click.echo(f"compared with the same runners on this x86-64 host (Cortex-M rows: with TFLM and LiteRT); {NOTE}")
    word = "PASS" if result.passed else "FAIL"
    click.echo(f"{word}: {len(result.rows) - len(result.failed)}/{len(result.rows)} artifact x target runs agree on "
               f">= {parity:.2%} of their images; wrote {out / EMULATE_FILE}")
    if not result.passed:
        raise GateFailed(f"{len(result.failed)} of {len(result.rows)} emulated runs below top-1 agreement "
                         f"{parity:.4g}: " + "; ".join(f"{r.file} on {r.board} {r.agreement:.4g}"
                                                        for r in result.failed[:3]))


@click.command("doctor")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Also say which files of this artifact folder can run here.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object instead of text.")
def doctor_cmd(out, as_json):
    """This device and what it can run: OS and version, architecture, Python, each runtime with its version
    or why it does not import (with the install line), the CPU features int8 kernels use (NEON, dot
    product, AVX2, AVX-512 VNNI, AMX), memory, the tools emulate needs, and with --out which of the folder's
    files run here. Needs no TensorFlow. Exit 2 when --out is not a readable artifact folder."""

    if out is not None:
        need_folder(out)
    diagnosis = diagnose(out)
    click.echo(json.dumps(diagnosis.to_json(), indent=2) if as_json else doctor_text(diagnosis))


@click.command("info")
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

