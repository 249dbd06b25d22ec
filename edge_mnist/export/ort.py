"""ORT-format exporters for ONNX Runtime Mobile: the .ort model and its required-operators config.

The .ort file is what onnxruntime's own converter (`python -m onnxruntime.tools.
convert_onnx_models_to_ort`, optimization style Fixed, default target) makes of the int8 .onnx:
graph optimizations applied once, without the x86-only NCHWc layout, and uint8 activations
(`session.qdqisint8allowed=0`), which onnxruntime's integer kernels run fast on x86 and ARM alike.
The metadata_props of the .onnx travel into it, with this format's own description. The config lists the operators a reduced
onnxruntime build must keep (`build.sh --include_ops_by_config`).
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path

from edge_mnist.core.files import atomic_write_bytes
from edge_mnist.export.job import Exported, ExportJob
from edge_mnist.export.onnx import with_props


def _quiet() -> None:
    """onnxruntime's tools log every file they write at INFO; export prints its own progress."""
    logging.getLogger("ort_format_model.utils").setLevel(logging.WARNING)


def export_ort(job: ExportJob) -> Exported:
    """Convert the .onnx this format is built from with onnxruntime's converter and write the .ort."""
    import onnx
    import onnxruntime
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort


    proto = with_props(onnx.load_from_string(job.built_from_path.read_bytes()), job.metadata)
    _quiet()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        source = Path(tmp) / job.built_from_path.name
        source.write_bytes(proto.SerializeToString())
        convert_onnx_models_to_ort(source, Path(tmp) / "out", [OptimizationStyle.Fixed])
        atomic_write_bytes(job.path, (Path(tmp) / "out" / job.path.name).read_bytes())
    return Exported(converter=f"onnxruntime {onnxruntime.__version__} convert_onnx_models_to_ort (Fixed)",
                    quantization=f"from {job.built_from_path.name}")


def export_ops_config(job: ExportJob) -> Exported:
    """The operators (per domain and opset) the .ort this format is built from needs, for a reduced build."""
    from onnxruntime.tools.ort_format_model import create_config_from_models

    _quiet()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / job.path.name
        create_config_from_models([job.built_from_path], config, enable_type_reduction=False)
        text = config.read_text().replace(str(job.built_from_path), job.built_from_path.name)
        atomic_write_bytes(job.path, text.encode())
    return Exported(converter="onnxruntime.tools.ort_format_model.create_config_from_models")
