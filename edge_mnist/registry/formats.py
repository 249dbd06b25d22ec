"""The registries of runtimes and artifact formats that drive export, bench, check and the manifest.

A format says what it can do, so no caller re-derives it: its file and suffix, the runtime
that runs it (None: not runnable, e.g. a C array), precision and method, the exporter that
writes it, what it is built from, which formats it must agree with (parity group), and notes
for whoever runs it, which are also written into the artifact. Adding a format is one entry
here plus one exporter module; adding a runtime is one `Runtime` entry plus one runner module.
This module imports nothing heavy.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.registry import methods
from edge_mnist.registry.methods import FLOAT_KERAS, Method

# The tensor names of every exported model (Keras, TFLite and ONNX alike) and the ONNX opset we write.
INPUT_NAME, OUTPUT_NAME = "image", "probs"
ONNX_OPSET = 17
WEB_PAGE = "web/index.html"  # the page's entry file; the rest of web/ is listed with it (Artifact.parts)
QAT_KERAS_FILE = "model_qat.h5"  # the QAT Keras model; tfmot QAT models do not reload from the .keras format


@dataclass(frozen=True)
class Runtime:
    """An inference engine: the suffixes it opens and its runner class ("module:Class").

    `timed` is False for a runtime whose latency here says nothing about where it runs (TFLM's
    reference kernels on an x86 host are not a microcontroller): bench records its accuracy only.
    `optional` runtimes that are not installed are skipped with a note instead of failing.
    `subset` runtimes are too slow per image for the whole test set on every run: bench and check run them
    on a stratified subset of it (data.stratified_indices; TFLM_IMAGES images unless --tflm-images says).
    """

    name: str
    suffixes: tuple[str, ...]
    runner: str
    package: str  # the module an app imports for it (doctor imports it to say whether it loads)
    distribution: str  # its PyPI distribution, for the version
    install: str
    needs_tensorflow: bool = False
    timed: bool = True
    optional: bool = False
    subset: bool = False
    # (module, distribution) an app imports instead where the package has no wheel (tflite-runtime on armv7l)
    fallback: tuple[str, str] | None = None
    unavailable_on: tuple[str, ...] = ()  # machines (platform.machine()) PyPI has no wheel of it for

    @property
    def available_here(self) -> bool:
        """False on a machine this runtime cannot be installed on: its files are listed as not runnable there."""
        return platform.machine() not in self.unavailable_on


# Test images the `subset` runtimes (TFLM) run on by default: enough to hold them to parity with LiteRT,
# few enough that TFLM's reference kernels stay a small part of a run (measured in docs/microcontrollers.md).
TFLM_IMAGES = 500


RUNTIMES: dict[str, Runtime] = {r.name: r for r in (
    Runtime("tflite", (".tflite",), "edge_mnist.runtime.tflite:TFLiteRunner", "ai_edge_litert", "ai-edge-litert",
            "pip install ai-edge-litert (on armv7l: pip install tflite-runtime)",
            fallback=("tflite_runtime", "tflite-runtime")),
    Runtime("onnx", (".onnx", ".ort"), "edge_mnist.runtime.onnx:OnnxRunner", "onnxruntime", "onnxruntime",
            "pip install onnxruntime", unavailable_on=("armv7l", "armv6l")),
    Runtime("keras", (".keras", ".h5"), "edge_mnist.runtime.keras:KerasRunner", "tensorflow", "tensorflow",
            "pip install 'edge-mnist[train]' (TensorFlow)", needs_tensorflow=True),
    Runtime("tflm", (".tflite",), "edge_mnist.runtime.tflm:TFLMRunner", "tflite_micro", "tflite-micro",
            "pip install tflite-micro (x86-64 Linux)", timed=False, optional=True, subset=True),
    Runtime("openvino", (".onnx", ".tflite"), "edge_mnist.runtime.openvino:OpenVinoRunner", "openvino", "openvino",
            "pip install 'edge-mnist[openvino]'", optional=True),
)}


ONNX_INT8_NOTES = ("int8 QDQ converted from {source}: the same integer weights, scales and zero points; "
                   "input int8 image quantized with input_scale and input_zero_point, output int8 probs")
ORT_NOTES = "ORT format for ONNX Runtime Mobile (and any onnxruntime): the .onnx beside it, optimized once"
OPS_NOTES = "operators the .ort needs, for a reduced onnxruntime build (--include_ops_by_config)"


@dataclass(frozen=True)
class Format:
    """One artifact kind: where it is written, how it is made, what runs it and what it must agree with."""

    key: str
    file: str
    runtime: str | None
    precision: str  # "float32" | "int8"
    method: str  # a registry.methods name
    exporter: str  # "module:function"; "" for the trained model itself
    built_from: str | None  # FLOAT_KERAS, QAT_KERAS or another format's key; None for the trained model
    parity_group: str | None = None
    reference_rank: int | None = None  # float models usable as the reference, lowest first
    notes: str = ""
    also_runs: tuple[str, ...] = ()  # further runtimes that open the same file (TFLM, OpenVINO for int8 files)
    verifier: str = ""  # "module:function" the gate runs on a file that embeds the built_from model's bytes
    optional: bool = False  # export may not write it (web/, offline); a manifest without it is complete (see records)

    @property
    def suffix(self) -> str:
        """File suffix, e.g. '.tflite'."""
        return Path(self.file).suffix

    @property
    def is_int8(self) -> bool:
        """True for quantized artifacts, the ones the gate checks."""
        return self.precision == "int8"

    @property
    def runnable(self) -> bool:
        """False for formats no runtime here opens (a C array for microcontrollers)."""
        return self.runtime is not None

    @property
    def runs(self) -> tuple["Run", ...]:
        """Every runtime this file is measured and gated under, its own runtime first."""
        return tuple(Run(self, name) for name in ((self.runtime, *self.also_runs) if self.runnable else ()))

    @property
    def source(self) -> str:
        """The Keras model this artifact's predictions should match: FLOAT_KERAS or QAT_KERAS."""
        origin = self.built_from
        while origin in BY_KEY:
            origin = BY_KEY[origin].built_from
        return origin or FLOAT_KERAS


@dataclass(frozen=True)
class Run:
    """One format opened by one runtime: the unit bench measures and the gate checks."""

    fmt: Format
    runtime: str

    @property
    def primary(self) -> bool:
        """True for the format's own runtime (the one an app opens the file with by default)."""
        return self.runtime == self.fmt.runtime

    @property
    def key(self) -> str:
        """The format key, with `@runtime` for a further runtime (tflite_int8@tflm)."""
        return self.fmt.key if self.primary else f"{self.fmt.key}@{self.runtime}"

    @property
    def label(self) -> str:
        """The file name, with `@runtime` for a further runtime, for tables and gate lines."""
        return self.fmt.file if self.primary else f"{self.fmt.file}@{self.runtime}"


CPU_NOTES = ("the CPU build of {tflite} for LiteRT and tflite-runtime on phones, Pis and PCs: the stem (a first "
             "convolution on a 1- to 3-channel image, with its max pooling) in float32 on the same int8 weights, the "
             "rest all int8; the same int8 input and output; microcontrollers and NPUs take the all-integer file")
C_NOTES = ("C++ source for TensorFlow Lite Micro: the {tflite} flatbuffer as a const, 16-byte aligned byte array "
           "(declared in {header}); not runnable here, it is the .tflite's bytes")
H_NOTES = ("C++ header for {tflite}: the array, its length, labels, input and output scale and zero point, and the "
           "smallest TFLM tensor arena measured at export")


WEB_NOTES = ("a static page (web/index.html, served with `python -m http.server -d DIR/web`) that runs {onnx}, "
             "copied into web/, in onnxruntime-web (WASM, one thread, its files beside it): draw or photograph, "
             "preprocessed as `edge-mnist predict` does; window.edgeMnist.predict(ImageData) for scripts")


MICRO_C_NOTES = ("interpreter-free C99 of {tflite} for microcontrollers: const weights, one static activation buffer, "
                 "TFLite's reference integer arithmetic (the outputs equal TFLM's byte for byte); "
                 "{prefix}_invoke() is declared in {prefix}_micro.h")
MICRO_H_NOTES = ("header of the interpreter-free C of {tflite}: {prefix}_invoke(), input/output bytes, shape, labels, "
                 "input and output scale and zero point")


def int8_set(entry: Method) -> tuple[Format, ...]:
    """The int8 files of one method, one parity group: the .tflite from the method's Keras model, its CPU
    build (quantize.cpu_build; optional only so that folders exported before it are complete), the
    .onnx converted from it, the .ort made from that, and the .ort's required-operators config; beside
    them the C for microcontrollers made from the .tflite (the TFLM array and the interpreter-free C), and the web
    page made from the .onnx (one folder, web/, which the first int8 method of an export writes: for_methods)."""
    method, stem, source, tflite_notes = entry.name, entry.stem, entry.source, entry.tflite_notes
    kinds = ("tflite", "onnx", "ort", "c", "micro", "web")
    tflite, onnx, ort, c_source, micro, web = (entry.key(kind) for kind in kinds)
    group = f"{method}-int8"
    names = {"tflite": f"{stem}.tflite", "header": f"{stem}.h"}
    return (
        Format(tflite, f"{stem}.tflite", "tflite", "int8", method, "edge_mnist.export.tflite:export_int8", source,
               parity_group=group, notes=tflite_notes, also_runs=("tflm", "openvino")),
        Format(f"{tflite}_cpu", f"{stem}_cpu.tflite", "tflite", "int8", method, "edge_mnist.export.tflite:export_cpu",
               tflite, parity_group=group, notes=CPU_NOTES.format(tflite=f"{stem}.tflite"), optional=True),
        Format(f"{c_source}_h", f"{stem}.h", None, "int8", method, "edge_mnist.export.c_array:export_header", tflite,
               notes=H_NOTES.format(**names),
               verifier="edge_mnist.export.c_array:verify_header"),
        Format(c_source, f"{stem}.cc", None, "int8", method, "edge_mnist.export.c_array:export_source",
               tflite, notes=C_NOTES.format(**names), verifier="edge_mnist.export.c_array:verify_source"),
        Format(f"{micro}_h", f"{stem}_micro.h", None, "int8", method, "edge_mnist.export.micro_c:export_header",
               tflite, notes=MICRO_H_NOTES.format(prefix=stem, **names),
               verifier="edge_mnist.export.micro_c:verify_header"),
        Format(micro, f"{stem}_micro.c", None, "int8", method, "edge_mnist.export.micro_c:export_source",
               tflite, notes=MICRO_C_NOTES.format(prefix=stem, **names),
               verifier="edge_mnist.export.micro_c:verify_source"),
        Format(onnx, f"{stem}.onnx", "onnx", "int8", method, "edge_mnist.export.onnx:export_int8", tflite,
               parity_group=group, notes=ONNX_INT8_NOTES.format(source=f"{stem}.tflite"), also_runs=("openvino",)),
        Format(ort, f"{stem}.ort", "onnx", "int8", method, "edge_mnist.export.ort:export_ort", onnx,
               parity_group=group, notes=ORT_NOTES),
        Format(f"{ort}_ops", f"{stem}.required_operators.config", None, "int8", method,
               "edge_mnist.export.ort:export_ops_config", ort, notes=OPS_NOTES),
        Format(web, WEB_PAGE, None, "int8", method, "edge_mnist.export.web:export_page", onnx,
               notes=WEB_NOTES.format(onnx=f"{stem}.onnx"), verifier="edge_mnist.export.web:verify_page",
               optional=True),
    )


FORMATS: tuple[Format, ...] = (
    Format("keras_float32", "model_float32.keras", "keras", "float32", methods.FLOAT.name, "", None, reference_rank=0,
           notes="the trained float model; inference mode (training=False)"),
    Format("tflite_float32", "model_float32.tflite", "tflite", "float32", methods.FLOAT.name,
           "edge_mnist.export.tflite:export_float", FLOAT_KERAS, reference_rank=2),
    Format("onnx_float32", "model_float32.onnx", "onnx", "float32", methods.FLOAT.name,
           "edge_mnist.export.onnx:export_float", FLOAT_KERAS, reference_rank=1),
    *(fmt for entry in methods.QUANTIZED for fmt in int8_set(entry)),
)
BY_KEY: dict[str, Format] = {f.key: f for f in FORMATS}
BY_FILE: dict[str, Format] = {f.file: f for f in reversed(FORMATS)}  # a shared file: its first format
REFERENCE_ORDER: tuple[Format, ...] = tuple(sorted((f for f in FORMATS if f.reference_rank is not None),
                                                  key=lambda f: f.reference_rank))


def get(key: str) -> Format:
    """The registered format `key`, or a one-line error."""
    if key not in BY_KEY:
        raise EdgeMnistError(f"unknown artifact format {key!r}; known: {', '.join(BY_KEY)}")
    return BY_KEY[key]


def for_methods(chosen_methods: tuple[str, ...]) -> list[Format]:
    """Formats `export` writes for the chosen methods, each after the format it is built from.

    The float exports come with every method, so an int8 set always has float counterparts
    (the reference on a device without TensorFlow). A file two methods' formats share (web/index.html) is
    written by the first method's format in registry order (post-training before QAT).
    """
    for method in chosen_methods:
        methods.get(method)
    chosen: list[Format] = []
    for fmt in (f for f in FORMATS if f.exporter and f.method in (methods.FLOAT.name, *chosen_methods)):
        if fmt.file not in {c.file for c in chosen}:
            chosen.append(fmt)
    ordered: list[Format] = []
    while chosen:
        ready = next(f for f in chosen if f.built_from not in {c.key for c in chosen})
        ordered.append(ready)
        chosen.remove(ready)
    return ordered


RUNS: dict[str, Run] = {run.key: run for fmt in FORMATS for run in fmt.runs}


def rebuilt(method: Method) -> dict[str, Format]:
    """The int8 files of `method` that `debug` measures and `export --fallback` rebuilds with layers kept float, by
    runtime: the .tflite and the .onnx converted from it."""
    return {kind: BY_KEY[method.key(kind)] for kind in ("tflite", "onnx")}


def parity_groups(keys: list[str]) -> dict[str, list[Run]]:
    """Present runs (by Run.key) grouped by their format's parity group, the formats' own runtimes in
    registry order first, then further runtimes; groups of one are left out."""
    groups: dict[str, list[Run]] = {}
    ordered = [r for r in RUNS.values() if r.primary] + [r for r in RUNS.values() if not r.primary]
    for run in ordered:
        if run.key in keys and run.fmt.parity_group:
            groups.setdefault(run.fmt.parity_group, []).append(run)
    return {name: members for name, members in groups.items() if len(members) > 1}


OPTIONAL_RUNTIMES = tuple(name for name, r in RUNTIMES.items() if r.optional)


def check_skippable(skip_runtimes: tuple[str, ...]) -> None:
    """Only optional runtimes may be left out (--skip-runtime): a one-line error for any other."""
    unknown = set(skip_runtimes) - set(OPTIONAL_RUNTIMES)
    if unknown:
        raise EdgeMnistError(f"--skip-runtime: {', '.join(sorted(unknown))} cannot be left out; "
                             f"optional runtimes: {', '.join(OPTIONAL_RUNTIMES)}")


def chosen_runs(fmt: Format, skip_runtimes: tuple[str, ...] = ()) -> tuple[Run, ...]:
    """The format's runs without the optional runtimes the user chose to leave out (--skip-runtime)."""
    check_skippable(skip_runtimes)
    return tuple(run for run in fmt.runs if run.runtime not in skip_runtimes and RUNTIMES[run.runtime].available_here)


def left_out(formats: list[Format], skip_runtimes: tuple[str, ...]) -> list[tuple[Run, str]]:
    """(run, why) of the runs of `formats` that --skip-runtime or this machine leaves out, for the results
    to say so."""
    reasons = {name: f"--skip-runtime {name}" if name in skip_runtimes else
               f"not runnable on {platform.machine()} (PyPI has no {name} runtime for it)"
               for name, runtime in RUNTIMES.items() if name in skip_runtimes or not runtime.available_here}
    return [(run, reasons[run.runtime]) for fmt in formats for run in fmt.runs if run.runtime in reasons]


def runtime_for(path: Path) -> Runtime:
    """The runtime that opens a file, by its suffix; a one-line error for anything else."""
    suffix = Path(path).suffix.lower()
    for runtime in RUNTIMES.values():
        if suffix in runtime.suffixes:
            return runtime
    known = ", ".join(s for r in RUNTIMES.values() for s in r.suffixes)
    raise EdgeMnistError(f"{path}: unknown model format {suffix!r} (expected one of {known})")
