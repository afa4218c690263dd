"""Presets: found by name from any directory and from an installed wheel; listed by `ddpg configs`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ddpg_cli.cli import app
from ddpg_cli.config import load_config
from ddpg_cli.presets import describe_presets, preset_names, presets_dir

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
PRESETS = ["pendulum", "mountaincar", "lunarlander", "bipedalwalker", "halfcheetah", "hopper", "walker2d", "ant", "swimmer",
           "reacher", "invertedpendulum", "inverteddoublependulum", "smoke", "pendulum_invert_gradients"]  # fmt: skip


def test_every_preset_exists_validates_and_says_where_its_settings_come_from():
    assert set(PRESETS) <= set(preset_names())
    described = {info.name: info for info in describe_presets()}
    for name in PRESETS:
        config = load_config(Path(name))  # by name, from wherever the tests run
        assert described[name].env_id == config.env.id
        assert described[name].total_steps == config.train.total_steps
    for name in set(PRESETS) - {"pendulum", "smoke", "pendulum_invert_gradients"}:
        assert described[name].source != "-", f"{name}: no '# from:' line in its header"


def test_presets_by_name_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["config", "show", "halfcheetah", "--set", "seed=3"])
    assert result.exit_code == 0, result.output
    assert "id: HalfCheetah-v5" in result.output and "twin_critics: true" in result.output
    assert runner.invoke(app, ["config", "show", "HalfCheetah"]).exit_code == 0  # any case
    result = runner.invoke(app, ["config", "show", "halfchetah"])
    assert result.exit_code == 2 and "did you mean the preset 'halfcheetah'" in result.output
    (tmp_path / "halfcheetah").write_text("env:\n  id: Pendulum-v1\n")  # a file of that name wins
    assert "id: Pendulum-v1" in runner.invoke(app, ["config", "show", "halfcheetah"]).output


def test_ddpg_configs_lists_the_presets():
    result = runner.invoke(app, ["configs", "--json"])
    assert result.exit_code == 0, result.output
    listed = {item["name"]: item for item in json.loads(result.output)["presets"]}
    assert listed["mountaincar"]["env_id"] == "MountainCarContinuous-v0" and listed["mountaincar"]["total_steps"] == 50_000
    assert set(PRESETS) <= set(listed)
    table = runner.invoke(app, ["configs"]).output
    assert "inverteddoublependulum" in table and "HalfCheetah-v5" in table
    assert "InvertedDoublePendulum-v5" in table and "LunarLanderContinuous-v3" in table  # env ids whole at 80 columns


@pytest.mark.skipif(sys.platform == "win32", reason="builds a wheel with the POSIX tools")
def test_a_non_editable_install_carries_the_presets(tmp_path):
    """`pip install .` (a wheel, not the source tree) must find the presets by name."""
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(ROOT)],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("ddpg_cli-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"ddpg_cli/configs/{name}.yaml" for name in PRESETS} <= set(names)

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)], check=True, capture_output=True, timeout=300)
    probe = "from ddpg_cli.presets import presets_dir; from ddpg_cli.config import load_config; from pathlib import Path; print(presets_dir()); print(load_config(Path('hopper')).env.id)"
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    where, env_id = result.stdout.split()
    assert Path(where).is_relative_to(target) and env_id == "Hopper-v5"
    assert presets_dir() != Path(where)
