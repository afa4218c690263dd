"""Presets: the tuned configs of the repository's `configs/`, found by name from anywhere.

`ddpg train halfcheetah` reads `configs/halfcheetah.yaml`. The files live in the repository's
top-level `configs/` (they are part of the design, next to the docs that measure them); the package
maps that folder in as `ddpg_cli.configs` (pyproject's package-dir), so an installed wheel carries
them. From a source tree that was not installed, the folder is read where it lies.

A preset's header comments say where its settings come from (`# from: ...`), once measured, what
it scored here (`# measured: ...`), and the return at which its task counts as solved
(`# solved at: X`, the final evaluation's mean; `ddpg compare` counts the seeds that reach it).
`ddpg configs` lists them.
"""

from __future__ import annotations

import difflib
import glob
import math
import re
from dataclasses import dataclass
import importlib.util
from pathlib import Path

import yaml

from ddpg_cli.errors import ConfigError

SUFFIX = ".yaml"


def presets_dir() -> Path:
    """The folder of the preset files: the installed package's data, or the source tree's configs/."""
    try:
        spec = importlib.util.find_spec("ddpg_cli.configs")
    except ImportError:
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        if any(Path(location).glob(f"*{SUFFIX}")):
            return Path(location)
    return Path(__file__).resolve().parent.parent / "configs"


def preset_names() -> list[str]:
    return sorted(path.stem for path in presets_dir().glob(f"*{SUFFIX}"))


def complete_config(incomplete: str) -> list[tuple[str, str]]:
    """Shell completion of a CONFIG argument: (value, help) for the presets whose names start with
    `incomplete`, and the YAML files and folders of the working directory that do too. Nothing for a
    path (`configs/h`) or where no preset matches: the shell then completes file names itself."""
    if "/" in incomplete or "\\" in incomplete or not any(name.startswith(incomplete.lower()) for name in preset_names()):
        return []
    matches = [(p.name, f"{p.env_id}, {p.total_steps:,} steps") for p in describe_presets() if p.name.startswith(incomplete.lower())]
    for entry in sorted(Path.cwd().glob(f"{glob.escape(incomplete)}*")):
        if entry.name.startswith(".") and not incomplete.startswith("."):
            continue
        if entry.is_dir():
            matches.append((f"{entry.name}/", "folder"))
        elif entry.suffix in (SUFFIX, ".yml"):
            matches.append((entry.name, "config file"))
    return matches


def resolve_config_path(argument: Path | None) -> Path | None:
    """A config argument as a file: the path when it exists, else the preset of that name; a name that
    is neither gets one line with the closest preset."""
    if argument is None or argument.exists():
        return argument
    text = str(argument)
    name = text.removesuffix(SUFFIX)
    if "/" not in text and "\\" not in text:
        candidate = presets_dir() / f"{name.lower()}{SUFFIX}"
        if candidate.is_file():
            return candidate
        close = difflib.get_close_matches(name.lower(), preset_names(), n=1, cutoff=0.6)
        hint = f" (did you mean the preset '{close[0]}'?)" if close else f"; presets: {', '.join(preset_names())}"
        raise ConfigError(f"config file not found: {text}: not a file, nor a preset name{hint}")
    raise ConfigError(f"config file not found: {text}")


@dataclass(frozen=True)
class PresetInfo:
    name: str
    env_id: str
    total_steps: int
    source: str  # where its settings come from
    measured: str | None  # what it scored here, once measured: the headline (the header's first line)
    measured_detail: str | None  # ... and the protocol, the seeds and the command
    path: Path
    solved_at: float | None = None  # the final evaluation return at which its task counts as solved


_HEADER = re.compile(r"^#\s*(from|measured|solved at):\s*(.+)$")


def describe_presets() -> list[PresetInfo]:
    infos = []
    for path in sorted(presets_dir().glob(f"*{SUFFIX}")):
        text = path.read_text(encoding="utf-8")
        header: dict[str, list[str]] = {"from": [], "measured": [], "solved at": []}
        key = None
        for line in text.splitlines():
            if not line.startswith("#"):
                break
            match = _HEADER.match(line)
            if match:
                key = match.group(1)
                header[key].append(match.group(2).strip())
            elif key and line.startswith("#   "):  # a continued field
                header[key].append(line[1:].strip())
            else:
                key = None
        data = yaml.safe_load(text) or {}
        infos.append(
            PresetInfo(
                name=path.stem,
                env_id=str(data.get("env", {}).get("id", "Pendulum-v1")),
                total_steps=int(data.get("train", {}).get("total_steps", 20_000)),
                source=" ".join(header["from"]) or "-",
                measured=header["measured"][0] if header["measured"] else None,
                measured_detail=" ".join(header["measured"][1:]) or None,
                path=path,
                solved_at=_threshold(header["solved at"], path),
            )
        )
    return infos


def _threshold(field: list[str], path: Path) -> float | None:
    """`# solved at: 90 (why)` as 90.0; None without the line."""
    if not field:
        return None
    first = field[0].split()[0]
    try:
        value = float(first)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(f"{path.name}: '# solved at:' takes a finite return such as 90 or -200, got {first!r}")
    return value


@dataclass(frozen=True)
class SolvedThreshold:
    """The return at which a task counts as solved, and where that figure came from."""

    value: float
    source: str  # "preset NAME" or "--solved-at"


def solved_threshold(env_id: str, presets: list[PresetInfo] | None = None) -> SolvedThreshold | None:
    """The `# solved at:` of the presets that train `env_id`: None when none states one, or when those
    that do disagree (no default is better than a guess); several that agree name the first."""
    stating = [p for p in (describe_presets() if presets is None else presets) if p.env_id == env_id and p.solved_at is not None]
    if not stating or len({p.solved_at for p in stating}) > 1:
        return None
    return SolvedThreshold(stating[0].solved_at, f"preset {stating[0].name}")  # type: ignore[arg-type]


_ASIDE = re.compile(r"\s*\([^()]*\)")
_AT_BUDGET = re.compile(r"(-?\d+(?:[.,]\d+)*) at (\d[\d.]*[kM]?)\b")


def measured_summary(measured: str) -> str:
    """A measured headline's last figure and its budget, for a narrow terminal: `median 5607.2 at 100k,
    8667.7 at 300k, seeds 0-2 (...)` gives `8667.7 at 300k`; without such a pair, its first figure."""
    text = _ASIDE.sub("", measured)
    if pairs := _AT_BUDGET.findall(text):
        return " at ".join(pairs[-1])
    figure = re.search(r"-?\d+(?:[.,]\d+)*", text)
    budget = re.findall(r"\bat (\d[\d.]*[kM]?)\b", text)
    return (figure.group() if figure else text.split(",")[0]) + (f" at {budget[-1]}" if budget else "")

