"""timing.py: the shared timer (bench and benchmarks/) and the interleaved ratio measurement."""
from __future__ import annotations

import time
from itertools import groupby

import pytest

from edge_mnist.core.timing import interleaved_p50, latency_us

pytestmark = pytest.mark.device


def test_latency_us_counts_runs_and_sees_a_slow_call():
    calls = []
    stats = latency_us(lambda: (calls.append(1), time.sleep(0.002)), runs=20, warmup=5)
    assert len(calls) == 25 and stats["runs"] == 20
    assert 2000 <= stats["p50"] <= stats["p90"] <= stats["p99"] <= stats["p999"]
    with pytest.raises(ValueError):
        latency_us(lambda: None, runs=0)


def test_interleaved_p50_takes_turns_block_by_block():
    order = []
    calls = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    blocks = interleaved_p50(calls, rounds=3, runs={"a": 50, "b": 20})
    assert {k: len(v) for k, v in blocks.items()} == {"a": 3, "b": 3}
    # each round: a's warm-up (5) and 50 runs, then b's warm-up (5) and 20 runs
    runs = [(key, sum(1 for _ in group)) for key, group in groupby(order)]
    assert runs == [("a", 55), ("b", 25)] * 3
