"""edge-mnist: the reference MNIST CNN from Keras to a Raspberry Pi or phone, gated in CI.

The public API is curated here and never imports TensorFlow. Stages live in their modules:
edge_mnist.train.train, edge_mnist.convert.export, edge_mnist.bench.bench,
edge_mnist.check.evaluate; the first two import TensorFlow when called.
"""
from .check import Criteria, evaluate
from .data import Dataset, load_dataset
from .errors import EdgeMnistError, GateFailed
from .formats import FORMATS, Format
from .runtime import open_model

__version__ = "0.1.0"



__all__ = ["Criteria", "Dataset", "EdgeMnistError", "FORMATS", "Format", "GateFailed", "evaluate",
           "load_dataset", "open_model", "__version__"]
