"""The CUDA path: bf16 autocast, the compiled update, a whole run and `auto`'s choice on a GPU.

Skipped where torch sees no CUDA device (CI has none). `DDPG_TEST_DEVICE=cpu` runs the same tests on
the CPU, to check the tests themselves on a machine without a GPU (the compiled ones take a minute).
"""

import os

import pytest
import torch

from ddpg_cli import precision as precision_module
from ddpg_cli.agent import DDPGAgent
from ddpg_cli.checkpoint import load_checkpoint
from ddpg_cli.config import AgentConfig, load_config
from ddpg_cli.envs import make_env
from ddpg_cli.evaluate import evaluate
from ddpg_cli.policy import load_policy
from ddpg_cli.precision import UpdateShape, plan_precision
from ddpg_cli.replay_buffer import Batch
from ddpg_cli.train import train

DEVICE = os.environ.get("DDPG_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA device (or DDPG_TEST_DEVICE=cpu)")

OBS_DIM, ACTION_DIM, BATCH = 5, 3, 64
TD3 = {"twin_critics": True, "target_noise": 0.2, "target_noise_clip": 0.5, "policy_delay": 2}
SHORT = [
    "agent.actor_hidden=[32, 32]", "agent.critic_hidden=[32, 32]", "agent.batch_size=32", "agent.buffer_size=1000",
    "env.max_episode_steps=25", "train.total_steps=120", "train.learning_starts=30", "eval.every=0", "eval.episodes=2",
    "checkpoint.every=0", "logging.tensorboard=false", "train.torch_threads=1", f"train.device={DEVICE}",
]  # fmt: skip


def batch_on(device: str, seed: int = 0) -> Batch:
    generator = torch.Generator().manual_seed(seed)
    obs, next_obs = torch.randn(BATCH, OBS_DIM, generator=generator), torch.randn(BATCH, OBS_DIM, generator=generator)
    action = torch.rand(BATCH, ACTION_DIM, generator=generator) * 2 - 1
    batch = Batch(obs, action, torch.randn(BATCH, generator=generator), next_obs, torch.zeros(BATCH))
    return Batch(*(tensor.to(device) for tensor in batch))


def test_bf16_on_the_device_keeps_outputs_and_targets_in_fp32():
    agents = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        agent = DDPGAgent(OBS_DIM, ACTION_DIM, AgentConfig(actor_hidden=[64, 64], critic_hidden=[64, 64]), device=DEVICE, precision=precision)
        with torch.no_grad():
            for critic in (agent.critic, agent.critic_target):
                critic.net[-1].bias.fill_(1000.0)
        agents[precision] = agent
    batch = batch_on(DEVICE)
    with agents["bf16"]._autocast():
        hidden = agents["bf16"].critic.net[1](agents["bf16"].critic.net[0](torch.cat([batch.obs, batch.action], dim=1)))
    assert hidden.dtype == torch.bfloat16
    targets = {p: a.td_targets(batch.reward, batch.terminated, batch.next_obs) for p, a in agents.items()}
    assert targets["bf16"].dtype == torch.float32 and targets["bf16"].device.type == torch.device(DEVICE).type
    assert (targets["bf16"] - targets["fp32"]).abs().max() < 0.25  # Q near 1,000: a bf16 output would be off by +-4


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_compiled_update_on_the_device_matches_eager(precision):
    """The same TD3 updates, eager and compiled, from the same weights: the same actions after them (to
    the rounding that fused kernels change), every value finite, the weights kept in fp32."""
    actions = []
    for compile in (False, True):
        torch.manual_seed(0)
        agent = DDPGAgent(OBS_DIM, ACTION_DIM, AgentConfig(actor_hidden=[64, 64], critic_hidden=[64, 64], **TD3), device=DEVICE, precision=precision,
                          compile=compile, seed=1)  # fmt: skip
        act_on = torch.randn(2, OBS_DIM, generator=torch.Generator().manual_seed(1)).to(DEVICE)
        for step in range(4):  # both graphs: with and without the delayed actor step
            mu = agent.update(batch_on(DEVICE, seed=step), act_on=act_on)
        assert agent.all_finite() and all(p.dtype == torch.float32 for p in agent.actor.parameters())
        actions.append(mu.float().cpu())
    tolerance = 1e-4 if precision == "fp32" else 2e-2
    assert (actions[0] - actions[1]).abs().max() < tolerance


def test_a_bf16_compiled_run_on_the_device_trains_records_its_precision_and_evaluates_anywhere(tmp_path):
    config = load_config(None, [*SHORT, "train.precision=bf16", "train.compile=true"])
    result = train(config, tmp_path / "run")
    assert result.steps == 120 and result.final_eval is not None
    payload = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert payload["precision"] == "bf16"
    # The checkpoint loads on the CPU (a model trained on a GPU is evaluated or exported on a laptop).
    loaded = load_policy(tmp_path / "run")
    assert all(tensor.device.type == "cpu" for tensor in loaded.policy.state_dict().values())
    env = make_env(loaded.config.env)
    try:
        on_cpu = evaluate(loaded.policy, env, config.eval.episodes, config.eval.seed)
    finally:
        env.close()
    assert on_cpu.mean == pytest.approx(result.final_eval.mean, abs=1e-2)


def test_auto_on_the_device_asks_it_for_native_bf16(monkeypatch):
    native = precision_module.device_has_native_bf16(DEVICE)
    if DEVICE == "cuda":
        assert native == torch.cuda.is_bf16_supported(including_emulation=False)
    monkeypatch.setattr(precision_module, "MIN_UPDATES", 0)
    monkeypatch.setattr(precision_module, "time_update_ratio", lambda shape: 1.5)
    choice = plan_precision(load_config(None, [*SHORT, "train.precision=auto"]), 1, dims=(3, 1))
    assert choice.precision == ("bf16" if native else "fp32")


@pytest.mark.times_the_update
def test_the_timer_runs_on_the_device():
    shape = UpdateShape(OBS_DIM, ACTION_DIM, AgentConfig(actor_hidden=[32, 32], critic_hidden=[32, 32], batch_size=32), DEVICE, threads=1, compile=False)
    assert precision_module.time_update_ratio(shape, rounds=1, updates=2) > 0
