"""Automatic float fallback for `export --int8 --fallback`: the fewest Keras layers kept float so the
int8 artifacts of a method pass the gate.

The all-int8 model is tried first, then (when export did not equalize already) the all-int8 model of its
cross-layer-equalized copy (quantize.equalize): the same float function with no layer float. While the
.tflite or the .onnx converted from it fails any of the gate's criteria (gate.artifact_results, and parity
between the two), the next layer of the debugger's ranking (debug.analyse, worst first) is kept float too,
and both are rebuilt and re-measured on the test set: greedy, one layer per step, from whichever all-int8
model did better. A layer whose float weights would make the file mostly float is passed over (that is the
float model, not an int8 artifact). When no mix passes, the result says so and carries the best mix's
figures; export then exits 1. The cost of the float layers is measured in the same run: file size, and p50
latency interleaved with the all-int8 model under LiteRT and onnxruntime on one thread.

Post-training mixes come from one calibration (quantize.mixed.Mixer); QAT mixes leave the chosen layers
unannotated and fine-tune again (quantize.mixed.QatMixer), and each is gated against its own QAT Keras
model, as `check` gates the files export writes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edge_mnist.core.timing import interleaved_p50
from edge_mnist.gate import Criteria, Measured, Result, artifact_results, parity
from edge_mnist.quantize.layer_error import analyse
from edge_mnist.registry.formats import rebuilt
from edge_mnist.registry.methods import PTQ, Method
from edge_mnist.render.tables import describe


@dataclass
class Step:
    """One mix tried: its float layers, the accuracy per runtime and the criteria that failed."""

    float_layers: tuple[str, ...]
    accuracy: dict[str, float]
    failed: list[str]
    equalized: bool = False  # built from the cross-layer-equalized alternative

    @property
    def passed(self) -> bool:
        """True when every criterion passed for both files."""
        return not self.failed

    @property
    def label(self) -> str:
        """'conv1, conv2 float' or 'all int8', with ' after equalization' for the equalized alternative."""
        label = f"{', '.join(self.float_layers)} float" if self.float_layers else "all int8"
        return f"{label} after equalization" if self.equalized else label

    @property
    def rank(self) -> tuple:
        """Sort key, best first: fewest failed criteria, then highest worst-runtime accuracy, then fewest float
        layers (all-int8 can be the best of a failing search)."""
        return len(self.failed), -min(self.accuracy.values()), len(self.float_layers)


@dataclass
class Fallback:
    """What the search chose and what it costs."""

    steps: list[Step]
    ranking: list[str]
    followers: list[str] = field(default_factory=list)
    cost: dict[str, dict[str, float]] = field(default_factory=dict)
    mixers: dict[bool, object] = field(default_factory=dict)  # by Step.equalized: the Mixer its files come from

    @property
    def chosen(self) -> Step:
        """The first passing mix, else the best one (Step.rank)."""
        return min(self.steps, key=lambda s: s.rank)

    @property
    def mixer(self):
        """The Mixer that builds the chosen mix's files."""
        return self.mixers[self.chosen.equalized]

    @property
    def passed(self) -> bool:
        """True when some mix passed the gate."""
        return self.chosen.passed

    def describe(self) -> dict[str, str]:
        """Manifest details (and file metadata) of the chosen mix."""
        step = self.chosen
        if step.passed and not step.float_layers and not step.equalized:
            return {"fallback": "not needed: the all-int8 model passes the gate"}
        if step.passed and not step.float_layers:
            return {"fallback": f"passes the gate with no float layer after {len(self.steps)} step(s): "
                                "the all-int8 model after cross-layer equalization"}
        verdict = "passes the gate" if step.passed else f"NO MIX PASSES THE GATE; best mix kept ({step.label})"
        details = {"fallback": f"{verdict} after {len(self.steps)} step(s), by the debugger's ranking "
                               f"{', '.join(self.ranking)}"}
        if step.float_layers:
            details["float_layers"] = ", ".join(step.float_layers)
        if self.followers:
            details["float_followers"] = ", ".join(self.followers)
        return details

    def cost_note(self, runtime: str) -> str:
        """'size +X B (+Y%), p50 +Z us (+W%) against all-int8' for one runtime."""
        c = self.cost.get(runtime)
        if not c:
            return ""
        return (f"size {c['size_bytes']:+,.0f} B ({c['size_pct']:+.1f}%), p50 {c['p50_us']:+.1f} us "
                f"({c['p50_pct']:+.1f}%) against all-int8, {c['runtime']} on 1 thread, measured at export")


def evaluate_mix(runners: dict, images: np.ndarray, labels: np.ndarray, reference: Measured,
                 class_names: tuple[str, ...], criteria: Criteria, float_layers: tuple[str, ...],
                 method: Method = PTQ, source: np.ndarray | None = None) -> Step:
    """Run one mix's .tflite and .onnx on the test set and apply the gate's criteria to both; `source`: the
    predictions they must agree with (a QAT mix's own Keras model), else the float model's."""
    measured, results = {}, []
    source = reference.predictions if source is None else source
    for runtime, runner in runners.items():
        preds = runner.predict(images).argmax(1).astype(np.int64)
        measured[runtime] = Measured(runtime, rebuilt(method)[runtime].file, preds, float((preds == labels).mean()))
        results += artifact_results(measured[runtime], reference.accuracy, source, labels, class_names, criteria, {})
    if criteria.parity is not None:
        results.append(parity("tflite ~ onnx", measured["tflite"].predictions, measured["onnx"].predictions,
                              criteria.parity))
    failed = [_short(r) for r in results if not r.passed]
    return Step(float_layers, {k: m.accuracy for k, m in measured.items()}, failed)


def _short(result: Result) -> str:
    """A failed check in the words of `check`'s output: 'model_int8.onnx: accuracy 77.29% vs float 89.40%:
    drop 12.11 pp, tolerance 0.50 pp'."""

    return f"{result.artifact}: {describe(result)}"


def search(mixer, images: np.ndarray, labels: np.ndarray, reference: Measured, class_names: tuple[str, ...],
           criteria: Criteria, max_float_layers: int | None = None,
           progress: Callable[[str], None] = print, equalized: Callable[[], object] | None = None) -> Fallback:
    """Greedy float fallback over the debugger's ranking (module docstring). `equalized` makes the Mixer of the
    cross-layer-equalized model, tried all-int8 when `mixer`'s all-int8 model fails."""
    mixers = {False: mixer}

    def step(layers: tuple[str, ...], alternative: bool = False) -> Step:
        made = mixers[alternative]
        result = evaluate_mix(made.runners(layers), images, labels, reference, class_names, criteria, layers,
                              made.method, made.source(layers, images))
        result.equalized = alternative
        progress(f"fallback: {result.label} -> " + ", ".join(
            f"{k} {v:.4f}" for k, v in result.accuracy.items()) + (" PASS" if result.passed else " fail"))
        return result

    steps = [step(())]
    if not steps[0].passed and equalized is not None:
        mixers[True] = equalized()
        steps.append(step((), True))
    if steps[-1].passed:
        return Fallback(steps, [], mixers=mixers)
    on = min(steps, key=lambda s: s.rank).equalized
    mixer = mixers[on]
    runner = mixer.runner((), "tflite")
    table = analyse(mixer, mixer.tflite(), "tflite", images, labels, runner, rebuilt(mixer.method)["tflite"].file,
                    progress)
    ranking, layers = table.ranking(), ()
    for layer in ranking:
        if steps[-1].passed or (max_float_layers is not None and len(layers) >= max_float_layers):
            break
        trial = (*layers, layer)
        if mixer.runner(trial, "tflite").precision != "int8":
            progress(f"fallback: keeping {layer} float would make the file mostly float; passed over")
            continue
        layers = trial
        steps.append(step(layers, on))
    result = Fallback(steps, ranking, mixers=mixers)
    result.followers = result.mixer.followers(result.chosen.float_layers)
    result.cost = measure_cost(result.mixer, result.chosen.float_layers)
    return result


def measure_cost(mixer, float_layers: tuple[str, ...], rounds: int = 5, runs: int = 200) -> dict:
    """Size and p50 latency of the mix against the all-int8 model, per runtime, interleaved in one run."""

    if not float_layers:
        return {}
    image = np.zeros((1, *mixer.graph.shapes[mixer.graph.inputs[0]][1:]), np.float32)
    all_int8, mix = mixer.runners(), mixer.runners(float_layers)
    sizes = {"tflite": (len(mixer.tflite()), len(mixer.tflite(float_layers))),
             "onnx": (len(mixer.onnx()), len(mixer.onnx(float_layers)))}
    cost = {}
    for runtime, name in (("tflite", "LiteRT"), ("onnx", "onnxruntime")):
        calls = {"int8": all_int8[runtime].bound_call(image), "mix": mix[runtime].bound_call(image)}
        blocks = interleaved_p50(calls, rounds, {"int8": runs, "mix": runs})
        base, mixed = float(np.median(blocks["int8"])), float(np.median(blocks["mix"]))
        small, large = sizes[runtime]
        cost[runtime] = {"runtime": name, "size_bytes": large - small, "size_pct": (large - small) / small * 100,
                         "p50_us": mixed - base, "p50_pct": (mixed - base) / base * 100,
                         "p50_int8_us": base, "p50_mix_us": mixed}
    return cost


__all__ = ["search", "Fallback", "Step", "evaluate_mix", "measure_cost"]
