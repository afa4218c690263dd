"""Bitwise reproducibility on the CPU does not depend on where the allocator placed an array.

MKL, torch's CPU BLAS on x86, picks kernels by the memory alignment of the operands unless its
reproducibility mode is on (ddpg_cli/reproducibility.py). Without it, on an Intel Xeon with AVX512 a
run resumed inside a process that had done other work first was not bitwise equal to the
uninterrupted run; on an AMD EPYC the batch-1 and batch-2 products of acting change with alignment.
These tests force the alignment-dependent paths: operands placed 4 to 60 bytes past a 64-byte
boundary, and a training loop whose observations land somewhere new at every step.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import ddpg_cli.train as train_module
from ddpg_cli.checkpoint import load_checkpoint
from ddpg_cli.cli import app
from ddpg_cli.reproducibility import DEFAULT_MKL_MODE, conditions, differences, mkl_mode, resume_warning

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
needs_mkl = pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="this torch build has no MKL (not x86)")
EXPECTED_MODE = DEFAULT_MKL_MODE if torch.backends.mkl.is_available() else "no MKL"

# 2,048 observation dims (as in the kill -9 test that first showed the problem), small networks.
WIDE = [
    "env.id=envs_for_tests:WideObs-v0",
    "agent.actor_hidden=[32, 32]",
    "agent.critic_hidden=[32, 32]",
    "agent.batch_size=16",
    "agent.buffer_size=1000",
    "train.learning_starts=30",
    "eval.every=0",
    "eval.episodes=1",
    "checkpoint.every=0",
    "logging.tensorboard=false",
]


def sets(items: list[str]) -> list[str]:
    return [part for item in items for part in ("--set", item)]


def misaligned(array: np.ndarray, floats_past_boundary: int) -> np.ndarray:
    """A copy of `array` whose data starts `floats_past_boundary` float32s after a 64-byte boundary."""
    raw = np.empty(array.size + 32, dtype=np.float32)
    to_boundary = (-raw.ctypes.data // 4) % 16
    start = to_boundary + floats_past_boundary
    copy = raw[start : start + array.size].reshape(array.shape)
    copy[...] = array
    return copy


def shifted(tensor: torch.Tensor, floats_past_boundary: int) -> torch.Tensor:
    return torch.from_numpy(misaligned(tensor.numpy(), floats_past_boundary))


@needs_mkl
@pytest.mark.parametrize("batch", [1, 2, 16, 256])
def test_matrix_products_do_not_depend_on_where_their_operands_lie(batch):
    """The products of a linear layer, forward and backward, at every misalignment of each operand."""
    assert mkl_mode() == DEFAULT_MKL_MODE
    generator = torch.Generator().manual_seed(batch)
    for in_dim, out_dim in [(2048, 32), (17, 256), (256, 256)]:
        x = torch.randn(batch, in_dim, generator=generator)
        weight = torch.randn(out_dim, in_dim, generator=generator)
        bias = torch.randn(out_dim, generator=generator)
        grad_out = torch.randn(batch, out_dim, generator=generator)
        forward = F.linear(x, weight, bias)  # x W^T + b
        weight_grad = grad_out.t() @ x  # dL/dW
        input_grad = grad_out @ weight  # dL/dx
        for offset in range(1, 16):
            where = f"batch {batch}, {in_dim} -> {out_dim}, {4 * offset} bytes past a boundary"
            assert torch.equal(F.linear(shifted(x, offset), weight, bias), forward), f"forward, input moved: {where}"
            assert torch.equal(F.linear(x, shifted(weight, offset), bias), forward), f"forward, weight moved: {where}"
            assert torch.equal(shifted(grad_out, offset).t() @ shifted(x, offset), weight_grad), f"weight gradient: {where}"
            assert torch.equal(shifted(grad_out, offset) @ shifted(weight, offset), input_grad), f"input gradient: {where}"


class MisalignedObservations:
    """The training loop's vector env, returning each batch of observations at a new alignment.

    The offsets come from one counter for the whole process, so a resumed run sees other alignments
    at the same steps than the uninterrupted run did: as after a process has allocated other things.
    """

    offsets = itertools.cycle(range(1, 16))

    def __init__(self, envs) -> None:
        self._envs = envs

    def __getattr__(self, name: str):
        return getattr(self._envs, name)

    def reset(self, **kwargs):
        obs, info = self._envs.reset(**kwargs)
        return misaligned(obs, next(self.offsets)), info

    def step(self, actions):
        obs, *rest = self._envs.step(actions)
        return (misaligned(obs, next(self.offsets)), *rest)


@pytest.mark.parametrize("num_envs", [1, 2])
def test_a_resume_inside_a_process_that_did_other_work_is_bitwise_exact(tmp_path, monkeypatch, num_envs):
    from test_train import assert_same_training_state

    original = train_module.make_vector_env
    monkeypatch.setattr(train_module, "make_vector_env", lambda env_config, n: MisalignedObservations(original(env_config, n)))
    config = sets(WIDE + [f"train.num_envs={num_envs}"])

    straight = tmp_path / "straight"
    result = runner.invoke(app, ["train", *config, "--set", "train.total_steps=120", "--run-dir", str(straight), "--quiet"])
    assert result.exit_code == 0, result.output

    resumed = tmp_path / "resumed"
    result = runner.invoke(app, ["train", *config, "--set", "train.total_steps=60", "--run-dir", str(resumed), "--quiet"])
    assert result.exit_code == 0, result.output
    other_work = [np.ones(size, dtype=np.float32) for size in (3, 1021, 4099, 65_537)] + [torch.ones(size) for size in (5, 3001)]
    result = runner.invoke(app, ["train", "--resume", str(resumed), "--set", "train.total_steps=120", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output, result.output  # same process, same conditions
    del other_work

    assert_same_training_state(load_checkpoint(straight / "checkpoints" / "last.pt"), load_checkpoint(resumed / "checkpoints" / "last.pt"))


TINY_RUN = sets(["agent.actor_hidden=[8]", "agent.critic_hidden=[8]", "agent.batch_size=8", "agent.buffer_size=100",
                 "train.total_steps=20", "train.learning_starts=10", "eval.every=0", "eval.episodes=1",
                 "logging.tensorboard=false"])  # fmt: skip


def test_every_entry_point_puts_mkl_in_its_reproducible_mode_before_torch_loads(tmp_path):
    """The console script, `python -m ddpg_cli`, and a program that imports torch, then ddpg_cli, to
    train: each records in its checkpoint the mode MKL really ran in. A user's own MKL_CBWR is kept."""
    env = {key: value for key, value in os.environ.items() if key != "MKL_CBWR"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), str(ROOT)])
    script = Path(sys.executable).parent / "ddpg"
    library_use = (
        "import sys, torch\n"
        "from pathlib import Path\n"
        "from ddpg_cli.config import load_config\n"
        "from ddpg_cli.train import train\n"
        "overrides = [value for flag, value in zip(sys.argv[1::2], sys.argv[2::2])]\n"
        "train(load_config(None, overrides), Path(sys.argv[-1]))\n"
    )
    commands = {
        "module": [sys.executable, "-m", "ddpg_cli", "train", *TINY_RUN, "--quiet", "--run-dir", str(tmp_path / "module")],
        "library": [sys.executable, "-c", library_use, *TINY_RUN, str(tmp_path / "library")],
    }
    if script.is_file():
        commands["script"] = [str(script), "train", *TINY_RUN, "--quiet", "--run-dir", str(tmp_path / "script")]
    children = {name: subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for name, command in commands.items()}
    user_choice = subprocess.run(
        [sys.executable, "-c", "from ddpg_cli.reproducibility import mkl_mode; print(mkl_mode())"],
        env={**env, "MKL_CBWR": ""}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    for name, child in children.items():
        output, _ = child.communicate(timeout=300)
        assert child.returncode == 0, f"{name}: {output}"
        recorded = load_checkpoint(tmp_path / name / "checkpoints" / "last.pt")["reproducibility"]
        assert recorded["mkl_mode"] == EXPECTED_MODE, f"{name}: {recorded}"
    assert user_choice.stdout.strip() == ("OFF" if torch.backends.mkl.is_available() else "no MKL")


def test_a_resume_under_other_conditions_says_so_in_one_line(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    assert runner.invoke(app, ["train", *TINY_RUN, "--run-dir", str(run_dir), "--quiet"]).exit_code == 0
    recorded = load_checkpoint(run_dir / "checkpoints" / "last.pt")["reproducibility"]
    assert recorded == conditions()
    assert {"torch_threads", "mkl_mode", "cpu_vendor", "cpu_capability"} <= set(recorded)
    # the libraries that stepped Pendulum, at the versions installed; the run's summary says the same
    assert recorded["env_libraries"]["numpy"] == np.__version__
    assert recorded["env_libraries"]["gymnasium"] == gym.__version__
    assert json.loads((run_dir / "summary.json").read_text())["conditions"]["env_libraries"] == recorded["env_libraries"]

    result = runner.invoke(app, ["train", "--resume", str(run_dir), "--set", "train.total_steps=30", "--quiet"])
    assert result.exit_code == 0 and "warning" not in result.output, result.output

    other_cpu = {**conditions(), "cpu_vendor": "SomeOtherVendor", "torch_threads": recorded["torch_threads"] + 1}
    monkeypatch.setattr("ddpg_cli.reproducibility.conditions", lambda: other_cpu)
    result = runner.invoke(app, ["train", "--resume", str(run_dir), "--set", "train.total_steps=40", "--quiet"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.output
    assert f"CPU vendor {recorded['cpu_vendor']} -> SomeOtherVendor" in warnings[0]
    assert "exact in state but not bitwise reproducible" in warnings[0]
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["counters"]["step"] == 40


def test_condition_differences():
    now = {"torch_threads": 2, "mkl_mode": "AUTO,STRICT", "cpu_vendor": "GenuineIntel"}
    assert differences(None, now) == []  # a checkpoint from before conditions were recorded
    assert differences(now, now) == []
    assert differences({**now, "torch_threads": 1}, now) == ["torch threads 1 -> 2"]
    assert resume_warning(now, now) is None
    # environment libraries compare with what is installed: the resume has not loaded them yet
    libraries = {"numpy": np.__version__, "gymnasium": "0.0.1", "no-such-simulator": "1.0"}
    assert differences({**now, "env_libraries": libraries}, {**now, "env_libraries": {}}) == [
        "gymnasium 0.0.1 -> " + gym.__version__,
        "no-such-simulator 1.0 -> not installed",
    ]
    assert differences({**now, "env_libraries": {"numpy": np.__version__}}, {**now, "env_libraries": {}}) == []
    assert json.dumps(conditions())  # plain values: safe for a weights_only checkpoint and for JSON


def test_a_run_whose_thread_count_changes_midway_ends_bitwise_equal_where_runs_follow_free_cpus(tmp_path, monkeypatch):
    """Runs without train.torch_threads follow the CPUs other processes leave free, changing their
    thread count as they go; where that is allowed, the count must not reach the numbers."""
    from ddpg_cli.config import load_config
    from ddpg_cli.precision import plan_precision
    from ddpg_cli.resources import CpuShare, fixed_threads_needed
    from test_train import assert_same_training_state

    wide = ["env.id=envs_for_tests:WideObs-v0", "agent.batch_size=256", "agent.buffer_size=2000",
            "train.total_steps=400", "train.learning_starts=100", "eval.every=0", "eval.episodes=1", "checkpoint.every=0",
            "logging.every=50", "logging.tensorboard=false"]  # fmt: skip — 256x256 networks, the default
    config = load_config(None, wide)
    if (why := fixed_threads_needed(config, precision=plan_precision(config, 1).precision)) is not None:  # auto: fp32 this short
        pytest.skip(f"this run keeps one thread count on this machine: {why}")

    fixed = tmp_path / "fixed"
    assert runner.invoke(app, ["train", *sets(wide + ["train.torch_threads=1"]), "--run-dir", str(fixed), "--quiet"]).exit_code == 0

    counts = itertools.cycle([2, 1, 3, 1])
    seen = []
    monkeypatch.setattr(CpuShare, "poll", lambda self: seen.append(next(counts)) or seen[-1])
    monkeypatch.setattr(train_module.Run, "progress_due", lambda self: True)  # poll at every step
    monkeypatch.setattr("ddpg_cli.resources.busy_cpus", lambda interval_s=0.25: 0.0)
    changing = tmp_path / "changing"
    result = runner.invoke(app, ["train", *sets(wide), "--run-dir", str(changing), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "adapts to load" in result.output and len(set(seen)) == 3
    assert_same_training_state(load_checkpoint(fixed / "checkpoints" / "last.pt"), load_checkpoint(changing / "checkpoints" / "last.pt"))
