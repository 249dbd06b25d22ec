"""edge-mnist: the reference MNIST CNN from Keras to a Raspberry Pi or phone, gated in CI.

The public API is curated here. Importing it never imports TensorFlow; the functions that
need TensorFlow import it when called.
"""
from .check import Criteria, evaluate
from .data import Dataset, load_dataset
from .errors import EdgeMnistError, GateFailed
from .formats import FORMATS, Format
from .runtime import open_model

__version__ = "0.1.0"


def train(*args, **kwargs):
    """Train the reference CNN (see edge_mnist.train.train); imports TensorFlow."""
    from .train import train as _train

    return _train(*args, **kwargs)


def export(*args, **kwargs):
    """Export artifacts (see edge_mnist.convert.export); imports TensorFlow."""
    from .convert import export as _export

    return _export(*args, **kwargs)


def bench(*args, **kwargs):
    """Measure every artifact (see edge_mnist.bench.bench); no TensorFlow needed."""
    from .bench import bench as _bench

    return _bench(*args, **kwargs)


__all__ = ["Criteria", "Dataset", "EdgeMnistError", "FORMATS", "Format", "GateFailed", "bench", "evaluate",
           "export", "load_dataset", "open_model", "train", "__version__"]
