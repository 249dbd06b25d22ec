"""The int8 ONNX layouts we weighed, each in a default onnxruntime session, against TFLite int8.

    python benchmarks/onnx_variants.py --out export

Rebuilds the int8 ONNX (and .ort) files from the export folder's int8 .tflite files in each
variant, then measures top-1 agreement and largest output difference with LiteRT on the test
set, and single-image p50 interleaved with the .tflite in one process (so each ratio is
immune to the machine getting slower between variants). Every session is onnxruntime's default
with one thread: what an application gets. Needs the train extra (onnx, tf2onnx).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

from edge_mnist.core.timing import interleaved_p50
from edge_mnist.data import load_dataset, to_float
from edge_mnist.folder.records import Manifest
from edge_mnist.quantize.onnx_from_tflite import convert
from edge_mnist.runtime.onnx import session_options
from edge_mnist.runtime.tflite import TFLiteRunner


def ours(float_stem: bool):
    """Our converter, with or without the float stem."""
    return lambda tflite: convert(tflite.read_bytes(), tflite, {}, float_stem=float_stem).SerializeToString()


def tf2onnx_route(tflite: Path) -> bytes:
    """tf2onnx's own .tflite converter (the previous release's QAT route)."""
    import tf2onnx

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        tf2onnx.convert.from_tflite(str(tflite), opset=17, output_path=str(Path(tmp) / "m.onnx"))
        return (Path(tmp) / "m.onnx").read_bytes()


def ort_format(int8_allowed: str):
    """Our converter's model through onnxruntime's ORT-format converter settings (Fixed, no NCHWc)."""
    def build(tflite: Path) -> bytes:
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "m.onnx").write_bytes(ours(True)(tflite))
            options = ort.SessionOptions()
            options.optimized_model_filepath = str(Path(tmp) / "m.ort")
            options.add_session_config_entry("session.save_model_format", "ORT")
            options.add_session_config_entry("session.qdqisint8allowed", int8_allowed)
            ort.InferenceSession(str(Path(tmp) / "m.onnx"), options, disabled_optimizers=["NchwcTransformer"])
            return (Path(tmp) / "m.ort").read_bytes()
    return build


VARIANTS = {
    "tf2onnx from_tflite (previous QAT route)": tf2onnx_route,
    "ours, every layer int8": ours(False),
    "ours, float stem (shipped .onnx)": ours(True),
    ".ort, uint8 activations (shipped .ort)": ort_format("0"),
    ".ort, int8 activations (ORT's --target_platform arm)": ort_format("1"),
}


def main() -> None:
    """Build, measure and print every variant for the folder's PTQ and QAT .tflite files."""
    import onnxruntime as ort

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("export"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=400)
    args = ap.parse_args()
    manifest = Manifest.load(args.out)
    data = load_dataset(manifest.task.dataset)
    x = to_float(data.x_test)
    print("| source | variant | top-1 agreement with TFLite | max output difference (int8 steps) | p50 µs | "
          "TFLite p50 µs | ratio |\n|---|---|---|---|---|---|---|")
    for name in ("model_int8.tflite", "model_qat_int8.tflite"):
        if not (args.out / name).is_file():
            continue
        tflite = TFLiteRunner(args.out / name)
        xq = tflite.prepare(x)
        reference = tflite.run(xq).astype(np.int32)
        for label, build in VARIANTS.items():
            session = ort.InferenceSession(build(args.out / name), session_options(ort, 1))
            feed = session.get_inputs()[0].name
            out = session.run(None, {feed: xq})[0].astype(np.int32)
            one = xq[:1]
            blocks = interleaved_p50({"onnx": lambda: session.run(None, {feed: one}), "tflite": tflite.bound_call(x[:1])},
                                     args.rounds, {"onnx": args.runs, "tflite": args.runs})
            p50, base = (float(np.median(blocks[k])) for k in ("onnx", "tflite"))
            print(f"| {name} | {label} | {(out.argmax(1) == reference.argmax(1)).mean():.2%} | "
                  f"{np.abs(out - reference).max()} | {p50:.1f} | {base:.1f} | {p50 / base:.2f}× |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
