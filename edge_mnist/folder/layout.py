"""Every file name of an artifact folder, in one place: the records, the models (from the format
registry), the pictures, and what each step makes stale. Other modules import names from here."""
from __future__ import annotations

from edge_mnist.core.lock import LOCK_FILE  # the writers' lock, never an artifact
from edge_mnist.registry.formats import BY_KEY, FORMATS, QAT_KERAS_FILE, WEB_PAGE

# Records (folder.records types them).
MANIFEST_FILE = "manifest.json"
BENCH_FILE = "bench.json"
EMULATE_FILE = "emulate.json"
CHECK_FILE = "check.json"  # the gate verdict `run` records (and `check --json DIR/check.json`), read by `info`
HISTORY_FILE = "history.json"  # the training (or import) record
DEBUG_FILE, DEBUG_PLOT = "debug.json", "debug.png"
REPORT_FILE = "report.html"

# Models: every format's file is named by the registry; these are the ones stages reach by role.
KERAS_FILE = BY_KEY["keras_float32"].file
MODEL_FILES = tuple(dict.fromkeys(f.file for f in FORMATS)) + (QAT_KERAS_FILE,)
WEB_DIR = WEB_PAGE.split("/")[0]  # the page's folder: a new model makes all of it stale

# Pictures (render.plots draws them).
CURVES_FILE = "training_curves.png"
CONFUSION_FILE = "confusion_float.png"
DISAGREEMENT_FILE = "int8_disagreement.png"
LATENCY_FILE = "latency_vs_size.png"
MISCLASSIFIED_FILE = "misclassified.png"
SAMPLES_FILE = "dataset_samples.png"
PLOT_FILES = (CURVES_FILE, CONFUSION_FILE, DISAGREEMENT_FILE, LATENCY_FILE, MISCLASSIFIED_FILE, SAMPLES_FILE)
ARTIFACT_PLOTS = (CONFUSION_FILE, DISAGREEMENT_FILE, LATENCY_FILE, MISCLASSIFIED_FILE)  # stale after a new export

# What a new model makes stale: everything exported from or measured on the previous one.
STALE_AFTER_TRAINING = tuple(f for f in MODEL_FILES if f != KERAS_FILE) + (
    WEB_DIR, MANIFEST_FILE, BENCH_FILE, EMULATE_FILE, CHECK_FILE, REPORT_FILE,
    *(p for p in PLOT_FILES if p != CURVES_FILE))
# The files a command writes into the folder: a report path given by the user must not be one of them.
WRITTEN_FILES = frozenset(MODEL_FILES + (MANIFEST_FILE, BENCH_FILE, EMULATE_FILE, HISTORY_FILE, DEBUG_FILE,
                                         DEBUG_PLOT, REPORT_FILE, LOCK_FILE) + PLOT_FILES)
