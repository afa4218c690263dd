"""The one file that describes a sweep (`sweep.yaml`) or a search (`tune.yaml`): written atomically,
read back with one clear line when it is missing or foreign."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ddpg_cli.config import parse_yaml
from ddpg_cli.errors import ConfigError


def write_record(path: Path, format_name: str, fields: dict[str, Any]) -> None:
    """`path` replaced atomically by `fields` under a format header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(yaml.safe_dump({"format": format_name, "format_version": 1, **fields}, sort_keys=False), encoding="utf-8")
    temp.replace(path)


def read_record(directory: Path, filename: str, format_name: str, what: str) -> dict[str, Any]:
    """The record of `directory` (a sweep's, a search's); `what` names such a directory in errors."""
    path = directory / filename
    if not directory.is_dir():
        raise ConfigError(f"cannot resume: {directory} is not a directory")
    if not path.is_file():
        raise ConfigError(f"{directory} is not a {what} directory (no {filename})")
    document = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    if not isinstance(document, dict) or document.get("format") != format_name:
        raise ConfigError(f"{path} is not a ddpg-cli {what} file")
    if document.get("format_version") != 1:
        raise ConfigError(f"{path} has {what} format version {document.get('format_version')}; this ddpg-cli reads version 1")
    return document
