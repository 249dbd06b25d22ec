"""Post-training int8 with and without cross-layer equalization, for every architecture (trained) and for
constructed outlier-channel models: the table behind `export --equalize`'s default.

    python -m benchmarks.equalize --dataset fashion-mnist --epochs 1 --out /tmp/cle

For each architecture: train it (`edge-mnist train`'s library call; a folder of --out that already holds
model_float32.keras is reused), then calibrate on --calib-samples training images and build the all-int8
.tflite and the .onnx converted from it exactly as `export --fallback` does (quantize.mixed.Mixer), from
the float model and from its equalized copy (quantize.equalize), and judge both files with the gate's
default criteria on the whole test set (quantize.fallback.evaluate_mix). Then the same for the trained
reference CNN and compact (BatchNorm) with one outlier channel (benchmarks/fallback.py's `outlier_channel`,
x300) in each conv layer. Writes DATE-equalize.json and DATE-equalize.md under benchmarks/results/.
"""
from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from benchmarks.fallback import OUTLIER_PAIRS, outlier_channel
from edge_mnist.registry.models import ARCHITECTURES
from edge_mnist.render.tables import markdown

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ("model", "epochs", "float", "PTQ .tflite", "PTQ .onnx", "PTQ gate", "CLE .tflite", "CLE .onnx",
           "CLE gate", "pairs equalized")


def trained(arch: str, epochs: int, data, out: Path):
    """The trained float model of `arch` in out/arch (trained there first when missing)."""
    from edge_mnist.core.keras_io import load_keras
    from edge_mnist.train import TrainConfig, train

    folder = out / arch
    if not (folder / "model_float32.keras").is_file():
        train(data, folder, TrainConfig(epochs=epochs, architecture=arch))
    return load_keras(folder / "model_float32.keras")


def judge(model, calib: np.ndarray, data) -> dict:
    """Float accuracy, then the all-int8 .tflite and .onnx of `model` and of its equalized copy under the gate."""
    from edge_mnist.core.tfenv import import_tf
    from edge_mnist.data import to_float
    from edge_mnist.gate import Criteria, Measured
    from edge_mnist.quantize.equalize import equalize
    from edge_mnist.quantize.fallback import evaluate_mix
    from edge_mnist.quantize.mixed import Mixer

    import_tf()
    images, labels = to_float(data.x_test), data.y_test.astype(np.int64)
    preds = model.predict(images, batch_size=1024, verbose=0).argmax(1).astype(np.int64)
    reference = Measured("float_keras", "model_float32.keras", preds, float((preds == labels).mean()))
    row = {"float": reference.accuracy}
    equalized, record = equalize(model)
    for name, variant in (("ptq", model), ("cle", equalized)):
        mixer = Mixer.for_model(variant, calib)
        step = evaluate_mix(mixer.runners(), images, labels, reference, data.task.class_names, Criteria(), ())
        row[name] = {"accuracy": step.accuracy, "passed": step.passed, "failed": step.failed}
    row["equalization"] = record.describe()
    row["pairs"] = len(record.pairs)
    return row


def table(rows: list[dict]) -> str:
    """The table of docs/quantization.md."""
    verdict = {True: "pass", False: "FAIL"}
    return markdown(list(COLUMNS), [
        [r["model"], r["epochs"], f"{r['float']:.2%}",
         *(cell for m in ("ptq", "cle") for cell in (f"{r[m]['accuracy']['tflite']:.2%}",
                                                     f"{r[m]['accuracy']['onnx']:.2%}", verdict[r[m]["passed"]])),
         r["pairs"]] for r in rows])


def main() -> None:
    """Judge every (or the chosen) architecture, then the outlier models, and write the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--arch", action="append", choices=list(ARCHITECTURES), help="default: all")
    ap.add_argument("--calib-samples", type=int, default=500)
    ap.add_argument("--factor", type=float, default=300.0, help="the outlier channel's scale")
    ap.add_argument("--out", type=Path, required=True, help="folder for the trained models")
    args = ap.parse_args()
    from edge_mnist.data import load_dataset
    from edge_mnist.quantize.calibration import calibration_images

    data = load_dataset(args.dataset, args.data_dir)
    calib = calibration_images(data, args.calib_samples, 0)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d-%H%M")
    jobs = [(arch, None) for arch in args.arch or list(ARCHITECTURES)]
    jobs += [(arch, conv) for arch, pairs in OUTLIER_PAIRS.items() for conv in pairs]
    rows = []
    for arch, conv in jobs:
        model = trained(arch, args.epochs, data, args.out)
        if conv is not None:
            model = outlier_channel(model, conv, OUTLIER_PAIRS[arch][conv], factor=args.factor)
        name = arch if conv is None else f"{arch}, {conv} channel 3 x{args.factor:g}"
        rows.append({"model": name, "epochs": args.epochs, **judge(model, calib, data)})
        print(table(rows[-1:]).splitlines()[-1], flush=True)
        RESULTS.mkdir(exist_ok=True)
        meta = {"dataset": args.dataset, "calib_samples": args.calib_samples, "test_images": len(data.x_test)}
        (RESULTS / f"{stamp}-equalize.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))
        (RESULTS / f"{stamp}-equalize.md").write_text(table(rows) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
