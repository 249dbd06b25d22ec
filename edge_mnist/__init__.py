"""edge-mnist: a Keras vision model to int8 TFLite and ONNX for a Raspberry Pi, phone or microcontroller, gated in CI.

The public API is the stage verbs, each a function of the module named for it:

    train(dataset, out, config)          edge_mnist.train      (TensorFlow, imported when called)
    export(out, dataset, methods)        edge_mnist.export     (TensorFlow, imported when called)
    bench(out, dataset)                  edge_mnist.bench
    check(out, criteria) -> Verdict      edge_mnist.check
    predict(out, images)                 edge_mnist.predict
    report(out, dataset, criteria)       edge_mnist.report     (DIR/report.html and its pictures; needs matplotlib)
    emulate(out, dataset) -> Emulation   edge_mnist.emulate    (int8 artifacts on an emulated Pi; needs root)
    debug(out, dataset)                  edge_mnist.debug      (per-layer int8 error; TensorFlow, imported when called)
    run(out, dataset, ...)               edge_mnist.pipeline   (all of the above)

Importing this package never imports TensorFlow. Because the verbs share their modules' names,
`edge_mnist.bench` is the function; reach a module's other names with
`from edge_mnist.bench import measure`.
"""
from edge_mnist.bench import bench
from edge_mnist.check import evaluate as check
from edge_mnist.core.errors import EdgeMnistError, GateFailed
from edge_mnist.core.version import __version__
from edge_mnist.data import Dataset, load_dataset
from edge_mnist.debug import debug
from edge_mnist.emulate import Emulation, emulate
from edge_mnist.export import export
from edge_mnist.folder.records import BenchResult, Manifest
from edge_mnist.gate import Criteria, Verdict
from edge_mnist.pipeline import run
from edge_mnist.predict import predict
from edge_mnist.registry.datasets import DATASETS, Task
from edge_mnist.registry.formats import FORMATS, RUNTIMES, Format
from edge_mnist.registry.models import ARCHITECTURES
from edge_mnist.report import report
from edge_mnist.runtime import open_model
from edge_mnist.train import TrainConfig, train

__all__ = ["ARCHITECTURES", "BenchResult", "Criteria", "DATASETS", "Dataset", "EdgeMnistError", "Emulation",
           "FORMATS", "Format", "GateFailed", "Manifest", "RUNTIMES", "Task", "TrainConfig", "Verdict", "__version__",
           "bench", "check", "debug", "emulate", "export", "load_dataset", "open_model", "predict", "report", "run",
           "train"]
