"""ddpg-cli: train, evaluate, render and export DDPG agents on Gymnasium environments."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ddpg-cli")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
