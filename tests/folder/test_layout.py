"""folder/layout.py: every file an artifact folder holds has its name here, and what a new model makes stale is
everything made from the old one and nothing that made it."""
from __future__ import annotations

import pytest

from edge_mnist.folder import layout
from edge_mnist.registry.formats import BY_KEY, FORMATS, QAT_KERAS_FILE

pytestmark = pytest.mark.device


def test_every_file_of_the_committed_export_is_named_here(device_export):
    present = {p.name for p in device_export.iterdir()}
    assert present <= set(layout.MODEL_FILES) | {layout.MANIFEST_FILE, layout.HISTORY_FILE}
    assert {f.file for f in FORMATS} | {QAT_KERAS_FILE} == set(layout.MODEL_FILES)


def test_a_new_model_makes_every_export_and_measurement_stale_but_not_itself():
    stale = set(layout.STALE_AFTER_TRAINING)
    assert not stale & {layout.KERAS_FILE, layout.HISTORY_FILE, layout.CURVES_FILE}
    assert set(layout.MODEL_FILES) - {layout.KERAS_FILE} <= stale and layout.WEB_DIR in stale
    assert {layout.MANIFEST_FILE, layout.BENCH_FILE, layout.CHECK_FILE, layout.REPORT_FILE} <= stale
    assert set(layout.ARTIFACT_PLOTS) <= stale


def test_what_commands_write_includes_the_lock_and_every_record():
    assert {layout.LOCK_FILE, layout.MANIFEST_FILE, layout.BENCH_FILE, layout.HISTORY_FILE, layout.DEBUG_FILE,
            layout.REPORT_FILE, *layout.PLOT_FILES, *layout.MODEL_FILES} <= layout.WRITTEN_FILES


def test_the_float_model_is_the_registry_s_and_every_model_file_is_known():
    assert layout.KERAS_FILE == BY_KEY["keras_float32"].file
    assert {f.file for f in FORMATS} <= set(layout.MODEL_FILES)
