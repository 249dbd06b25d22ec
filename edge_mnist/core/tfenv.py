"""Import TensorFlow the way this toolkit needs it: Keras 2 (tf_keras) and without startup noise.

tfmot only accepts Keras 2 models, so TF_USE_LEGACY_KERAS=1 must be set before TensorFlow is
imported; users of the CLI and library never have to set it themselves. TensorFlow's C++ code
prints INFO lines (oneDNN, CUDA stubs, CPU features) to fd 2 before its log level applies; we
capture fd 2 during import and replay every line that is not known noise, so real errors stay.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager

from edge_mnist.core.errors import require

_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)"
    r"|[IW]\d{4} .*"
    r"|E\d{4} .*(cuInit|cuda_(platform|dnn|fft|blas)|Unable to register cu)"
    r"|To enable the following instructions:.*"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate.*"
    r"|fully_quantize: .*)"
)


def setup_env() -> None:
    """Set the variables TensorFlow reads at import; user-set values win."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextmanager
def filtered_stderr(debug: bool = False):
    """Capture C-level stderr and replay only lines that are not TensorFlow startup noise."""
    if debug or os.environ.get("EDGE_MNIST_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines():
                if line.strip() and not _NOISE.match(line):
                    print(line, file=sys.stderr)


def import_tf(debug: bool = False):
    """Return (tensorflow, tf_keras), configured for this toolkit; one-line error if missing."""

    setup_env()
    with filtered_stderr(debug):
        tf = require("tensorflow", "train")
        tf.config.list_physical_devices("GPU")
    keras = require("tf_keras", "train")
    tf.get_logger().setLevel("ERROR")
    return tf, keras

