"""The smoke-training gate we document (docs/ci.md, README) is the one .ci/run runs: same commands, same gate;
the container test runs after it."""

import os
import re
import shlex
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")


def ddpg_commands(script: str) -> list[list[str]]:
    """The `ddpg train` / `ddpg eval` command lines of a shell script, continuations joined, the venv
    prefix and the temporary runs directory of .ci/run written as in the docs."""
    joined = re.sub(r"\\\n\s*", " ", script)
    commands = []
    for line in joined.splitlines():
        line = re.sub(r"^\s*\$ ", "", line)  # a console transcript's prompt
        if not re.match(r"\s*(\.venv/bin/)?ddpg (train|eval) ", line):
            continue
        words = shlex.split(re.sub(r'"\$runs/([^"]*)"', r"runs/\1", line), comments=True)
        commands.append(["ddpg", *words[1:]])
    return commands


def fenced(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, flags=re.S)


def workflow() -> dict:
    (text,) = fenced("yaml")
    return yaml.safe_load(text)


def test_docs_and_ci_run_the_same_gate():
    ci = ddpg_commands((ROOT / ".ci" / "run").read_text(encoding="utf-8"))
    documented = ddpg_commands(fenced("bash")[0])
    steps = workflow()["jobs"]["smoke"]["steps"]
    in_workflow = ddpg_commands("\n".join(step.get("run", "") for step in steps))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (in_readme,) = [block for block in re.findall(r"```console\n(.*?)```", readme, flags=re.S) if "--min-return" in block]
    assert [c[:2] for c in ci] == [["ddpg", "train"], ["ddpg", "eval"]]
    assert ci == documented == in_workflow == ddpg_commands(in_readme)
    assert "--min-return" in ci[1] and "configs/smoke.yaml" in ci[0]


def test_workflow_installs_the_pinned_cpu_torch_on_python_311():
    steps = workflow()["jobs"]["smoke"]["steps"]
    (setup,) = [s for s in steps if s.get("uses", "").startswith("actions/setup-python")]
    assert str(setup["with"]["python-version"]) == "3.11"
    install = next(s["run"] for s in steps if "pip install" in s.get("run", ""))
    (pinned,) = re.findall(r"torch==([\w.+]+)", install)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (torch_requirement,) = [Requirement(r) for r in pyproject["project"]["dependencies"] if r.startswith("torch")]
    assert torch_requirement.specifier.contains(pinned)
    assert "--index-url https://download.pytorch.org/whl/cpu" in install


def test_gate_config_is_the_measured_one():
    """The documented gate trains configs/smoke.yaml as it is: the settings the threshold was measured with."""
    from ddpg_cli.config import load_config

    train = ddpg_commands(fenced("bash")[0])[0]
    assert "--set" not in train
    config = load_config(ROOT / "configs" / "smoke.yaml")
    assert config.train.total_steps == 5000 and config.eval.episodes == 10 and config.seed == 0
    assert config.agent.actor_hidden == [64, 64] and config.agent.batch_size == 128


def test_ci_builds_and_runs_the_image_after_the_gate():
    """.ci/run ends with the container test, handing it the smoke run to compare the container's with."""
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    assert commands[-1] == 'tests/container/test-image.sh "$runs/smoke"'
    assert any(line.startswith(".venv/bin/ddpg eval") for line in commands[:-1]), "the image is tested after the smoke gate"
    for script in ("test-image.sh", "stand-in-base.sh"):
        assert os.access(ROOT / "tests" / "container" / script, os.X_OK), f"tests/container/{script} is not executable"
