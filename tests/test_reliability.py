"""Reliability: stop signals and kill -9 in real processes, non-finite values, hostile checkpoints,
disk errors. Each test injects one fault; docs/reliability.md lists them with their outcomes.

Exact resume after interruptions at chosen steps is proved in tests/test_train.py; the malformed-config
property test is tests/test_config_fuzz.py.
"""

from __future__ import annotations

import errno
import io
import math
import os
import pickle
import random
import shlex
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import pytest
import torch
from typer.testing import CliRunner

from ddpg_cli import checkpoint as ckpt
from ddpg_cli.checkpoint import load_checkpoint
from ddpg_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()

# A tiny run: 120 transitions, learning from step 30, `last` (and a snapshot) every 20 steps.
TINY = [
    "agent.actor_hidden=[16, 16]",
    "agent.critic_hidden=[16, 16]",
    "agent.batch_size=16",
    "agent.buffer_size=1000",
    "env.id=envs_for_tests:AsymmetricBounds-v0",
    "train.total_steps=120",
    "train.learning_starts=30",
    "eval.every=0",
    "eval.episodes=1",
    "checkpoint.every=20",
    "logging.every=20",
    "logging.tensorboard=false",
]


def sets(items: list[str]) -> list[str]:
    return [part for item in items for part in ("--set", item)]


def train(*args: str):
    return runner.invoke(app, ["train", *args, "--quiet"])


def assert_one_line_error(result, code: int, *fragments: str) -> str:
    """Exactly one non-empty output line, `error: ...`, holding every fragment; no traceback."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert result.exit_code == code, result.output
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], result.output
    assert "Traceback" not in result.output
    return errors[0]


def last_path(run_dir: Path) -> Path:
    return ckpt.checkpoint_dir(run_dir) / ckpt.LAST


def temp_files(run_dir: Path) -> list[Path]:
    """Temp files a writer leaves behind when it is killed: `.NAME.tmp-PID`, in the run or checkpoint dir."""
    found = list(run_dir.glob(".*.tmp-*"))
    if ckpt.checkpoint_dir(run_dir).is_dir():
        found += list(ckpt.checkpoint_dir(run_dir).glob(".*.tmp-*"))
    return found


def assert_finite_checkpoint(path: Path) -> dict:
    state = load_checkpoint(path)
    for network in ("actor", "critic", "actor_target", "critic_target"):
        for name, tensor in state["agent"][network].items():
            assert torch.isfinite(tensor).all(), f"{path}: {network}.{name} is not finite"
    return state


# --- stop signals and kill -9, in real processes ---------------------------------------------------

CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)]), "OMP_NUM_THREADS": "1"}

# 2,048 observation dims make each transition 16 KiB, so last.pt (which holds the replay buffer) grows
# by about 400 KiB per checkpoint, written every 25 steps: a write lasts long enough to be caught in
# the middle. Small networks keep the steps themselves fast.
SLOW_WRITES = [
    "env.id=envs_for_tests:WideObs-v0",
    "agent.actor_hidden=[32, 32]",
    "agent.critic_hidden=[32, 32]",
    "agent.batch_size=16",
    "agent.buffer_size=5000",
    "train.total_steps=1000000",
    "train.precision=fp32",  # a run this long would have `auto` time its update first (in a child, unpatched)
    "train.learning_starts=50",
    "eval.every=0",
    "eval.episodes=1",
    "checkpoint.every=25",
    "checkpoint.keep=1",
    "checkpoint.save_buffer=always",
    "logging.every=1000",
    "logging.tensorboard=false",
]


def spawn_train(*args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "ddpg_cli", "train", *args, "--quiet"]
    return subprocess.Popen(command, cwd=ROOT, env=CHILD_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def children(tmp_path_factory):
    """`ddpg train` processes, started together so that their imports (seconds each) overlap: one for
    SIGTERM, one for the double Ctrl-C, one for kill -9. Each is paused (SIGSTOP) once its first last.pt
    exists, and its test lets it go on (SIGCONT). Whatever a test leaves running is killed at the end."""
    base = tmp_path_factory.mktemp("children")
    names = ("sigterm", "sigint", "kill")
    started = {name: (spawn_train(*sets(SLOW_WRITES), "--run-dir", str(base / name)), base / name) for name in names}
    try:
        waiting = dict(started)
        deadline = time.monotonic() + 180
        while waiting and time.monotonic() < deadline:
            for name, (child, run_dir) in list(waiting.items()):
                if last_path(run_dir).is_file():
                    child.send_signal(signal.SIGSTOP)
                    del waiting[name]
                elif child.poll() is not None:
                    pytest.fail(f"`ddpg train` exited with {child.returncode}: {child.communicate()[1][-2000:]}")
            time.sleep(0.01)
        assert not waiting, f"no checkpoint from {sorted(waiting)} within 180 s"
        yield started
    finally:
        for child, _ in started.values():
            if child.poll() is None:
                child.kill()
            child.communicate()


def wait_until(condition: Callable[[], bool], child: subprocess.Popen, timeout: float = 180.0) -> bool:
    """Poll (tightly: a checkpoint write lasts milliseconds) until `condition`; False if the child exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if child.poll() is not None:
            return False
        time.sleep(0.0005)
    child.kill()
    _, stderr = child.communicate()
    pytest.fail(f"timed out after {timeout:.0f}s; child stderr: {stderr[-2000:]}")


def writing_last(run_dir: Path) -> bool:
    try:
        return any(name.startswith(f".{ckpt.LAST}.tmp-") for name in os.listdir(ckpt.checkpoint_dir(run_dir)))
    except FileNotFoundError:
        return False


def test_sigterm_as_from_docker_stop_saves_and_exits_143_within_the_grace_period(children):
    """`docker stop` sends SIGTERM, then SIGKILL 10 s later: the checkpoint must be saved before that."""
    child, run_dir = children["sigterm"]
    child.send_signal(signal.SIGCONT)
    time.sleep(random.uniform(0.0, 0.5))
    sent = time.monotonic()
    child.send_signal(signal.SIGTERM)
    stdout, stderr = child.communicate(timeout=60)
    assert time.monotonic() - sent < 10, "slower than docker stop's grace period"

    assert child.returncode == 143, stderr
    state = assert_finite_checkpoint(last_path(run_dir))
    step = state["counters"]["step"]
    text = " ".join(stdout.split())
    assert f"stopped by SIGTERM at step {step:,}; checkpoint saved to {last_path(run_dir)}" in text, stdout
    assert f"resume with: ddpg train --resume {run_dir}" in text, stdout
    assert stderr.strip() == ""
    assert temp_files(run_dir) == []


def test_second_sigint_during_the_save_does_not_corrupt_it(children):
    """Ctrl-C, then Ctrl-C again while last.pt is being written: exit 130 and a loadable checkpoint."""
    child, run_dir = children["sigint"]
    child.send_signal(signal.SIGCONT)
    time.sleep(random.uniform(0.0, 0.5))
    child.send_signal(signal.SIGINT)
    caught_writing = wait_until(lambda: writing_last(run_dir), child, timeout=60)
    child.send_signal(signal.SIGINT)  # the impatient second Ctrl-C, while the temp file is being written
    child.send_signal(signal.SIGINT)  # and a third
    stdout, stderr = child.communicate(timeout=120)

    assert child.returncode == 130, stderr
    assert caught_writing, "the process exited before the second SIGINT could hit a save"
    state = assert_finite_checkpoint(last_path(run_dir))
    step = state["counters"]["step"]
    assert state["resume"]["replay_buffer"]["size"] == step
    text = " ".join(stdout.split())
    assert f"stopped by SIGINT at step {step:,}; checkpoint saved to {last_path(run_dir)}" in text, stdout
    assert f"resume with: ddpg train --resume {run_dir}" in text, stdout
    assert stderr.strip() == ""
    assert temp_files(run_dir) == []


def test_kill_9_in_the_middle_of_a_checkpoint_write_keeps_the_previous_one_and_resume_is_exact(children, tmp_path):
    """kill -9 while last.pt is being written, at a random checkpoint: the previous last.pt loads, the
    half-written temp file is ignored and removed by --resume, and the resumed run ends bitwise
    identical to one never killed."""
    from test_train import assert_same_training_state

    child, run_dir = children["kill"]
    last = last_path(run_dir)
    child.send_signal(signal.SIGCONT)
    delay = random.uniform(0.0, 0.5)
    time.sleep(delay)  # a random number of checkpoints in
    assert wait_until(lambda: writing_last(run_dir), child), child.communicate()[1]
    child.kill()
    child.wait()
    assert child.returncode == -signal.SIGKILL

    leftovers = temp_files(run_dir)
    assert [p.name for p in leftovers] == [f".{ckpt.LAST}.tmp-{child.pid}"], f"not killed mid-write (delay {delay:.2f}s)"
    killed_at = assert_finite_checkpoint(last)["counters"]["step"]  # the previous last.pt, whole
    assert killed_at % 25 == 0

    # Resumed in this process: the stale temp file is removed and the run completes.
    total = killed_at + 30
    result = train("--resume", str(run_dir), "--set", f"train.total_steps={total}")
    assert result.exit_code == 0, result.output
    assert temp_files(run_dir) == []

    # The same run, never killed (and never checkpointed on the way: saving does not change the run).
    straight = tmp_path / "straight"
    result = train(*sets(SLOW_WRITES + [f"train.total_steps={total}", "checkpoint.every=0"]), "--run-dir", str(straight))
    assert result.exit_code == 0, result.output
    assert_same_training_state(load_checkpoint(last_path(straight)), load_checkpoint(last))


def test_stop_signal_during_the_final_evaluation_still_saves_the_finished_run(tmp_path, monkeypatch):
    """A Ctrl-C that lands after the last step (during the final evaluation) must not lose the steps
    since the last periodic checkpoint: the run finishes, saves and writes its summary."""
    import ddpg_cli.train as train_module

    original = train_module.evaluate

    def evaluate_then_interrupt(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", evaluate_then_interrupt)
    run_dir = tmp_path / "run"
    result = train(*sets(TINY), "--run-dir", str(run_dir))
    assert result.exit_code == 0, result.output
    assert load_checkpoint(last_path(run_dir))["counters"]["step"] == 120
    assert (run_dir / "summary.json").is_file()


# --- non-finite values -----------------------------------------------------------------------------


def nan_action_after(monkeypatch: pytest.MonkeyPatch, calls: int) -> None:
    from ddpg_cli.agent import DDPGAgent

    # The loop's actions come from `act` or, after an update, from the update acting on the next observation.
    original_act, original_update = DDPGAgent.act, DDPGAgent.update
    count = {"n": 0}

    def poisoned(action):
        count["n"] += 1
        return torch.full_like(action, math.nan) if count["n"] >= calls else action

    def act(self, obs):
        return poisoned(original_act(self, obs))

    def update(self, batch, act_on=None):
        action = original_update(self, batch, act_on)
        return None if action is None else poisoned(action)

    monkeypatch.setattr(DDPGAgent, "act", act)
    monkeypatch.setattr(DDPGAgent, "update", update)


def infinite_q_after(monkeypatch: pytest.MonkeyPatch, calls: int) -> None:
    from ddpg_cli.networks import Critic

    original = Critic.forward
    count = {"n": 0}

    def forward(self, obs, action):
        count["n"] += 1
        q = original(self, obs, action)
        return q * math.inf if count["n"] >= calls else q

    monkeypatch.setattr(Critic, "forward", forward)


@pytest.mark.parametrize(
    "extra, patch, fragments",
    [
        # A broken simulator: NaN in the 47th observation (counters are 0-based: step 46).
        (["env.id=envs_for_tests:NonFinite-v0", "env.kwargs={nan_at: 47}"], None, ["step 46:", "observation"]),
        # NaN in the observation a reset returns (the first reset after 45 steps is at step 50).
        (["env.id=envs_for_tests:Faulty-v0", "env.kwargs={fault: nan_reset, at: 45}"], None, ["step 50:", "reset", "observation"]),
        # An infinite reward at the 45th step.
        (["env.id=envs_for_tests:Faulty-v0", "env.kwargs={fault: inf_reward, at: 45}"], None, ["step 44:", "reward"]),
        # Rewards of 1e30 from step 45: finite, but the critic's squared error overflows float32.
        (["env.id=envs_for_tests:Faulty-v0", "env.kwargs={fault: huge_reward, at: 45}"], None, ["step 4", "critic loss (inf)"]),
        # The actor's output turns NaN (the 15th action it is asked for: step 44).
        ([], lambda mp: nan_action_after(mp, 15), ["step 44:", "action"]),
        # The critic's Q turns infinite.
        ([], lambda mp: infinite_q_after(mp, 40), ["step 4", "Q of the replayed actions ("]),
    ],
    ids=["nan-observation", "nan-reset-observation", "inf-reward", "loss-overflow", "nan-action", "inf-q"],
)
def test_non_finite_values_stop_training_and_keep_the_last_good_checkpoint(tmp_path, monkeypatch, extra, patch, fragments):
    if patch is not None:
        patch(monkeypatch)
    run_dir = tmp_path / "run"
    result = train(*sets(TINY + extra), "--run-dir", str(run_dir))
    line = assert_one_line_error(result, 1, *fragments)
    assert "non-finite" in line
    state = assert_finite_checkpoint(last_path(run_dir))  # saved at step 40, before the fault
    assert state["counters"]["step"] == 40
    assert f"last good checkpoint (step 40) is kept: {last_path(run_dir)}" in line


# --- checkpoints that would execute code ---------------------------------------------------------


class RunsShell:
    """Unpickling this calls os.system: the classic malicious checkpoint."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class RunsPython:
    """Unpickling this calls exec on Python source."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __reduce__(self):
        import builtins

        return (builtins.exec, (self.source,))


def write_payload(kind: str, path: Path, marker: Path) -> None:
    touch = RunsShell(f"touch {shlex.quote(str(marker))}")
    if kind == "raw-pickle":
        path.write_bytes(pickle.dumps(touch))
    elif kind == "torch-zip":
        torch.save(touch, path)
    elif kind == "inside-a-checkpoint":  # a file that looks like ours, with the payload in one field
        torch.save({"format": ckpt.FORMAT_NAME, "format_version": ckpt.FORMAT_VERSION, "config": {}, "agent": {"actor": touch}}, path)
    elif kind == "exec-python":
        torch.save({"format": ckpt.FORMAT_NAME, "agent": RunsPython(f"open({str(marker)!r}, 'w').close()")}, path)
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["raw-pickle", "torch-zip", "inside-a-checkpoint", "exec-python"])
def test_a_checkpoint_that_would_execute_code_is_refused_and_runs_nothing(tmp_path, kind):
    # Control: the payload is live; an unsafe load does create the file.
    control_file, control_marker = tmp_path / "control.pt", tmp_path / "CONTROL_RAN"
    write_payload(kind, control_file, control_marker)
    if kind == "raw-pickle":
        pickle.loads(control_file.read_bytes())
    else:
        torch.load(control_file, weights_only=False)
    assert control_marker.exists()

    marker = tmp_path / "PAYLOAD_RAN"
    run_dir = tmp_path / "run"
    ckpt.checkpoint_dir(run_dir).mkdir(parents=True)
    write_payload(kind, last_path(run_dir), marker)
    for args in (["eval", str(last_path(run_dir))], ["eval", str(run_dir)], ["train", "--resume", str(run_dir)]):
        with warnings.catch_warnings(record=True) as caught:  # in a terminal, a warning is more lines on stderr
            warnings.simplefilter("always")
            result = runner.invoke(app, args)
        assert_one_line_error(result, 2, "refusing to load", "could execute code")
        assert [str(w.message) for w in caught] == []
        assert not marker.exists(), f"`ddpg {' '.join(args)}` executed the payload"


def test_a_safe_checkpoint_with_missing_parts_is_one_line_and_exit_2(tmp_path):
    """Loads without executing anything, but holds nothing to resume from."""
    run_dir = tmp_path / "run"
    ckpt.save_checkpoint({"counters": "not a mapping"}, last_path(run_dir))
    assert_one_line_error(train("--resume", str(run_dir)), 2, "damaged or incomplete")
    assert_one_line_error(runner.invoke(app, ["eval", str(run_dir)]), 2, "damaged or incomplete")


def test_last_checkpoint_holds_only_the_filled_part_of_the_replay_buffer(tmp_path):
    """A 100,000-transition buffer (3.8 MiB preallocated) holding 120: last.pt stays small, so a
    checkpoint early in a run is quick to write and does not fill a disk with zeros."""
    run_dir = tmp_path / "run"
    assert train(*sets(TINY + ["agent.buffer_size=100000"]), "--run-dir", str(run_dir)).exit_code == 0
    state = load_checkpoint(last_path(run_dir))
    assert state["resume"]["replay_buffer"]["obs"].untyped_storage().nbytes() == 120 * 3 * 4
    assert last_path(run_dir).stat().st_size < 400_000


# --- disk errors -----------------------------------------------------------------------------------


def test_a_run_dir_that_cannot_be_created_is_one_line_and_exit_2(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = train(*sets(TINY), "--run-dir", str(blocker / "run"))
    assert_one_line_error(result, 2, "cannot write the run directory", str(blocker / "run"))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes through file permissions")
def test_a_read_only_parent_is_one_line_and_exit_2(tmp_path):
    parent = tmp_path / "read-only"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        result = train(*sets(TINY), "--run-dir", str(parent / "run"))
    finally:
        parent.chmod(0o700)
    assert_one_line_error(result, 2, "cannot write the run directory", "ermission denied")


class FullDisk(io.FileIO):
    """A file on a disk that fills up after `room` bytes: write() then fails with ENOSPC."""

    room = 4096

    def write(self, data) -> int:
        if self.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.name)
        return super().write(data)


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    """The second write of last.pt hits a full disk: one clear line, exit 1, the first last.pt intact."""
    opened = {"last": 0}

    def open_on_a_filling_disk(file, mode="r", *args, **kwargs):
        if Path(file).name.startswith(f".{ckpt.LAST}.tmp-") and "w" in mode:
            opened["last"] += 1
            if opened["last"] >= 2:
                return FullDisk(file, "wb")
        return open(file, mode, *args, **kwargs)

    monkeypatch.setattr(ckpt, "open", open_on_a_filling_disk, raising=False)
    run_dir = tmp_path / "run"
    result = train(*sets(TINY), "--run-dir", str(run_dir))
    assert_one_line_error(result, 1, "cannot write checkpoint", str(last_path(run_dir)), "No space left on device", "previous last.pt is intact")
    assert assert_finite_checkpoint(last_path(run_dir))["counters"]["step"] == 20
    assert temp_files(run_dir) == []


@pytest.mark.parametrize("where, code", [("write", errno.ENOSPC), ("fsync", errno.EIO), ("replace", errno.EROFS)])
def test_save_checkpoint_failures_leave_the_old_file_and_no_temp(tmp_path, monkeypatch, where, code):
    from ddpg_cli.errors import StorageError

    path = tmp_path / "checkpoints" / "last.pt"
    ckpt.save_checkpoint({"counters": {"step": 1}, "blob": torch.arange(10_000)}, path)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    if where == "write":
        monkeypatch.setattr(ckpt, "open", lambda file, mode="r", *a, **k: FullDisk(file, "wb"), raising=False)
    else:
        monkeypatch.setattr(ckpt.os, where, fail)
    with pytest.raises(StorageError, match=os.strerror(code)):
        ckpt.save_checkpoint({"counters": {"step": 2}, "blob": torch.arange(10_000)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["counters"]["step"] == 1
    assert list(path.parent.glob(".*")) == []


def test_absurdly_large_networks_are_refused_before_allocation(tmp_path):
    """Valid per key, but 16 layers of 65,536 units would need terabytes: exit 2 before any allocation
    (without the check, the kernel's OOM killer ends the process, and whatever else it picks)."""
    from ddpg_cli.config import load_config
    from ddpg_cli.errors import ConfigError
    from ddpg_cli.resources import check_buffer_fits

    huge = "agent.critic_hidden=[" + ", ".join(["65536"] * 16) + "]"
    with pytest.raises(ConfigError):  # checked first on its own, so a regression cannot allocate terabytes
        check_buffer_fits(load_config(None, [huge]), 3, 2, torch.device("cpu"))
    result = train(*sets(TINY + [huge]), "--run-dir", str(tmp_path / "run"))
    assert_one_line_error(result, 2, "agent.critic_hidden", "GiB")
    assert not (tmp_path / "run").exists()
