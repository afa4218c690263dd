"""What a bitwise-exact resume on the CPU depends on, and the one setting that must precede torch.

On x86, torch's float32 matrix products run in Intel's MKL. Left to itself, MKL picks its kernels by
the memory alignment of the operands as well as by their values: an observation array that malloc
placed 16 bytes further along gives a product that differs in its last bits (measured on Intel Xeon
with AVX512 in batch products, and on AMD EPYC in the batch-1 and batch-2 products of acting). The
alignment depends on everything the process allocated before, so a run resumed inside a process that
did other work first, or simply a second run in one process, drifts from the uninterrupted run.

MKL's conditional numerical reproducibility (CNR) mode removes that dependence, and its strict form
also makes matrix products independent of the thread count. MKL reads the mode once, when torch
first loads it, from the `MKL_CBWR` environment variable; it cannot be changed afterwards. So
`enable_before_torch` runs first thing when the package is imported (`ddpg_cli/__init__.py`), which
covers the `ddpg` console script, `python -m ddpg_cli`, the test suite and any code that imports
ddpg_cli before torch. A value the user set is kept (an empty `MKL_CBWR=` turns the mode off).

`conditions()` lists what the promise depends on; checkpoints record it, and a resume under other
conditions says in one line that it is exact in state but not bitwise reproducible. Among them are
the versions of the libraries that step the environments (NumPy, Gymnasium and the physics engine the
run loaded): another build of a simulator gives other last bits in its states, as another CPU does in
the networks.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import os
import platform
import sys
from pathlib import Path
from typing import Any

MKL_MODE_VARIABLE = "MKL_CBWR"
DEFAULT_MKL_MODE = "AUTO,STRICT"

# mkl_service.h: the CNR branch constants and the strict flag, as mkl_cbwr_get(MKL_CBWR_ALL) returns them.
_MKL_CBWR_ALL = -1
_MKL_CBWR_STRICT = 0x10000
_MKL_BRANCHES = {
    1: "OFF",
    2: "AUTO",
    3: "COMPATIBLE",
    4: "SSE2",
    6: "SSSE3",
    7: "SSE4_1",
    8: "SSE4_2",
    9: "AVX",
    10: "AVX2",
    11: "AVX512_MIC",
    12: "AVX512",
    13: "AVX512_MIC_E1",
    14: "AVX512_E1",
}


def enable_before_torch() -> None:
    """Ask MKL for its reproducible mode, unless the user chose one. Effective only before torch loads."""
    os.environ.setdefault(MKL_MODE_VARIABLE, DEFAULT_MKL_MODE)


@functools.cache  # MKL fixes its mode when it loads: it cannot change within a process
def mkl_mode() -> str:
    """The CNR mode MKL is actually in: `OFF`, `AUTO,STRICT`, ...; `no MKL` where torch has none
    (ARM, macOS), `unknown` where it cannot be read."""
    import torch

    if not torch.backends.mkl.is_available():
        return "no MKL"
    # torch links MKL statically into libtorch_cpu and exports MKL's service functions; reading the
    # mode through them is the only way to see what MKL uses (the variable may have come too late).
    name = {"darwin": "libtorch_cpu.dylib", "win32": "torch_cpu.dll"}.get(sys.platform, "libtorch_cpu.so")
    library = Path(torch.__file__).parent / "lib" / name
    try:
        getter = ctypes.CDLL(str(library)).mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return "unknown"
    getter.argtypes, getter.restype = [ctypes.c_int], ctypes.c_int
    value = getter(_MKL_CBWR_ALL)
    branch = _MKL_BRANCHES.get(value & ~_MKL_CBWR_STRICT, f"branch {value & ~_MKL_CBWR_STRICT}")
    return f"{branch},STRICT" if value & _MKL_CBWR_STRICT else branch


@functools.cache
def cpu_description() -> tuple[str, str]:
    """(vendor, model name) of this CPU, from /proc/cpuinfo where there is one."""
    vendor, model = platform.processor() or platform.machine(), ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "vendor_id":
                    vendor = value.strip()
                elif key == "model name":
                    model = value.strip()
                if key == "" and model:  # the end of the first processor's block
                    break
    except OSError:
        pass
    return vendor, model


# The libraries that compute an environment's steps: import name -> distribution name. A checkpoint
# records those the process has loaded (a Pendulum run never loads MuJoCo), so that a resume compares
# only what the run depends on.
_ENV_LIBRARIES = {"numpy": "numpy", "gymnasium": "gymnasium", "mujoco": "mujoco", "Box2D": "box2d"}


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution, or None where it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def env_libraries() -> dict[str, str | None]:
    """The versions of the environment libraries this process has loaded, by distribution name."""
    return {distribution: installed_version(distribution) for module, distribution in _ENV_LIBRARIES.items() if module in sys.modules}


def conditions() -> dict[str, Any]:
    """What a bitwise-equal CPU resume depends on, besides the checkpoint itself (JSON-safe)."""
    import torch

    vendor, model = cpu_description()
    return {
        "torch_threads": torch.get_num_threads(),
        "mkl_mode": mkl_mode(),
        "cpu_vendor": vendor,
        "cpu_model": model,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the kernels torch dispatches to
        "torch_version": str(torch.__version__),
        "env_libraries": env_libraries(),
    }


# What each condition is called in the warning line.
_NAMES = {
    "torch_threads": "torch threads",
    "mkl_mode": "MKL reproducibility mode",
    "cpu_vendor": "CPU vendor",
    "cpu_model": "CPU",
    "cpu_capability": "CPU instruction set",
    "torch_version": "torch",
}


def _library_differences(saved: dict[str, str | None]) -> list[str]:
    """The recorded environment libraries whose installed version is another now. Compared with what
    is installed rather than loaded: a resume compares before it creates the environments."""
    return [f"{name} {version} -> {now or 'not installed'}" for name, version in saved.items() if (now := installed_version(name)) != version]


def differences(saved: dict[str, Any] | None, current: dict[str, Any], ignore: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """The conditions that changed since `saved` was recorded, as `name A -> B` (empty when none).
    A checkpoint from before conditions were recorded counts as unknown, not as different."""
    if not saved:
        return []
    skipped = ignore | {"env_libraries"}  # compared below, with what is installed
    changed = [f"{_NAMES.get(key, key)} {saved[key]} -> {value}" for key, value in current.items() if key in saved and key not in skipped and saved[key] != value]
    if "env_libraries" in saved and "env_libraries" not in ignore:
        changed += _library_differences(saved["env_libraries"])
    return changed


def resume_warning(saved: dict[str, Any] | None, current: dict[str, Any], ignore: set[str] = frozenset()) -> str | None:  # type: ignore[assignment]
    """One line for a resume under other conditions, or None when they match."""
    changed = differences(saved, current, ignore)
    if not changed:
        return None
    return f"this run continues under other conditions ({'; '.join(changed)}): the resume is exact in state but not bitwise reproducible"
