"""Output files written atomically, for render and export: a hidden temp file beside the target,
renamed over it only once it is complete (and, for exports, verified)."""

from __future__ import annotations

import os
from pathlib import Path

from ddpg_cli.errors import OutputError


def prepare_output(out: Path) -> Path:
    """Check that `out` can be written and return the temp path to write first (same suffix, so
    writers that choose a format by extension still do).

    Fails early, before any slow work, with an OutputError: a directory in the way, a parent that
    cannot be created, no permission.
    """
    if out.is_dir():
        raise OutputError(f"cannot write {out}: it is a directory")
    temp = out.with_name(f".{out.stem}.tmp-{os.getpid()}{out.suffix}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        temp.touch()
    except (FileExistsError, NotADirectoryError):
        raise OutputError(f"cannot write {out}: a parent of it is a file, not a directory") from None
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or type(exc).__name__}") from None
    return temp


def commit_output(temp: Path, out: Path) -> None:
    """Move the finished temp file onto `out` (atomic on one filesystem)."""
    try:
        os.replace(temp, out)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {out}: {exc.strerror or type(exc).__name__}") from None
