"""What the machine offers: the device a run uses and whether its CPU computes bfloat16 natively.

Probes of the machine, kept apart from the algorithm: `train`, `cli` and the precision choice ask
them, the agent never does.
"""

from __future__ import annotations

import torch


def resolve_device(requested: str) -> torch.device:
    """`auto` picks CUDA when this torch build and machine have it."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def cpu_has_fast_bf16(cpuinfo_path: str = "/proc/cpuinfo") -> bool:
    """True when the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX). Elsewhere torch falls back
    to a path that is far slower than fp32 (measured 40x on an AVX2-only CPU)."""
    try:
        with open(cpuinfo_path, encoding="utf-8") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
