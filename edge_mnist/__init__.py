"""edge-mnist: a Keras vision model to int8 TFLite and ONNX for a Raspberry Pi, phone or microcontroller, gated in CI.

The public API is the stage verbs, each a function of the module named for it, and their settings as frozen
configs (edge_mnist.config). A stage runs on a folder opened once (open_folder: checked, locked, its manifest and
dataset read):

    train(dataset, out, TrainConfig)         edge_mnist.train      (TensorFlow, imported when called)
    with open_folder(out, "bench", DataConfig()) as folder:
        export(folder, ExportConfig)         edge_mnist.export     (TensorFlow, imported when called)
        bench(folder, BenchConfig)           edge_mnist.bench
        check(folder, GateConfig) -> Verdict edge_mnist.check
        report(folder, GateConfig)           edge_mnist.report     (DIR/report.html and its pictures; matplotlib)
        emulate(folder, EmulateConfig)       edge_mnist.emulate    (int8 artifacts on emulated Pis and Cortex-Ms)
        debug(folder, ExportConfig)          edge_mnist.debug      (per-layer int8 error; TensorFlow)
    predict(out, images)                     edge_mnist.predict
    run(out, dataset, RunConfig)             edge_mnist.pipeline   (all of the above)

Importing this package never imports TensorFlow. Because the verbs share their modules' names,
`edge_mnist.bench` is the function; reach a module's other names with
`from edge_mnist.bench import measure`.
"""
from edge_mnist.bench import bench
from edge_mnist.check import evaluate as check
from edge_mnist.config import BenchConfig, DataConfig, EmulateConfig, ExportConfig, GateConfig, RunConfig, TrainConfig
from edge_mnist.core.errors import EdgeMnistError, GateFailed
from edge_mnist.core.version import __version__
from edge_mnist.data import Dataset, load_dataset
from edge_mnist.debug import debug
from edge_mnist.emulate import Emulation, emulate
from edge_mnist.export import export
from edge_mnist.folder.opener import Folder, open_folder
from edge_mnist.folder.records import BenchResult, Manifest
from edge_mnist.gate import Criteria, Verdict
from edge_mnist.pipeline import run
from edge_mnist.predict import predict
from edge_mnist.registry.datasets import DATASETS, Task
from edge_mnist.registry.formats import FORMATS, RUNTIMES, Format
from edge_mnist.registry.methods import METHODS, Method
from edge_mnist.registry.models import ARCHITECTURES
from edge_mnist.report import report
from edge_mnist.runtime import open_model
from edge_mnist.train import train

__all__ = ["ARCHITECTURES", "BenchConfig", "BenchResult", "Criteria", "DATASETS", "DataConfig", "Dataset",
           "EdgeMnistError", "EmulateConfig", "Emulation", "ExportConfig", "FORMATS", "Folder", "Format", "GateConfig",
           "GateFailed", "METHODS", "Manifest", "Method", "RUNTIMES", "RunConfig", "Task", "TrainConfig", "Verdict",
           "__version__", "bench", "check", "debug", "emulate", "export", "load_dataset", "open_folder", "open_model",
           "predict", "report", "run", "train"]
