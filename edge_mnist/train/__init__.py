"""Training of the float model: tf.data pipeline, device and precision choice (TensorFlow, imported lazily)."""
from __future__ import annotations

import os
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np

from edge_mnist.config import STRATEGIES, TrainConfig
from edge_mnist.core.errors import EdgeMnistError
from edge_mnist.core.files import sha256_file, staged, writable_folder
from edge_mnist.core.keras_io import inference_copy, save_keras
from edge_mnist.core.lock import folder_lock
from edge_mnist.core.progress import keras_callback
from edge_mnist.core.tfenv import import_tf
from edge_mnist.data import Dataset, to_float
from edge_mnist.folder.layout import CURVES_FILE, HISTORY_FILE, KERAS_FILE, STALE_AFTER_TRAINING
from edge_mnist.folder.records import History
from edge_mnist.registry import datasets
from edge_mnist.registry.models import build, check_fits
from edge_mnist.render.plots import curves_title, training_curves
from edge_mnist.train.batchnorm import RECALIBRATION_BATCHES, batchnorm_layers, recalibrate
from edge_mnist.userdata import FileImages


# --augment's presets; the dataset registry names the one that suits its images (DatasetSpec.augment).
# digits: the source notebooks' ImageDataGenerator ranges. Its shear_range is an angle in degrees:
# 0.05 degrees moves a pixel at the image edge by 14 * tan(0.05 deg) = 0.012 px, below what
# bilinear resampling resolves, so shear is recorded but not applied. No flips (a flipped digit is
# another glyph). clothes: left-right flips (a mirrored shirt is a shirt) and shifts of up to 2 pixels,
# no rotation or zoom (Fashion-MNIST's items are upright and fill the frame); benchmarks/compact_search.py.
AUGMENT_PRESETS = {
    "digits": {"rotation_degrees": 7.0, "width_shift": 0.05, "height_shift": 0.07, "zoom": 0.05,
               "shear_degrees": 0.05, "shear_applied": False, "flips": False, "fill_mode": "nearest"},
    "clothes": {"rotation_degrees": 0.0, "width_shift": 2 / 28, "height_shift": 2 / 28, "zoom": 0.0,
                "flips": True, "fill_mode": "constant"},
}


def select_device(mixed_precision: bool) -> dict:
    """Say where training runs and set the precision policy.

    TensorFlow places ops on a visible GPU by itself. Mixed float16 only pays off on a GPU
    (on a CPU it is slower and less accurate), so without a GPU we fall back to float32.
    """
    tf, keras = import_tf()
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    policy = "mixed_float16" if (mixed_precision and gpus) else "float32"
    keras.mixed_precision.set_global_policy(policy)
    note = ""
    if mixed_precision and not gpus:
        note = "mixed precision needs a GPU; none visible, training in float32 on the CPU"
    return {"device": "GPU" if gpus else "CPU", "gpus": gpus, "policy": policy, "note": note}


def augmenter(seed: int, preset: str = "digits"):
    """An AUGMENT_PRESETS entry as Keras preprocessing layers, seeded: flips, rotation, shift and zoom as it sets."""
    _, keras = import_tf()
    layers, ranges = keras.layers, AUGMENT_PRESETS[preset]
    fill = ranges["fill_mode"]
    chosen = [layers.RandomFlip("horizontal", seed=seed + 3)] if ranges["flips"] else []
    if ranges["rotation_degrees"]:
        chosen.append(layers.RandomRotation(ranges["rotation_degrees"] / 360.0, fill_mode=fill, seed=seed))
    chosen.append(layers.RandomTranslation(ranges["height_shift"], ranges["width_shift"], fill_mode=fill,
                                           seed=seed + 1))
    if ranges["zoom"]:
        chosen.append(layers.RandomZoom(ranges["zoom"], fill_mode=fill, seed=seed + 2))
    return keras.Sequential(chosen, name="augment")


def make_pipeline(images, labels: np.ndarray, batch_size: int, seed: int, shuffle: bool,
                  augment: bool = False, preset: str = "digits"):
    """tf.data pipeline: shuffled indices -> batch -> gather + normalize (vectorized) -> prefetch.

    In-memory uint8 arrays stay in memory as two constants and only indices are shuffled, so each
    step does one gather per batch instead of moving 60k separate image tensors through a
    shuffle buffer; that is also how Keras feeds in-memory arrays. That map runs sequentially in
    the prefetch thread: a batch gather is cheap, and parallel map threads only compete with
    the training step for the cores. An image folder's train split (userdata.FileImages) takes the
    file-backed branch instead (file_gather): the same shuffled indices, now into its file list, and
    each batch's files read and decoded in parallel map calls, so only a few batches of pixels are held.
    With `augment` each batch then goes through `augmenter(preset)`. Sharding across workers is by
    element (DATA) on both branches: the dataset is made of indices, not files, shuffled with the same
    seed on every worker, so each keeps a disjoint share of every epoch (docs/your-own-data.md).
    """
    tf, _ = import_tf()
    y = tf.constant(labels.astype(np.int32))
    streamed = isinstance(images, FileImages)
    pixels = file_gather(tf, images) if streamed else array_gather(tf, images)

    def gather(index):
        x = tf.cast(pixels(index), tf.float32) / 255.0
        return (x[..., None] if len(images.shape) == 3 else x), tf.gather(y, index)

    ds = tf.data.Dataset.range(len(images))
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    parallel = {"num_parallel_calls": tf.data.AUTOTUNE, "deterministic": True} if streamed else {}
    ds = ds.batch(batch_size).map(gather, **parallel)
    if augment:
        transform = augmenter(seed, preset)
        ds = ds.map(lambda image, label: (transform(image, training=True), label))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def array_gather(tf, images: np.ndarray):
    """index batch -> its uint8 images, gathered from the array held as one constant."""
    x = tf.constant(images)
    return lambda index: tf.gather(x, index)


def file_gather(tf, images: FileImages):
    """index batch -> its uint8 images, read and decoded from their files by userdata's own Pillow code
    (FileImages.read), so a streamed image is exactly the pixels the in-memory path would hold."""

    def read(index):
        batch = tf.numpy_function(images.read, [index], tf.uint8, name="read_image_files")
        batch.set_shape((None, *images.shape[1:]))
        return batch

    return read


def augment_preset(dataset: Dataset) -> str:
    """The AUGMENT_PRESETS entry --augment uses for `dataset` (its registry entry names it)."""
    return datasets.get(dataset.name).augment if dataset.name in datasets.DATASETS else "digits"


def make_strategy(name: str, devices: int | None):
    """The tf.distribute strategy and its replica count.

    default: TensorFlow's default placement (the GPU when it sees one). mirrored: every local
    GPU, or `devices` logical CPU devices (how the tests run it without a GPU). multiworker:
    MultiWorkerMirroredStrategy, its cluster read from TF_CONFIG. Logical devices must be made
    before TensorFlow starts its runtime, so this runs before any model is built.
    """
    tf, _ = import_tf()
    if name not in STRATEGIES:
        raise EdgeMnistError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    if devices is not None and name != "mirrored":
        raise EdgeMnistError("--devices is for --strategy mirrored")
    if name == "default":
        return tf.distribute.get_strategy(), 1
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise EdgeMnistError("--strategy multiworker needs TF_CONFIG (the cluster and this worker's task)")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        return strategy, strategy.num_replicas_in_sync
    if devices:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
        except RuntimeError as exc:
            raise EdgeMnistError(f"--devices: TensorFlow has already started ({exc})") from exc
        strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(devices)])
    else:
        strategy = tf.distribute.MirroredStrategy()
    return strategy, strategy.num_replicas_in_sync


def is_chief(strategy) -> bool:
    """Whether this process writes the results: always, except a non-chief multi-worker worker."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                              and "chief" not in resolver.cluster_spec().as_dict())


def epoch_timer(keras):
    """A Keras callback timing each epoch: `.train_seconds` (the training pass alone, the
    figure images/second is computed from) and `.seconds` (including the validation pass)."""

    class Timer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seconds, self.train_seconds = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self._start, self._trained = time.perf_counter(), None

        def on_test_begin(self, logs=None):
            self._trained = time.perf_counter() - self._start

        def on_epoch_end(self, epoch, logs=None):
            total = time.perf_counter() - self._start
            self.seconds.append(total)
            self.train_seconds.append(total if self._trained is None else self._trained)

    return Timer()


def fit(model, dataset: Dataset, epochs: int, batch_size: int, seed: int, learning_rate: float,
        feed: str = "tf.data", augment: bool = False, label: str = "train", lr_schedule: str = "constant") -> dict:
    """Compile and fit `model` on the training split; return per-epoch metrics and timings.

    feed="tf.data" is what `edge-mnist train` uses; feed="arrays" hands Keras the in-memory
    float arrays instead, the reference benchmarks/suite.py compares the pipeline's speed with.
    `batch_size` is the global batch (split across replicas under a strategy). Progress is one
    bar per epoch named `label` (edge_mnist.core.progress), in place of Keras's own output.
    `lr_schedule` "cosine" decays the learning rate to 0 over all the steps (LR_SCHEDULES).
    """
    if feed not in ("tf.data", "arrays"):
        raise ValueError(f"feed must be 'tf.data' or 'arrays', not {feed!r}")
    if feed == "arrays" and isinstance(dataset.x_train, FileImages):
        raise ValueError("feed='arrays' needs the train split in memory, not an image folder's files")
    tf, keras = import_tf()
    rate = learning_rate
    if lr_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, epochs * -(-len(dataset.x_train) // batch_size))
    model.compile(optimizer=keras.optimizers.Adam(rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    test_ds = make_pipeline(dataset.x_test, dataset.y_test, 1024, seed, shuffle=False)
    timer = epoch_timer(keras)
    shown = keras_callback(keras, label, len(dataset.x_train), batch_size)
    common = dict(epochs=epochs, validation_data=test_ds, callbacks=[timer, shown], verbose=0)
    try:
        if feed == "arrays":
            history = model.fit(to_float(dataset.x_train), dataset.y_train.astype(np.int32), batch_size=batch_size,
                                shuffle=True, **common)
        else:
            history = model.fit(make_pipeline(dataset.x_train, dataset.y_train, batch_size, seed, shuffle=True,
                                              augment=augment, preset=augment_preset(dataset)), **common)
    except BaseException as exc:
        shown.stop()  # an epoch cut short says where it stopped, and its heartbeat ends
        failure = getattr(dataset.x_train, "failure", None)
        if isinstance(exc, tf.errors.OpError) and failure is not None:
            raise failure from None  # a train file that cannot be decoded: its one-line error, not TF's trace
        raise
    metrics = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    metrics["epoch_seconds"] = timer.seconds
    metrics["train_seconds"] = timer.train_seconds
    metrics["images_per_second"] = [len(dataset.x_train) / s for s in timer.train_seconds]
    return metrics


def train(dataset: Dataset, out: Path, config: TrainConfig, *, wait: bool = False) -> dict:
    """Train the chosen architecture and write the Keras model, history.json and curves PNG.

    The three files replace the folder's previous set in one swap, and the artifacts exported
    from the previous model leave with it (files.staged): the folder never mixes two models.
    The writing process holds DIR's lock throughout (core.lock; `wait` waits for another writer);
    a non-chief multi-worker worker writes nothing and takes none.
    """
    check_fits(config.architecture, dataset.task)  # before TensorFlow starts: a one-line error, not a shape trace
    tf, keras = import_tf()

    out = Path(out)
    writable_folder(out)
    strategy, replicas = make_strategy(config.strategy, config.devices)
    with folder_lock(out, "train", wait, create=True) if is_chief(strategy) else nullcontext():
        device = select_device(config.mixed_precision)
        keras.utils.set_random_seed(config.seed)
        global_batch = config.batch_size * replicas
        with strategy.scope():
            model = build(config.architecture, dataset.task)
            metrics = fit(model, dataset, config.epochs, global_batch, config.seed, config.learning_rate,
                          augment=config.augment, lr_schedule=config.lr_schedule)
        keras.mixed_precision.set_global_policy("float32")
        # Every worker reads the weights: BatchNorm's moving statistics are reduced across workers
        # when read, so a worker that skipped this would leave the chief waiting on a closed socket.
        final = inference_copy(model)
        batchnorm = recalibrated(final, keras, dataset, config)
        float_accuracy = evaluate_keras(final, dataset)
        history = {
            "config": asdict(config), **dataset.history_fields(),
            "device": device, "parameters": int(model.count_params()),
            "strategy": config.strategy, "replicas": replicas, "global_batch_size": global_batch,
            "augment": {"preset": augment_preset(dataset), **AUGMENT_PRESETS[augment_preset(dataset)]}
            if config.augment else None, "chief": is_chief(strategy),
            "test_accuracy": float_accuracy, "batchnorm": batchnorm, "tensorflow": tf.__version__,
            "history": metrics,
        }
        if not history["chief"]:
            return history
        with staged(out, drop=STALE_AFTER_TRAINING, last=(HISTORY_FILE,)) as stage:
            save_keras(final, stage / KERAS_FILE)
            history["keras_sha256"] = sha256_file(stage / KERAS_FILE)
            training_curves(metrics, stage / CURVES_FILE,
                            curves_title(dataset.name, config.architecture, float_accuracy))
            History.write(stage / HISTORY_FILE, history)
        return history


def recalibrated(model, keras, dataset: Dataset, config: TrainConfig) -> dict | None:
    """Recompute the trained model's BatchNorm statistics (train.batchnorm) from training batches, unaugmented and
    seeded; what history.json records of it: the test accuracy with Keras' moving statistics and the images used
    (None for a model without BatchNorm)."""
    if not batchnorm_layers(model, keras):
        return None
    before = evaluate_keras(model, dataset)
    batches = make_pipeline(dataset.x_train, dataset.y_train, config.batch_size, config.seed, shuffle=True)
    images = recalibrate(model, keras, batches.take(RECALIBRATION_BATCHES))
    return {"recomputed_from_images": images, "test_accuracy_with_moving_statistics": before}


def evaluate_keras(model, dataset: Dataset, source: str = "model") -> float:
    """Top-1 accuracy of a Keras model on the test split; a model whose outputs are NaN or do not
    depend on the input is refused (it would quantize to garbage and pass nothing meaningful)."""
    probs = model.predict(to_float(dataset.x_test), batch_size=1024, verbose=0)
    if not np.isfinite(probs).all():
        raise EdgeMnistError(f"{source}: the model's outputs on the test images are NaN or infinite")
    if float(np.ptp(probs, axis=0).max()) < 1e-6:
        raise EdgeMnistError(f"{source}: the model gives the same output for every test image (constant model)")
    return float((probs.argmax(1) == dataset.y_test).mean())
