"""Child script: how fast this machine runs the matmul that dominates a DDPG update.

A wall time means little without the machine's speed at that moment: a cloud VM can run the same
code 2x slower on a busy host, with no sign of it in the guest's own CPU counters. This times a
batch-256 x 256 x 256 float32 matmul (the hidden layer of the matched networks) at torch's default
thread count, so a speed table can be read against PEERS.md's "about 196 GFLOP/s on 2 threads".
Prints one line `BENCH_RESULT {json}`.
"""

from __future__ import annotations

import json
import statistics
import time

import torch


def matmul_gflops(size: int = 256, reps: int = 2000, windows: int = 5) -> float:
    """Median GFLOP/s over `windows` timing windows of `reps` matmuls each (after a warm-up)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    for _ in range(200):
        torch.mm(a, b, out=out)
    rates = []
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=out)
        rates.append(2 * size**3 * reps / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def main() -> None:
    result = {"matmul_256_gflops": matmul_gflops(), "torch_threads": torch.get_num_threads()}
    print("BENCH_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
