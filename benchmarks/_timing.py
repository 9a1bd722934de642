"""Shared timing helper for the benchmark scripts: interleaved repeats, median milliseconds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved_median_ms(cases: dict[str, Callable[[], object]], *, repeats: int, warmup: int = 2) -> dict[str, float]:
    """Time every case ``repeats`` times, round-robin so that machine load drifts hit all cases alike.

    :return: median wall time per call in milliseconds, by case name
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(times) for name, times in samples.items()}


def print_ratio_table(title: str, times_ms: dict[str, float], baseline: str) -> None:
    """Print ``name  ms  ratio-to-baseline`` rows as a markdown table."""
    print(f"\n### {title}\n")
    print("| case | ms | ratio to " + baseline + " |")
    print("|---|---:|---:|")
    for name, ms in times_ms.items():
        print(f"| {name} | {ms:.2f} | {ms / times_ms[baseline]:.3f} |")
