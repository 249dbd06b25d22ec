"""The `edge-mnist` command line: a thin click layer over the library.

Heavy imports (TensorFlow, tf2onnx, tfmot) happen inside the commands that need them, so
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

from .errors import EdgeMnistError, GateFailed

DEFAULT_OUT = Path("export")


def _say(msg: str) -> None:
    """Progress to stderr so stdout stays for results."""
    click.echo(msg, err=True)


out_option = click.option("--out", "out", type=click.Path(path_type=Path), default=DEFAULT_OUT, show_default=True,
                          help="Artifact folder.")
dataset_option = click.option("--dataset", type=click.Choice(["mnist", "fashion-mnist"]), default=None,
                              help="Dataset (default: mnist for train; the manifest's for bench).")
data_dir_option = click.option("--data-dir", type=click.Path(path_type=Path), default=None,
                               help="Folder with mnist.npz or the four IDX .gz files (offline use).")
threads_option = click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True,
                              help="Threads for every runtime (fixed, so figures are comparable).")


@click.group()
@click.option("--debug", is_flag=True, help="Show tracebacks and TensorFlow's own logging.")
@click.version_option(package_name="edge-mnist")
@click.pass_context
def cli(ctx, debug):
    """Train, int8-quantize, export, benchmark and gate the reference MNIST CNN for edge devices."""
    ctx.obj = {"debug": debug}
    if debug:
        os.environ["EDGE_MNIST_DEBUG"] = "1"


def training_options(func):
    """--out --dataset --data-dir --epochs --batch-size --seed, shared by train and run."""
    for option in reversed([out_option, dataset_option, data_dir_option,
                            click.option("--epochs", type=click.IntRange(1), default=2, show_default=True),
                            click.option("--batch-size", type=click.IntRange(1), default=128, show_default=True),
                            click.option("--seed", type=int, default=0, show_default=True)]):
        func = option(func)
    return func


def _load_data(dataset, data_dir, out: Path | None = None):
    """Dataset from the options, defaulting to the one recorded in the folder's manifest."""
    from .data import load_dataset

    if dataset is None and out is not None and (out / "manifest.json").is_file():
        from .files import read_json

        dataset = read_json(out / "manifest.json", "manifest").get("dataset")
    return load_dataset(dataset or "mnist", data_dir)


def _need_folder(out: Path) -> None:
    """Reading commands need an existing artifact folder."""
    if not out.is_dir():
        raise EdgeMnistError(f"{out}: output folder does not exist (run `edge-mnist train`/`export` first or pass --out)")


@cli.command()
@training_options
@click.option("--mixed-precision", is_flag=True, help="mixed_float16 on a GPU; ignored (float32) on the CPU.")
def train(out, dataset, data_dir, epochs, batch_size, seed, mixed_precision):
    """Train the reference CNN (GPU when TensorFlow sees one, else CPU)."""
    do_train(out, dataset, data_dir, epochs, batch_size, seed, mixed_precision)


def do_train(out, dataset, data_dir, epochs, batch_size, seed, mixed_precision) -> dict:
    """train command body, shared with `run`."""
    from .tfenv import import_tf
    from .train import TrainConfig
    from .train import train as train_model

    import_tf()
    data = _load_data(dataset or "mnist", data_dir)
    _say(f"dataset {data.name} from {data.source}: {len(data.x_train)} train / {len(data.x_test)} test images")
    config = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, mixed_precision=mixed_precision)
    history = train_model(data, out, config)
    dev = history["device"]
    if dev["note"]:
        _say(dev["note"])
    ips = history["history"]["images_per_second"]
    _say(f"trained on {dev['device']} ({dev['policy']}): test accuracy {history['test_accuracy']:.4f}, "
         f"{ips[-1]:.0f} images/s in the last epoch; wrote {out}/model_float32.keras, history.json, training_curves.png")
    return history


@cli.command("export")
@out_option
@dataset_option
@data_dir_option
@click.option("--int8", "int8", is_flag=True, help="Also write int8 artifacts (full-integer TFLite and ONNX).")
@click.option("--method", type=click.Choice(["ptq", "qat"]), default="ptq", show_default=True,
              help="int8 by post-training quantization or quantization-aware training.")
@click.option("--calib-samples", type=click.IntRange(1), default=500, show_default=True)
@click.option("--qat-epochs", type=click.IntRange(1), default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def export_cmd(out, dataset, data_dir, int8, method, calib_samples, qat_epochs, seed):
    """Export float TFLite/ONNX and, with --int8, int8 artifacts plus manifest.json."""
    do_export(out, dataset, data_dir, int8, method, calib_samples, qat_epochs, seed)


def do_export(out, dataset, data_dir, int8, method, calib_samples, qat_epochs, seed):
    """export command body, shared with `run`."""
    from .convert import export
    from .formats import for_method
    from .tfenv import import_tf

    import_tf()
    _need_folder(out)
    data = _load_data(dataset, data_dir, out)
    if not int8 and method == "qat":
        raise EdgeMnistError("--method qat makes int8 artifacts; add --int8")
    manifest = export(out, data, method if int8 else "float", calib_samples, seed, qat_epochs, progress=_say)
    names = [f.file for f in for_method(method if int8 else "float")]
    _say(f"float accuracy {manifest.float_accuracy:.4f}; wrote {', '.join(names)} and manifest.json to {out}")


@cli.command("bench")
@out_option
@dataset_option
@data_dir_option
@threads_option
@click.option("--runs", type=click.IntRange(1), default=1000, show_default=True, help="Timed single-image runs.")
@click.option("--warmup", type=click.IntRange(0), default=100, show_default=True)
def bench_cmd(out, dataset, data_dir, threads, runs, warmup):
    """Accuracy and latency of every artifact (LiteRT, ONNX Runtime, Keras if installed)."""
    do_bench(out, dataset, data_dir, threads, runs, warmup)


def do_bench(out, dataset, data_dir, threads, runs, warmup) -> dict:
    """bench command body, shared with `run`."""
    from .bench import bench
    from .report import BENCH_HEADERS, bench_rows, table

    _need_folder(out)
    data = _load_data(dataset, data_dir, out)
    result = bench(out, data, threads=threads, runs=runs, warmup=warmup, progress=_say)
    click.echo(table(BENCH_HEADERS, bench_rows(result)))
    click.echo(f"{result['n_samples']} test images, {threads} thread(s), {runs} timed runs after {warmup} warm-up; "
               f"wrote {out / 'bench.json'}")
    return result


@cli.command("check")
@out_option
@click.option("--tolerance", type=float, default=0.5, show_default=True,
              help="Max accuracy drop of an int8 artifact below float, in percentage points.")
@click.option("--relative", type=float, default=None, help="Max relative accuracy drop, in percent.")
@click.option("--min-accuracy", type=float, default=None, help="Accuracy floor for int8 artifacts (0..1).")
@click.option("--max-disagreement", type=float, default=2.0, show_default=True,
              help="Max % of test images where int8 and float predict different classes.")
@click.option("--max-class-drop", type=float, default=3.0, show_default=True,
              help="Max accuracy drop of any single class, in percentage points.")
@click.option("--parity", type=float, default=0.99, show_default=True,
              help="Min fraction of images on which TFLite and ONNX int8 of one export agree.")
@click.option("--baseline", type=click.Path(path_type=Path), default=None,
              help="An earlier bench.json (e.g. last release) that int8 accuracy must not fall below.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write results as JSON.")
@click.option("--junit", "junit_path", type=click.Path(path_type=Path), default=None, help="Write JUnit XML.")
@click.option("--markdown", "md_path", type=click.Path(path_type=Path), default=None,
              help="Append a Markdown summary (default: $GITHUB_STEP_SUMMARY when set).")
def check_cmd(out, tolerance, relative, min_accuracy, max_disagreement, max_class_drop, parity, baseline,
              json_path, junit_path, md_path):
    """CI gate: exit 0 when every int8 artifact is within tolerance of float, 1 when not, 2 on bad input."""
    from .check import Criteria

    criteria = Criteria(tolerance, relative, min_accuracy, max_disagreement, max_class_drop, parity, baseline)
    do_check(out, criteria, json_path, junit_path, md_path)


def do_check(out, criteria, json_path=None, junit_path=None, md_path=None) -> None:
    """check command body, shared with `run`; raises GateFailed when a criterion fails."""
    from dataclasses import asdict

    from .check import evaluate
    from .files import atomic_write_json
    from .report import CHECK_HEADERS, check_rows, junit, markdown, table

    _need_folder(out)
    results, context = evaluate(out, criteria)
    failed = [r for r in results if not r.passed]
    verdict = "FAIL" if failed else "PASS"
    click.echo(table(CHECK_HEADERS, check_rows(results)))
    click.echo(f"{verdict}: {len(results) - len(failed)}/{len(results)} criteria passed on {context['n_samples']} "
               f"images; reference {context['reference']} = {context['reference_accuracy']:.4f}")
    if json_path:
        atomic_write_json(json_path, {"verdict": verdict, **context, "results": [asdict(r) for r in results]})
    if junit_path:
        junit(results, junit_path)
    md_path = md_path or (Path(os.environ["GITHUB_STEP_SUMMARY"]) if os.environ.get("GITHUB_STEP_SUMMARY") else None)
    if md_path:
        with open(md_path, "a") as handle:
            handle.write(f"### edge-mnist check: {verdict}\n\n{markdown(CHECK_HEADERS, check_rows(results))}\n\n")
    if failed:
        raise GateFailed(f"{len(failed)} criterion/criteria failed: " +
                         "; ".join(f"{r.artifact} {r.criterion} {r.value:.4g} > {r.limit:.4g}" for r in failed[:3]))


@cli.command("run")
@training_options
@click.option("--method", type=click.Choice(["ptq", "qat", "both"]), default="ptq", show_default=True)
@click.option("--calib-samples", type=click.IntRange(1), default=500, show_default=True)
@click.option("--qat-epochs", type=click.IntRange(1), default=1, show_default=True)
@threads_option
@click.option("--tolerance", type=float, default=0.5, show_default=True)
def run(out, dataset, data_dir, epochs, batch_size, seed, method, calib_samples, qat_epochs, threads, tolerance):
    """The main job: train -> export --int8 -> bench -> check."""
    from .check import Criteria

    dataset = dataset or "mnist"
    do_train(out, dataset, data_dir, epochs, batch_size, seed, False)
    for m in (("ptq", "qat") if method == "both" else (method,)):
        do_export(out, dataset, data_dir, True, m, calib_samples, qat_epochs, seed)
    do_bench(out, dataset, data_dir, threads, 1000, 100)
    do_check(out, Criteria(tolerance_pp=tolerance))


@cli.command("predict")
@out_option
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Artifact to run (default: DIR/model_int8.tflite).")
@threads_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of text.")
def predict_cmd(out, images, model, threads, as_json):
    """Classify PNG/JPEG photos or scans (or .npy arrays) with an exported model."""
    from .convert.manifest import Manifest
    from .predict import predict_files
    from .runtime import open_model

    _need_folder(out)
    manifest = Manifest.load(out)
    model = model or out / "model_int8.tflite"
    listed = {e["file"]: k for k, e in manifest.artifacts.items()}
    if model.parent.resolve() == out.resolve() and model.name in listed:
        manifest.verify(listed[model.name])
    from .data import LABELS

    for item in predict_files(open_model(model, threads), list(images), LABELS[manifest.dataset], manifest.dataset):
        click.echo(json.dumps(item) if as_json else f"{item['file']}: {item['label']} (class {item['class']}, "
                                                     f"p={item['probability']:.3f})")


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
        click.echo(f"edge-mnist: {'check failed' if isinstance(exc, GateFailed) else 'error'}: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # the last line of defence: one line, never a traceback, unless --debug
        if debug:
            raise
        click.echo(f"edge-mnist: unexpected error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                   " (rerun with --debug for the traceback)", err=True)
        sys.exit(3)


if __name__ == "__main__":
    main()
