"""Latency and throughput measurement shared by `edge-mnist bench` and benchmarks/ (one implementation).

Warm-up first, then many timed repetitions with the garbage collector paused; report
percentiles and mean ± std in microseconds, because these shared machines are noisy and a
single mean hides the tail.
"""
from __future__ import annotations

import gc
import time
from typing import Callable

import numpy as np

PERCENTILES = {"p50": 50, "p90": 90, "p99": 99, "p999": 99.9}


def latency_us(call: Callable[[], object], runs: int = 1000, warmup: int = 100) -> dict:
    """Time `call` `runs` times after `warmup` calls; percentiles, mean and std in microseconds."""
    if runs < 1:
        raise ValueError("runs must be >= 1")
    for _ in range(warmup):
        call()
    samples = np.empty(runs, dtype=np.float64)
    clock = time.perf_counter_ns
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(runs):
            start = clock()
            call()
            samples[i] = clock() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    samples /= 1000.0
    stats = {name: float(np.percentile(samples, q)) for name, q in PERCENTILES.items()}
    stats.update(mean=float(samples.mean()), std=float(samples.std()), runs=runs, warmup=warmup)
    return stats


def interleaved_p50(calls: dict[str, Callable[[], object]], rounds: int, runs: dict[str, int]) -> dict[str, list[float]]:
    """p50 of each call in alternating blocks of `runs[key]` timed runs, `rounds` times over.

    Ratios between models on a shared machine are only trustworthy when both sides see the
    same noise; taking turns block by block gives them that. Returns the block p50s per key;
    callers report their median.
    """
    blocks: dict[str, list[float]] = {key: [] for key in calls}
    for _ in range(rounds):
        for key, call in calls.items():
            blocks[key].append(latency_us(call, runs=runs[key], warmup=max(5, runs[key] // 10))["p50"])
    return blocks


def interleaved_repeats(calls: dict[str, Callable[[], object]], rounds: int, runs: int,
                        repeats: int) -> list[dict[str, float]]:
    """`repeats` independent interleaved measurements (interleaved_p50, blocks of `runs`), each reduced to
    the median block p50 per call: the spread of a ratio over repeats is what a claim about it must show."""
    return [{name: float(np.median(v)) for name, v in interleaved_p50(calls, rounds, {n: runs for n in calls}).items()}
            for _ in range(repeats)]


def throughput_ips(call: Callable[[], object], batch: int, repeats: int = 5, min_seconds: float = 0.2) -> float:
    """Images per second for a batched call: median over `repeats` timed loops of >= min_seconds."""
    call()
    rates = []
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while True:
            call()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        rates.append(n * batch / elapsed)
    return float(np.median(rates))


def load_seconds(open_fn: Callable[[], object], repeats: int = 3) -> float:
    """Median wall time to open a model (file read, graph build, allocation)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        open_fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))
