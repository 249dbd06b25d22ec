"""benchmarks/suite.py: the per-process memory figure belongs to the child, not to its parent."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.device
SUITE = Path(__file__).resolve().parents[2] / "benchmarks" / "suite.py"


def test_child_peak_rss_excludes_the_parents_peak():
    """Linux carries a parent's ru_maxrss across fork+exec; the suite must report the child's own peak."""
    ballast = np.ones(400 * 2**20, dtype=np.uint8)  # the parent touches 400 MB before starting the child
    proc = subprocess.run([sys.executable, str(SUITE), "--baseline"], capture_output=True, text=True, check=True)
    child_mb = json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    assert ballast.sum() == ballast.size
    assert 5 < child_mb < 300
