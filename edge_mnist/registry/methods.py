"""The registry of quantization methods: what each makes, from which Keras model, and what debug and the fallback
do for it.

One entry per method, as registry.formats holds one per file kind: the format registry builds each method's int8
files from its entry (names, keys, the model they come from), export asks quantize.plan for the step the entry
names, and debug and `--fallback` read what the entry says they may do. A method's name is spelled here and
nowhere else in the package (tests/registry/test_methods.py greps for it), so a new precision is one entry.
This module imports nothing of the project but core.
"""
from __future__ import annotations

from dataclasses import dataclass

from edge_mnist.core.errors import EdgeMnistError

FLOAT_KERAS = "float_keras"  # the trained float Keras model (a format's built_from, a method's source)
QAT_KERAS = "qat_keras"  # the QAT fine-tuned copy of it, made by `export --method qat`
ALL = "both"  # --method's value for every quantized method


@dataclass(frozen=True)
class Method:
    """One way to make a folder's files: its name (as --method and the manifest spell it), the infix its files
    and format keys carry, the Keras model they are converted from, and the quantize.plan step that prepares
    that model. `equalizes`: cross-layer equalization applies to it; `float_layer_accuracy`: debug measures
    the accuracy with each layer kept float from one calibration (QAT would need a fine-tune per layer);
    `fallback` says in words what `--fallback` does for it."""

    name: str
    label: str
    infix: str
    source: str | None  # FLOAT_KERAS or QAT_KERAS; None for the float files themselves
    planner: str = ""  # "module:function" of quantize.plan; "" for the float files
    equalizes: bool = False
    float_layer_accuracy: bool = False
    fallback: str = ""
    help: str = ""
    tflite_notes: str = ""

    @property
    def quantized(self) -> bool:
        """True for the int8 methods, the ones the gate checks."""
        return self.source is not None

    @property
    def stem(self) -> str:
        """The stem of its int8 files: model_int8, model_qat_int8."""
        return f"model{self.infix}_int8"

    def key(self, kind: str) -> str:
        """Its format key for a file kind: key("tflite") is tflite_int8 or tflite_qat_int8."""
        return f"{kind}{self.infix}_int8"


FLOAT = Method("float", "float", "", None, help="the float files only")
PTQ = Method("ptq", "PTQ", "", FLOAT_KERAS, "edge_mnist.quantize.plan:post_training", equalizes=True,
             float_layer_accuracy=True,
             fallback="keeps the fewest layers float in one calibration, after trying cross-layer equalization",
             help="post-training quantization",
             tflite_notes="full-integer int8: quantize the input with its scale and zero point")
QAT = Method("qat", "QAT", "_qat", QAT_KERAS, "edge_mnist.quantize.plan:quantization_aware",
             fallback="leaves the fewest layers unannotated and fine-tunes again",
             help="quantization-aware training",
             tflite_notes="full-integer int8 from quantization-aware training: quantize the input with its scale and "
                          "zero point")
METHODS: dict[str, Method] = {m.name: m for m in (FLOAT, PTQ, QAT)}
QUANTIZED: tuple[Method, ...] = tuple(m for m in METHODS.values() if m.quantized)
DEFAULT = PTQ  # --method's default
CHOICES: tuple[str, ...] = (*(m.name for m in QUANTIZED), ALL)  # what --method takes


def get(name: str) -> Method:
    """The registered method `name`, or a one-line error listing them."""
    if name not in METHODS:
        raise EdgeMnistError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name]


def chosen(value: str) -> tuple[str, ...]:
    """A --method value (a quantized method's name, or ALL) -> the names of the methods it picks."""
    return tuple(m.name for m in QUANTIZED) if value == ALL else (get(value).name,)


def by_source(source: str) -> Method:
    """The quantized method whose files are converted from the Keras model `source`."""
    return next(m for m in QUANTIZED if m.source == source)


__all__ = ["ALL", "CHOICES", "DEFAULT", "FLOAT", "FLOAT_KERAS", "METHODS", "Method", "PTQ", "QAT", "QAT_KERAS",
           "QUANTIZED", "by_source", "chosen", "get"]
