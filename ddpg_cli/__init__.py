"""ddpg-cli: train, evaluate, render and export DDPG agents on Gymnasium environments."""

# First, before anything can load torch: MKL reads its reproducibility mode once, when torch loads it.
from ddpg_cli.reproducibility import enable_before_torch

enable_before_torch()

from importlib.metadata import PackageNotFoundError, version  # noqa: E402

try:
    __version__ = version("ddpg-cli")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
