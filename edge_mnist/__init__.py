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
`from edge_mnist.bench import machine_info`.
"""
__version__ = "0.6.0"

from .bench import bench  # noqa: E402
from .check import Criteria, Verdict  # noqa: E402
from .check import evaluate as check  # noqa: E402
from .data import Dataset, load_dataset  # noqa: E402
from .debug import debug  # noqa: E402
from .datasets import DATASETS, Task  # noqa: E402
from .emulate import Emulation, emulate  # noqa: E402
from .errors import EdgeMnistError, GateFailed  # noqa: E402
from .export import export  # noqa: E402
from .formats import FORMATS, RUNTIMES, Format  # noqa: E402
from .models import ARCHITECTURES  # noqa: E402
from .pipeline import run  # noqa: E402
from .predict import predict  # noqa: E402
from .records import BenchResult, Manifest  # noqa: E402
from .report import report  # noqa: E402
from .runtime import open_model  # noqa: E402
from .train import TrainConfig, train  # noqa: E402

__all__ = ["ARCHITECTURES", "BenchResult", "Criteria", "DATASETS", "Dataset", "EdgeMnistError", "Emulation",
           "FORMATS", "Format", "GateFailed", "Manifest", "RUNTIMES", "Task", "TrainConfig", "Verdict", "__version__",
           "bench", "check", "debug", "emulate", "export", "load_dataset", "open_model", "predict", "report", "run",
           "train"]
