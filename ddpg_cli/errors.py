"""The domain errors the core raises.

Only `cli.py` turns them into one line on stderr and an exit code; everything below it raises.
"""


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
