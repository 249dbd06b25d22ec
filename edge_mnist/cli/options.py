"""The options the commands share. Each option's parameter name is the name of the config field it sets
(edge_mnist.config), so a command turns its options into configs by name (`configs`); validation that belongs to
the library lives there, not here."""
from __future__ import annotations

from pathlib import Path

import click

from edge_mnist.config import LR_SCHEDULES, STRATEGIES, from_options
from edge_mnist.data import DEFAULT_DATASET
from edge_mnist.gate import Criteria
from edge_mnist.quantize.equalize import BY_DEFAULT as EQUALIZE_BY_DEFAULT
from edge_mnist.registry import methods
from edge_mnist.registry.datasets import DATASETS
from edge_mnist.registry.formats import OPTIONAL_RUNTIMES, TFLM_IMAGES
from edge_mnist.registry.models import ARCHITECTURES
from edge_mnist.userdata import looks_like_path

DEFAULT_OUT = Path("export")
GATE = Criteria()


def configs(options: dict, *kinds: type) -> tuple:
    """One config of each of `kinds`, filled from a command's options by field name (config.from_options). An
    option no config takes is our bug, not the user's: it would be silently dropped, so it is refused."""
    used: set[str] = set()
    made = tuple(from_options(kind, options, used) for kind in kinds)
    unused = sorted(set(options) - used)
    if unused:
        raise RuntimeError(f"options no config takes: {', '.join(unused)}")
    return made


def _methods(ctx, param, value: str) -> tuple[str, ...]:
    """--method value -> the names of the quantization methods to export."""
    return methods.chosen(value)


out_option = click.option("--out", "out", type=click.Path(path_type=Path), default=DEFAULT_OUT, show_default=True,
                          help="Artifact folder.")


wait_option = click.option("--wait", is_flag=True,
                           help="If another edge-mnist command is writing DIR, wait for it instead of exiting 2.")


def option_group(*options):
    """Apply several click options in the order listed."""
    def apply(func):
        for option in reversed(options):
            func = option(func)
        return func
    return apply


class CommandHelp(click.Option):
    """An option several commands share whose help text is each command's own: `helps` maps a command name
    to its text, "*" to the text for the others."""

    def __init__(self, *args, helps: dict[str, str], **kwargs):
        """Keep the texts; click's own help is set when the help is shown."""
        super().__init__(*args, **kwargs)
        self.helps = helps

    def get_help_record(self, ctx):
        """The help line with the text of the command being shown."""
        self.help = self.helps.get(ctx.info_name, self.helps["*"])
        return super().get_help_record(ctx)


FOLDER_DATASET = "The folder's dataset (recorded at training) is used; naming another one is an error."


class DatasetChoice(click.Choice):
    """A registered dataset's name, or a path (a registered name wins, as userdata.resolve_dataset reads it): an
    existing one, or one written as a path (userdata.looks_like_path), which the library refuses in one line naming
    it when it is missing; anything else is refused as a name, with click's list of choices."""

    def convert(self, value, param, ctx):
        """The value itself when it names a registered dataset or a path, else click's Choice error."""
        if value not in self.choices and (Path(value).exists() or looks_like_path(value)):
            return value
        return super().convert(value, param, ctx)

    def get_metavar(self, param, ctx=None):
        """The choices and PATH."""
        return f"[{'|'.join(self.choices)}|PATH]"


YOUR_DATA = "or the path of your own image folder or .npz (docs/your-own-data.md)"
MOVED = "A user's dataset is reloaded from its recorded path; --dataset PATH: where it moved (same fingerprint)."
dataset_option = click.option("--dataset", type=DatasetChoice(list(DATASETS)), default=None, cls=CommandHelp, helps={
    "train": f"Dataset to train on, {YOUR_DATA} (default: {DEFAULT_DATASET}).",
    "run": f"Dataset to train on, or to import --model for, {YOUR_DATA} (default: {DEFAULT_DATASET}).",
    "export": f"{FOLDER_DATASET} {MOVED} With --model: the dataset the model is for, {YOUR_DATA} "
              f"(default: {DEFAULT_DATASET}).",
    "*": f"{FOLDER_DATASET} {MOVED}"})


def _channels(ctx, param, value: str | None) -> int | None:
    """--channels value -> 1 or 3 (None: from the files)."""
    return None if value is None else int(value)


def _image_size(ctx, param, value: str | None) -> tuple[int, int] | None:
    """--image-size value H or HxW -> (height, width)."""
    if value is None:
        return None
    parts = value.lower().split("x")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise click.BadParameter(f"{value!r} is not H or HxW (positive pixel counts)")
    return int(parts[0]), int(parts[-1])


own_data_options = option_group(
    click.option("--channels", type=click.Choice(["1", "3"]), default=None, callback=_channels,
                 help="Your own data only: load it grey (1) or RGB (3) (default: from the files)."),
    click.option("--image-size", type=str, default=None, callback=_image_size, metavar="H[xW]",
                 help="Your own image folder only: resize every image to H x W (default: the files' one size)."))


data_dir_option = click.option("--data-dir", type=click.Path(path_type=Path), default=None,
                               help="Folder with the dataset's .npz or its four IDX .gz files (offline use).")


threads_option = click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True,
                              help="Threads for every runtime (fixed, so figures are comparable).")


skip_runtime_option = click.option(
    "--skip-runtime", "skip_runtimes", multiple=True, type=click.Choice(list(OPTIONAL_RUNTIMES)),
    help="Leave an optional runtime out (tflm: TensorFlow Lite Micro's reference kernels take milliseconds "
         "per image; openvino: OpenVINO's CPU plugin); said in the results.")


def _image_count(ctx, param, value: str) -> int:
    """--tflm-images value -> a number of test images, 0 for the whole test set (also spelled 'all')."""
    if value.strip().lower() == "all":
        return 0
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        raise click.BadParameter(f"{value!r} is neither a number of images (0 or more) nor 'all'")
    return count


tflm_images_option = click.option(
    "--tflm-images", type=str, default=str(TFLM_IMAGES), show_default=True, callback=_image_count,
    metavar="N|all",
    help="Test images TensorFlow Lite Micro runs on: a subset stratified by class (the first images of each "
         "class), its reference kernels taking milliseconds per image; the gate holds it to parity with LiteRT "
         "there. 0 or all: the whole test set, with every check. LiteRT and ONNX Runtime always run all of it.")


micro_images_option = click.option(
    "--micro-images", type=str, default=str(TFLM_IMAGES), show_default=True, callback=_image_count,
    metavar="N|all",
    help="Test images the Cortex-M targets run (stratified by class, as --tflm-images); 0 or all: the whole "
         "test set.")


skip_qat_source_option = click.option(
    "--skip-qat-source", is_flag=True,
    help="Leave out disagreement and per-class drop of QAT artifacts against their QAT Keras model "
         "(for a device without TensorFlow); said in the verdict.")


seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Seed for training and sampling.")


method_option = click.option("--method", "methods", type=click.Choice(methods.CHOICES), default=methods.DEFAULT.name,
                             show_default=True, callback=_methods,
                             help="int8 by " + ", ".join(m.help for m in methods.QUANTIZED) + f", or {methods.ALL}.")


calib_option = click.option("--calib-samples", type=click.IntRange(1), default=500, show_default=True,
                            help="Training images used to calibrate int8 ranges.")


qat_epochs_option = click.option("--qat-epochs", type=click.IntRange(1), default=1, show_default=True,
                                 help="Epochs of quantization-aware fine-tuning.")


batch_option = click.option("--batch-size", type=click.IntRange(1), default=128, show_default=True,
                            help="Training batch size.")


training_options = option_group(
    out_option, dataset_option, data_dir_option, own_data_options,
    click.option("--epochs", type=click.IntRange(1), default=2, show_default=True, cls=CommandHelp, helps={
        "run": "Passes over the training set (not used with --model, which is imported, not trained).",
        "*": "Passes over the training set."}),
    batch_option, seed_option,
    click.option("--arch", "architecture", type=click.Choice(list(ARCHITECTURES)), default="reference_cnn",
                 show_default=True, help="Architecture to train (listed below)."),
    click.option("--augment", is_flag=True, help="Augment the training images as suits the dataset: MNIST "
                 "random rotation, shift and zoom (the notebooks' ranges), Fashion-MNIST left-right flips and "
                 "2-pixel shifts (recorded in history.json)."),
    click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
                 help="Adam's (initial) learning rate."),
    click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES), default="constant", show_default=True,
                 help="cosine: decay the learning rate to 0 over the epochs."),
    click.option("--strategy", type=click.Choice(STRATEGIES), default="default", show_default=True,
                 help="tf.distribute: mirrored = every local GPU (or --devices CPUs); multiworker = the "
                      "cluster in TF_CONFIG. The batch size is per replica."),
    click.option("--devices", type=click.IntRange(1, 64), default=None,
                 help="With --strategy mirrored: this many logical CPU devices (testing without GPUs)."))


ARCH_EPILOG = ("\b\nArchitectures (--arch): C32:3 = Conv 32 3x3 (C32:5s: 5x5 'same'), P = MaxPool 2x2, D0.5 = Dropout,"
               "\n B = BatchNorm, F = Flatten, H128 = Dense 128; hidden layers ReLU"
               " (C16:3sn: BatchNorm before the ReLU),\n then a Dense softmax.\n"
               + "\n".join(f"  {a.describe()}" for a in ARCHITECTURES.values()))


model_option = click.option("--model", "model", type=click.Path(path_type=Path), default=None,
                            help="Your own Keras model (.keras from Keras 3 or tf_keras, or .h5): the dataset's image "
                                 "shape as input (28x28x1 for mnist), one output per class. It becomes DIR's float "
                                 "reference; nothing is trained.")


gate_options = option_group(
    click.option("--tolerance", "tolerance_pp", type=float, default=GATE.tolerance_pp, show_default=True,
                 help="Max accuracy drop of an int8 artifact below float, in percentage points (pp)."),
    click.option("--relative", "relative_pct", type=float, default=GATE.relative_pct,
                 help="Max accuracy drop relative to float, in percent of the float accuracy."),
    click.option("--min-accuracy", type=float, default=GATE.min_accuracy,
                 help="Minimum accuracy of every int8 artifact, a fraction 0..1 (0.9 means 90.00%)."),
    click.option("--max-disagreement", "max_disagreement_pct", type=float, default=GATE.max_disagreement_pct,
                 show_default=True,
                 help="Max percent of test images where an int8 artifact and its source model disagree."),
    click.option("--max-class-drop", "max_class_drop_pp", type=float, default=GATE.max_class_drop_pp, show_default=True,
                 help="Max accuracy drop of any single class, in percentage points."),
    click.option("--parity", type=float, default=GATE.parity, show_default=True,
                 help="Min share of images on which the int8 artifacts of one group agree, a fraction 0..1 "
                      "(0.99 means 99.00%)."),
    click.option("--baseline", type=click.Path(path_type=Path), default=None,
                 help="An earlier bench.json (e.g. the last release's): each int8 artifact may fall at most "
                      "--tolerance below its accuracy there."),
    click.option("--strict-drop", is_flag=True,
                 help="Fail every accuracy drop beyond --tolerance (and disagreement beyond --max-disagreement, class "
                      "drop beyond --max-class-drop), also where the test set is too few images to tell it from noise "
                      "(by default such a drop fails only when its 95% interval lies above 0, a disagreement or class "
                      "drop only when its interval lies above its limit)."))


fallback_options = option_group(
    click.option("--equalize/--no-equalize", default=None,
                 help="Cross-layer equalization before post-training int8: rescale channel pairs across ReLU/MaxPool "
                      "so consecutive layers' weight ranges match (the same float function). Unset: "
                      f"{'on' if EQUALIZE_BY_DEFAULT else 'off'}, and --fallback tries it before float layers; "
                      "--no-equalize: never."),
    click.option("--fallback", is_flag=True,
                 help="Keep the fewest layers of the int8 files float, by `debug`'s ranking, until the .tflite and "
                      ".onnx pass the gate (its options below); exit 1 if no mix does. For --method qat the layers "
                      "are left unannotated and fine-tuned again."),
    click.option("--max-float-layers", type=click.IntRange(1), default=None,
                 help="With --fallback: at most this many float layers."))


# What `check` and `report` share: the folder, its data, and how the gate runs on it.
gate_run_options = option_group(out_option, dataset_option, data_dir_option, threads_option, gate_options,
                            skip_qat_source_option, skip_runtime_option, tflm_images_option)

