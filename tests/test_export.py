"""End-to-end `ddpg export` on smoke-trained runs: ONNX and TorchScript round trips, normalisation
inside the exported graph, the sidecar, deployment with no code of ours matching `ddpg eval`, the
verification gate, and one clear line for every bad input."""

import json
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from test_eval import assert_one_line_error, smoke_train
from typer.testing import CliRunner

from ddpg_cli import __version__
from ddpg_cli.cli import app
from ddpg_cli.policy import load_policy

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return smoke_train(tmp_path_factory.mktemp("export") / "plain")


@pytest.fixture(scope="module")
def normalized_run(tmp_path_factory) -> Path:
    run_dir = smoke_train(tmp_path_factory.mktemp("export") / "normalized", "env.normalize_obs=true")
    normalizer = load_policy(run_dir).policy.normalizer
    assert normalizer.enabled and normalizer.count > 0 and normalizer.mean.abs().max() > 0.05  # not a no-op
    return run_dir


def export(*args: str) -> object:
    result = runner.invoke(app, ["export", *args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def onnx_export(normalized_run, tmp_path_factory) -> Path:
    """One ONNX export (the exporter takes seconds), shared by the tests that read it."""
    out = tmp_path_factory.mktemp("onnx") / "deploy" / "pendulum.onnx"
    result = export(str(normalized_run), "--format", "onnx", "--out", str(out))
    assert f"as onnx to {out}" in result.stdout and f"sidecar {out}.json" in result.stdout
    assert "verified on 64 observations from Pendulum-v1" in result.stdout
    return out


def observations(count: int, seed: int = 0) -> np.ndarray:
    """Raw Pendulum observations, some outside what training saw (the normaliser must clip, not fail)."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(-1, 1, size=(count, 3)) * np.array([1.0, 1.0, 8.0])).astype(np.float32)


def reference_actions(run_dir: Path, obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return load_policy(run_dir).policy(torch.from_numpy(obs)).numpy()


def run_onnx(path: Path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda obs: session.run(["action"], {"obs": obs})[0]


def run_torchscript(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript; it still loads
        module = torch.jit.load(str(path))
    return lambda obs: module(torch.from_numpy(obs)).detach().numpy()


def deployed_returns(policy, sidecar: dict, episodes: int, seed: int) -> list[float]:
    """Drive the env as a user would: gymnasium, the exported file and its sidecar, none of our code."""
    env = gym.make(sidecar["env_id"], max_episode_steps=sidecar["max_episode_steps"], **sidecar["env_kwargs"])
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            action = policy(np.asarray(obs, dtype=np.float32)[None])[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


def eval_returns(run_dir: Path, episodes: int, seed: int) -> list[float]:
    result = runner.invoke(app, ["eval", str(run_dir), "--episodes", str(episodes), "--seed", str(seed), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["returns"]


def test_onnx_round_trip_includes_normalisation(normalized_run, onnx_export):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_export), providers=["CPUExecutionProvider"])
    [obs_input], [action_output] = session.get_inputs(), session.get_outputs()
    assert obs_input.name == "obs" and action_output.name == "action"
    assert not isinstance(obs_input.shape[0], int) and obs_input.shape[1] == 3  # a dynamic batch dimension
    run = run_onnx(onnx_export)
    for batch in (1, 9):
        obs = observations(batch)
        actions = run(obs)
        assert actions.shape == (batch, 1) and actions.dtype == np.float32
        np.testing.assert_allclose(actions, reference_actions(normalized_run, obs), rtol=0, atol=1e-5)
        assert np.all(actions >= -2.0) and np.all(actions <= 2.0)

    # The normalisation is inside the file: skipping it gives other actions.
    policy = load_policy(normalized_run).policy
    obs = observations(32)
    with torch.no_grad():
        unnormalised = (policy.actor(torch.from_numpy(obs)).clamp(-1, 1) * 2.0).numpy()
    assert np.abs(run(obs) - unnormalised).max() > 1e-2


def test_sidecar_describes_the_export(onnx_export):
    sidecar = json.loads(Path(f"{onnx_export}.json").read_text())
    assert sidecar["format"] == "onnx" and sidecar["file"] == "pendulum.onnx" and isinstance(sidecar["opset"], int)
    assert sidecar["input"] == {"name": "obs", "dtype": "float32", "shape": [None, 3], "low": [-1.0, -1.0, -8.0], "high": [1.0, 1.0, 8.0]}
    assert sidecar["output"] == {"name": "action", "dtype": "float32", "shape": [None, 1], "low": [-2.0], "high": [2.0]}
    assert sidecar["env_id"] == "Pendulum-v1" and sidecar["max_episode_steps"] == 20 and sidecar["normalize_obs"] is True
    assert sidecar["package_version"] == __version__ and sidecar["step"] == 200
    assert sidecar["checkpoint"].endswith("last.pt")
    assert sidecar["verification"]["tolerance"] == 1e-5 and sidecar["verification"]["max_abs_diff"] <= 1e-5
    assert sorted(p.name for p in onnx_export.parent.iterdir()) == ["pendulum.onnx", "pendulum.onnx.json"]  # no temp files


def test_torchscript_round_trip_to_the_default_path(run_dir):
    result = export(str(run_dir), "-f", "torchscript")
    out = run_dir / "export" / "policy.pt"
    assert f"as torchscript to {out}" in result.stdout and "max abs difference" in result.stdout
    sidecar = json.loads((run_dir / "export" / "policy.pt.json").read_text())
    assert sidecar["format"] == "torchscript" and sidecar["normalize_obs"] is False and "opset" not in sidecar
    run = run_torchscript(out)
    for batch in (1, 9):
        obs = observations(batch)
        np.testing.assert_allclose(run(obs), reference_actions(run_dir, obs), rtol=0, atol=1e-5)


def test_a_checkpoint_file_exports_beside_its_run(run_dir):
    export(str(run_dir / "checkpoints" / "step_000000100.pt"), "--format", "TorchScript")
    assert json.loads((run_dir / "export" / "policy.pt.json").read_text())["step"] == 100


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_policy_scores_what_eval_scores(normalized_run, onnx_export, tmp_path, fmt):
    if fmt == "onnx":
        path, policy = onnx_export, run_onnx(onnx_export)
    else:
        path = tmp_path / "policy.pt"
        export(str(normalized_run), "--format", fmt, "--out", str(path))
        policy = run_torchscript(path)
    sidecar = json.loads(Path(f"{path}.json").read_text())
    expected = eval_returns(normalized_run, episodes=2, seed=1000)
    assert deployed_returns(policy, sidecar, episodes=2, seed=1000) == pytest.approx(expected, rel=1e-5)


def test_verification_failure_exits_1_and_writes_nothing(run_dir, tmp_path, monkeypatch):
    import ddpg_cli.export

    real_loader = ddpg_cli.export.load_exported

    def off_by_a_little(path, fmt):
        run = real_loader(path, fmt)
        return lambda obs: run(obs) + 1e-3

    monkeypatch.setattr(ddpg_cli.export, "load_exported", off_by_a_little)
    out = tmp_path / "policy.pt"
    result = runner.invoke(app, ["export", str(run_dir), "--format", "torchscript", "--out", str(out)])
    assert_one_line_error(result, "verification failed: the exported torchscript policy differs from the checkpoint's by up to 0.001", code=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--format", "tflite"], "unknown export format 'tflite'; choose one of: onnx, torchscript"),
        (["--format", "torchscript", "--out", "{tmp}/a_file/policy.pt"], "a parent of it is a file, not a directory"),
        (["--format", "onnx", "--out", "{tmp}"], "it is a directory"),
        (["--format", "torchscript", "--out", "{tmp}/taken.pt"], "taken.pt.json: it is a directory"),
    ],
    ids=["unknown-format", "parent-is-a-file", "out-is-a-directory", "sidecar-is-a-directory"],
)
def test_bad_input_is_one_line_and_exit_2(run_dir, tmp_path, args, fragment):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "taken.pt.json").mkdir()
    result = runner.invoke(app, ["export", str(run_dir), *[arg.format(tmp=tmp_path) for arg in args]])
    assert_one_line_error(result, fragment)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a_file", "taken.pt.json"]  # no temp file left


def test_missing_onnx_extra_is_named(run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    result = runner.invoke(app, ["export", str(run_dir), "--format", "onnx", "--out", str(tmp_path / "p.onnx")])
    assert_one_line_error(result, "ONNX export needs onnx, onnxruntime, onnxscript (missing: onnxruntime): pip install 'ddpg-cli[export]'")
    assert list(tmp_path.iterdir()) == []


def test_a_td3_run_exports_and_its_export_matches_eval(tmp_path):
    """With twin critics and target smoothing the checkpoint holds more; the export is the actor alone."""
    run_dir = smoke_train(tmp_path / "td3", "agent.twin_critics=true", "agent.target_noise=0.2", "agent.policy_delay=2")
    out = tmp_path / "td3.onnx"
    export(str(run_dir), "--format", "onnx", "--out", str(out))
    obs = observations(32)
    np.testing.assert_allclose(run_onnx(out)(obs), reference_actions(run_dir, obs), rtol=1e-5, atol=1e-5)
