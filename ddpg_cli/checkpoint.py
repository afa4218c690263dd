"""Self-describing checkpoint files, written atomically and loaded without executing code.

A checkpoint is one `torch.save` file of plain containers, numbers, strings and tensors:
format and package versions, the resolved config, the progress counters, every network and optimiser,
and (for `last`) the noise, RNG and env states and the replay buffer needed for an exact resume.
Loading uses `torch.load(weights_only=True)`, whose unpickler refuses anything that could run code.

The run directory's layout is `layout.py`'s.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import platform
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from ddpg_cli import __version__
from ddpg_cli.errors import CheckpointError, StorageError
from ddpg_cli.layout import BEST, CHECKPOINT_DIR, LAST, checkpoint_dir  # noqa: F401 - offered here too, with the checkpoints
from ddpg_cli.layout import TEMP_PREFIX, TEMP_SUFFIX, temp_path

FORMAT_NAME = "ddpg-cli-checkpoint"
FORMAT_VERSION = 1


def periodic_name(step: int) -> str:
    return f"step_{step:09d}.pt"


def describe_environment() -> dict[str, str]:
    return {
        "package_version": __version__,
        "torch_version": str(torch.__version__),  # TorchVersion is a class weights_only refuses
        "python_version": platform.python_version(),
        "platform": platform.platform(),
    }


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """Write atomically: a hidden temp file in the same directory, fsync, rename, fsync the directory.

    A crash or kill -9 at any moment leaves either the previous file or the new one, never a torn one,
    and a temp file left behind by a kill is hidden, ignored, and removed by `--resume`. A failed write
    (a full disk, an I/O error) raises StorageError and leaves the previous file as it was.
    """
    payload = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **describe_environment(), **payload}
    temp = temp_path(path)
    replaced = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
        replaced = True
        _fsync_directory(path.parent)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        # torch.save reports a failed write as a RuntimeError whose context is the OSError
        os_error = _os_error(exc) if isinstance(exc, Exception) else None
        if os_error is None:
            raise
        kept = f"; the previous {path.name} is intact" if path.is_file() and not replaced else ""
        raise StorageError(f"cannot write checkpoint {path}: {os_error.strerror or os_error}{kept}") from None


def _os_error(exc: BaseException | None) -> OSError | None:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def remove_stale_temp_files(directory: Path) -> None:
    """Delete the temp files a killed writer left behind (`.NAME.tmp-PID`); none is ever a checkpoint."""
    for temp in directory.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}*"):
        with contextlib.suppress(OSError):
            temp.unlink()


def _fsync_directory(directory: Path) -> None:
    if sys.platform.startswith("win"):
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load and check a checkpoint; every failure is a CheckpointError with one clear line."""
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"not a checkpoint file: {path}")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise on top of our one line
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses globals it does not know: a crafted or foreign pickle stops here.
        lines = [line.strip() for line in str(exc).splitlines() if "unsupported" in line.lower() and not line.startswith(("Please", "Check"))]
        # ... without torch's advice to allow-list the global: not what to do with a file like this one
        reason = lines[0].removeprefix("WeightsUnpickler error: ").split(". Please")[0] if lines else "unsupported content"
        raise CheckpointError(f"refusing to load {path}: it holds objects that could execute code ({reason[:160]})") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError, IndexError) as exc:
        raise CheckpointError(f"corrupt or truncated checkpoint {path}: {type(exc).__name__}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path} is not a ddpg-cli checkpoint")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version}; this ddpg-cli ({__version__}) reads version {FORMAT_VERSION}"
        )
    return payload


def resolve_checkpoint(path: Path, which: str = "last") -> Path:
    """A checkpoint file as given, or `which` (best, last, or a file name) inside a run dir."""
    if not path.exists():
        raise CheckpointError(f"no such run directory or checkpoint: {path}")
    if path.is_file():
        return path
    candidate = Path(which)
    if candidate.is_file():
        return candidate
    name = f"{which}.pt" if which in ("best", "last") else which
    resolved = checkpoint_dir(path) / name
    if not resolved.is_file():
        available = sorted(p.name for p in checkpoint_dir(path).glob("*.pt")) if checkpoint_dir(path).is_dir() else []
        if not available:
            raise CheckpointError(f"{path} holds no checkpoints (is it a ddpg-cli run directory?)")
        raise CheckpointError(f"{path} has no checkpoint '{name}'; available: {', '.join(available)}")
    return resolved


def prune_periodic(run_dir: Path, keep: int) -> None:
    """Keep the `keep` newest periodic snapshots; `best` and `last` are never touched."""
    snapshots = sorted(checkpoint_dir(run_dir).glob("step_*.pt"))
    for old in snapshots[: max(len(snapshots) - keep, 0)]:
        old.unlink(missing_ok=True)
