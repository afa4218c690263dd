"""The domain errors the core raises.

Only `cli.py` turns them into one line on stderr and an exit code; everything below it raises.
`describe_error` is that line and that code, for the edge and for a run's failure record alike.
"""

from __future__ import annotations

import re


class DdpgError(Exception):
    """Base class: a failure the user can act on, reported without a traceback."""

    exit_code = 1


class ConfigError(DdpgError):
    """A config file, key, type or value that cannot be used."""

    exit_code = 2


class EnvError(DdpgError):
    """An environment id that does not resolve, or a space DDPG cannot act in."""

    exit_code = 2


class CheckpointError(DdpgError):
    """A missing, corrupt, unsafe or incompatible checkpoint or run directory."""

    exit_code = 2


class TrainingDiverged(DdpgError):
    """A NaN or infinity appeared in a loss, Q value, action or observation."""

    exit_code = 1


class StorageError(DdpgError):
    """A checkpoint that could not be written (a full disk, an I/O error, a lost permission); the
    previous checkpoint is left as it was."""

    exit_code = 1


class MissingExtraError(DdpgError):
    """An optional dependency (the `render` or `export` extra) that is not installed."""

    exit_code = 2


class OutputError(DdpgError):
    """An output that cannot be produced as asked: an unwritable path, an unknown video type or
    export format, or a window with no display to open it on."""

    exit_code = 2


class ExportError(DdpgError):
    """An export that failed, or whose file does not reproduce the in-process policy."""

    exit_code = 1


class RunBusyError(DdpgError):
    """A run directory that another process is training right now."""

    exit_code = 2


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(message: str) -> str:
    """`message` on one printable line, whatever a key or a path in it holds."""
    return _UNPRINTABLE.sub(lambda match: repr(match.group())[1:-1], message)


def describe_error(exc: BaseException) -> tuple[str, int]:
    """(the one-line reason, the exit code) of a failure: a domain error says what it is; anything
    else names its type and first line, and how to see the traceback."""
    if isinstance(exc, DdpgError):
        return one_line(str(exc)), exc.exit_code
    text = str(exc).strip()
    return one_line(f"{type(exc).__name__}: {text.splitlines()[0] if text else 'unexpected failure'} (set DDPG_DEBUG=1 for the traceback)"), 1
