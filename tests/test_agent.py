"""The maths of the agent: the explicit chain-rule actor update, inverting gradients, TD target, Polyak."""

import copy

import pytest
import torch

from ddpg_cli.agent import DDPGAgent, invert_gradients, polyak_update, td_target
from ddpg_cli.optim import adam_step, init_adam_state
from ddpg_cli.config import AgentConfig
from ddpg_cli.networks import one_unit_linear
from ddpg_cli.replay_buffer import Batch

OBS_DIM, ACTION_DIM, BATCH = 5, 3, 64


def make_agent(**overrides) -> DDPGAgent:
    torch.manual_seed(0)
    config = AgentConfig(actor_hidden=[32, 32], critic_hidden=[32, 32], **overrides)
    return DDPGAgent(OBS_DIM, ACTION_DIM, config)


def reference_actor_gradients(agent: DDPGAgent, obs: torch.Tensor) -> list[torch.Tensor]:
    """Plain autograd of -mean Q(s, mu(s)) with respect to the actor's parameters (on copies)."""
    actor, critic = copy.deepcopy(agent.actor), copy.deepcopy(agent.critic)
    loss = -critic(obs, actor(obs)).mean()
    return list(torch.autograd.grad(loss, list(actor.parameters())))


def test_actor_update_equals_autograd_of_minus_mean_q():
    agent = make_agent()
    obs = torch.randn(BATCH, OBS_DIM)
    expected = reference_actor_gradients(agent, obs)

    agent.update_actor(obs)  # the optimiser step does not clear .grad, so the gradient is still there

    for got, want in zip((p.grad for p in agent.actor.parameters()), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert any(w.abs().max() > 0 for w in expected)  # a real, non-trivial gradient was compared


def test_pre_activation_penalty_adds_the_gradient_of_its_term():
    """With the penalty on, the actor's gradient is autograd of -mean Q + weight * mean_B sum_A u^2,
    u the output layer's values before tanh; and it differs from the gradient without it."""
    weight = 0.05
    agent = make_agent(pre_activation_penalty=weight)
    obs = torch.randn(BATCH, OBS_DIM)
    actor, critic = copy.deepcopy(agent.actor), copy.deepcopy(agent.critic)
    pre_activation = actor.net(obs)
    loss = -critic(obs, torch.tanh(pre_activation)).mean() + weight * pre_activation.pow(2).sum(dim=1).mean()
    expected = torch.autograd.grad(loss, list(actor.parameters()))

    agent.update_actor(obs)

    for got, want in zip((p.grad for p in agent.actor.parameters()), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    without = reference_actor_gradients(agent, obs)  # the same networks: update_actor left them as copied
    assert any((w - g).abs().max() > 1e-4 for w, g in zip(without, expected, strict=True))


def test_pre_activation_penalty_pulls_a_saturated_actor_back():
    """An actor pushed deep into tanh's flat tail (u = 20, dQ/da ~ 0 through tanh) comes back under the
    penalty and stays put without it."""
    torch.manual_seed(0)
    for weight, moves in ((0.0, False), (1e-2, True)):
        agent = DDPGAgent(2, 1, AgentConfig(actor_hidden=[8], critic_hidden=[8], actor_lr=1e-2, pre_activation_penalty=weight))
        with torch.no_grad():
            agent.actor.net[-1].weight.zero_()
            agent.actor.net[-1].bias.fill_(20.0)
        obs = torch.randn(32, 2)
        for _ in range(100):
            agent.update_actor(obs)
        bias = agent.actor.net[-1].bias.item()
        # Adam moves a parameter by about lr a step whatever the gradient's size, unless it is ~0.
        depth = agent.pop_metrics()["pre_activation_abs"]  # TensorBoard's train/pre_activation_abs: mean |u|
        assert (bias < 19.5 and depth < 19.5 if moves else bias > 19.99 and depth > 19.99), (weight, bias, depth)


def test_pre_activation_penalty_refuses_inverting_gradients():
    with pytest.raises(ValueError, match="pre_activation_penalty"):
        AgentConfig(pre_activation_penalty=1e-3, invert_gradients=True)


def test_actor_update_leaves_critic_parameters_and_grads_untouched():
    agent = make_agent()
    obs = torch.randn(BATCH, OBS_DIM)
    # Give the critic real gradients first, as the critic step leaves them.
    agent.update_critic(obs, torch.rand(BATCH, ACTION_DIM) * 2 - 1, torch.randn(BATCH), obs, torch.zeros(BATCH))
    params_before = [p.detach().clone() for p in agent.critic.parameters()]
    grads_before = [p.grad.clone() for p in agent.critic.parameters()]
    actor_before = [p.detach().clone() for p in agent.actor.parameters()]

    agent.update_actor(obs)

    for p, before, grad_before in zip(agent.critic.parameters(), params_before, grads_before, strict=True):
        assert torch.equal(p, before)
        assert torch.equal(p.grad, grad_before)
    assert any(not torch.equal(p, b) for p, b in zip(agent.actor.parameters(), actor_before))  # the actor did move


def test_actor_step_computes_no_critic_gradient_when_critic_has_none():
    agent = make_agent()
    agent.update_actor(torch.randn(BATCH, OBS_DIM))
    assert all(p.grad is None for p in agent.critic.parameters())


def _invert_reference(g: float, a: float, low: float, high: float) -> float:
    """Hausknecht & Stone (2016), eq. 4, written out for one element."""
    if g > 0:
        return g * (high - a) / (high - low)
    return g * (a - low) / (high - low)


@pytest.mark.parametrize("low, high", [(-1.0, 1.0), (-2.0, 5.0), (0.0, 0.5)])
def test_invert_gradients_matches_rule_elementwise(low, high):
    generator = torch.Generator().manual_seed(1)
    width = high - low
    action = low - 0.3 * width + torch.rand(200, 4, generator=generator, dtype=torch.float64) * 1.6 * width  # some outside
    dq_da = torch.randn(200, 4, generator=generator, dtype=torch.float64)
    got = invert_gradients(dq_da, action, low, high)
    want = torch.tensor([[_invert_reference(g, a, low, high) for g, a in zip(gr, ar)] for gr, ar in zip(dq_da.tolist(), action.tolist())], dtype=torch.float64)
    torch.testing.assert_close(got, want)


def test_invert_gradients_signs():
    low, high = -1.0, 1.0
    cases = {
        # (dq_da, action): expected bounded gradient
        (2.0, 0.5): 2.0 * 0.5 / 2,  # pushing up: scaled by the room left above
        (-2.0, 0.5): -2.0 * 1.5 / 2,  # pushing down: scaled by the room left below
        (2.0, 1.0): 0.0,  # at the upper bound, an upward push vanishes
        (-2.0, -1.0): 0.0,  # at the lower bound, a downward push vanishes
        (1.0, 1.5): -0.25,  # above the bound, an upward push is inverted: back inside
        (-1.0, -1.5): 0.25,  # below the bound, a downward push is inverted: back inside
        (-1.0, 1.5): -1.25,  # above the bound, a downward push is amplified
    }
    for (g, a), want in cases.items():
        got = invert_gradients(torch.tensor([g]), torch.tensor([a]), low, high)
        assert got.item() == pytest.approx(want), (g, a)


def test_inverting_gradients_actor_update_uses_bounded_dq_da():
    agent = make_agent(invert_gradients=True)
    assert not agent.actor.squash  # the output layer is linear
    obs = torch.randn(BATCH, OBS_DIM)
    actor, critic = copy.deepcopy(agent.actor), copy.deepcopy(agent.critic)
    action = actor(obs)
    leaf = action.detach().requires_grad_(True)
    (dq_da,) = torch.autograd.grad(critic(obs, leaf).sum(), leaf)
    bounded = invert_gradients(dq_da, leaf.detach(), -1.0, 1.0)
    expected = torch.autograd.grad(-(bounded * action).sum() / BATCH, list(actor.parameters()))

    agent.update_actor(obs)

    for got, want in zip((p.grad for p in agent.actor.parameters()), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_inverting_gradients_pulls_out_of_range_actions_back():
    """A critic that always wants larger actions cannot push a linear actor past the upper bound."""
    torch.manual_seed(0)
    agent = DDPGAgent(2, 1, AgentConfig(actor_hidden=[16], critic_hidden=[16], invert_gradients=True, actor_lr=3e-2))
    with torch.no_grad():  # Q(s, a) = 10 * a: dQ/da = +10 everywhere
        agent.critic.net[0].weight.zero_()
        agent.critic.net[0].bias.fill_(1.0)
        agent.critic.net[2].weight.fill_(10.0)
        agent.critic.net[2].bias.zero_()
        agent.critic.net[0].weight[:, 2] = 1.0
        agent.actor.net[-1].bias.fill_(3.0)  # start far above the bound
    obs = torch.randn(128, 2)
    for _ in range(150):
        agent.update_actor(obs)
    actions = agent.act(obs)
    assert actions.max() <= 1.0 + 0.05
    assert actions.mean() > 0.8  # and it still sits near the bound the critic prefers


def test_td_target_bootstraps_through_truncation_not_termination():
    reward = torch.tensor([1.0, 1.0])
    next_q = torch.tensor([10.0, 10.0])
    terminated = torch.tensor([0.0, 1.0])  # first: alive or truncated; second: terminal
    torch.testing.assert_close(td_target(reward, terminated, next_q, 0.9), torch.tensor([10.0, 1.0]))


def test_polyak_update_is_lerp_over_all_tensors():
    target = [torch.zeros(3), torch.ones(2, 2)]
    online = [torch.ones(3), torch.full((2, 2), 3.0)]
    polyak_update(target, online, 0.25)
    torch.testing.assert_close(target[0], torch.full((3,), 0.25))
    torch.testing.assert_close(target[1], torch.full((2, 2), 1.5))


def test_critic_update_moves_only_the_critic_and_targets_follow_slowly():
    agent = make_agent(tau=0.1)
    obs = torch.randn(BATCH, OBS_DIM)
    actor_before = [p.detach().clone() for p in agent.actor.parameters()]
    target_before = [p.detach().clone() for p in agent.critic_target.parameters()]
    agent.update_critic(obs, torch.zeros(BATCH, ACTION_DIM), torch.ones(BATCH), obs, torch.zeros(BATCH))
    assert all(torch.equal(p, b) for p, b in zip(agent.actor.parameters(), actor_before))
    assert all(torch.equal(p, b) for p, b in zip(agent.critic_target.parameters(), target_before))
    agent.update_targets()
    for target, online, before in zip(agent.critic_target.parameters(), agent.critic.parameters(), target_before):
        torch.testing.assert_close(target, 0.9 * before + 0.1 * online)


def test_policy_delay_updates_actor_every_k_critic_steps():
    agent = make_agent(policy_delay=2)

    batch = Batch(torch.randn(8, OBS_DIM), torch.zeros(8, ACTION_DIM), torch.zeros(8), torch.randn(8, OBS_DIM), torch.zeros(8))
    before = [p.detach().clone() for p in agent.actor.parameters()]
    agent.update(batch)
    assert all(torch.equal(p, b) for p, b in zip(agent.actor.parameters(), before))
    agent.update(batch)
    assert any(not torch.equal(p, b) for p, b in zip(agent.actor.parameters(), before))


def test_update_acting_on_observations_returns_the_updated_actors_action():
    agent = make_agent()
    batch = Batch(torch.randn(8, OBS_DIM), torch.zeros(8, ACTION_DIM), torch.zeros(8), torch.randn(8, OBS_DIM), torch.zeros(8))
    obs = torch.randn(2, OBS_DIM)
    before = agent.act(obs)
    action = agent.update(batch, act_on=obs)
    assert agent.update(batch) is None
    # mu(obs) of the actor as the first update left it: replay that update on a fresh agent.
    fresh = make_agent()
    fresh.update(batch)
    torch.testing.assert_close(action, fresh.act(obs))
    assert not torch.equal(action, before)


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_adam_step_is_torch_adam(weight_decay):
    """The optimiser step the agent takes (functional Adam on the optimiser's state) is Adam.step()."""
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    reference = copy.deepcopy(net)
    ours_optimizer = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=weight_decay, fused=True)
    init_adam_state(ours_optimizer)
    reference_optimizer = torch.optim.Adam(reference.parameters(), lr=1e-2, weight_decay=weight_decay, fused=True)
    for _ in range(4):
        x = torch.randn(8, 4)
        grads = torch.autograd.grad(net(x).square().mean(), list(net.parameters()))
        adam_step(ours_optimizer, grads)
        reference_optimizer.zero_grad()
        reference(x).square().mean().backward()
        reference_optimizer.step()
    for got, want in zip(net.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(got, want)
    assert ours_optimizer.state_dict()["state"][0]["step"] == reference_optimizer.state_dict()["state"][0]["step"] == 4


def test_agent_loaded_from_a_state_without_updates_can_update():
    """A checkpoint written before learning starts has no Adam state; the loaded agent still updates."""
    fresh = make_agent()
    agent = make_agent()
    agent.load_state_dict(copy.deepcopy(fresh.state_dict()) | {"actor_optimizer": torch.optim.Adam(fresh.actor.parameters()).state_dict()})
    obs = torch.randn(BATCH, OBS_DIM)
    agent.update(Batch(obs, torch.zeros(BATCH, ACTION_DIM), torch.ones(BATCH), obs, torch.zeros(BATCH)))
    assert agent.all_finite()
    assert agent.actor_optimizer.state_dict()["state"][0]["step"] == 1


def test_one_unit_output_layer_as_a_dot_product_is_the_same_maths():
    # The compiled update writes the critic's Q head this way; values and gradients must be Linear's.
    torch.manual_seed(0)
    layer = torch.nn.Linear(256, 1)
    x = torch.randn(32, 256, requires_grad=True)
    expected = layer(x)
    expected_grads = torch.autograd.grad(expected.square().sum(), (x, layer.weight, layer.bias))
    got = one_unit_linear(layer, x)
    got_grads = torch.autograd.grad(got.square().sum(), (x, layer.weight, layer.bias))
    assert got.shape == expected.shape == (32, 1)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    for g, e in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)


def test_metrics_and_finiteness():
    agent = make_agent()
    obs = torch.randn(BATCH, OBS_DIM)
    agent.update_critic(obs, torch.zeros(BATCH, ACTION_DIM), torch.ones(BATCH), obs, torch.zeros(BATCH))
    agent.update_actor(obs)
    metrics = agent.pop_metrics()
    assert set(metrics) == {"critic_loss", "q_data", "actor_q", "dq_da_norm", "at_bound_fraction", "pre_activation_abs"}
    assert agent.all_finite()
    agent.update_critic(obs, torch.zeros(BATCH, ACTION_DIM), torch.full((BATCH,), float("nan")), obs, torch.zeros(BATCH))
    assert not agent.all_finite()


def test_bf16_runs_hidden_layers_in_bf16_and_outputs_in_fp32():
    torch.manual_seed(0)
    agent = DDPGAgent(OBS_DIM, ACTION_DIM, AgentConfig(actor_hidden=[16], critic_hidden=[16]), precision="bf16")
    obs = torch.randn(BATCH, OBS_DIM)
    with agent._autocast():
        hidden = agent.critic.net[1](agent.critic.net[0](torch.cat([obs, torch.zeros(BATCH, ACTION_DIM)], dim=1)))
        q = agent.critic(obs, torch.zeros(BATCH, ACTION_DIM))
    assert hidden.dtype == torch.bfloat16 and q.dtype == torch.float32
    before = [p.detach().clone() for p in agent.actor.parameters()]
    agent.update_critic(obs, torch.zeros(BATCH, ACTION_DIM), torch.ones(BATCH), obs, torch.zeros(BATCH))
    agent.update_actor(obs)
    assert all(p.dtype == torch.float32 for p in agent.actor.parameters())  # master weights stay fp32
    assert any(not torch.equal(p, b) for p, b in zip(agent.actor.parameters(), before))
    assert agent.all_finite()


def test_bf16_keeps_q_values_td_targets_actions_and_dq_da_at_fp32_resolution():
    """Q near 1,000 is good to +-4 in bf16: an output layer in bf16 would move every TD target by that.
    With bf16 hidden layers only, the same weights give the fp32 agent's targets to well under that."""
    agents = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        agent = DDPGAgent(OBS_DIM, ACTION_DIM, AgentConfig(actor_hidden=[64, 64], critic_hidden=[64, 64], invert_gradients=True), precision=precision)
        with torch.no_grad():
            for critic in (agent.critic, agent.critic_target):
                critic.net[-1].bias.fill_(1000.0)
        agents[precision] = agent
    obs, next_obs = torch.randn(BATCH, OBS_DIM), torch.randn(BATCH, OBS_DIM)
    reward, terminated = torch.randn(BATCH), torch.zeros(BATCH)
    targets = {p: a.td_targets(reward, terminated, next_obs) for p, a in agents.items()}
    assert targets["bf16"].dtype == torch.float32
    assert (targets["bf16"] - targets["fp32"]).abs().max() < 0.25
    actor = {p: a.actor_gradients(obs) for p, a in agents.items()}
    grads_bf16, action_bf16, dq_da_bf16, q_bf16, _ = actor["bf16"]
    grads_fp32, action_fp32, dq_da_fp32, q_fp32, _ = actor["fp32"]
    assert action_bf16.dtype == dq_da_bf16.dtype == torch.float32
    assert (action_bf16 - action_fp32).abs().max() < 0.02
    assert (q_bf16 - q_fp32).abs() < 0.25
    # dQ/da (bounded by inverting gradients from the fp32 actions) is a backward pass through the bf16
    # hidden layers: about 1% off per element, and the actor's gradient, its batch mean, about 2%
    assert ((dq_da_bf16 - dq_da_fp32).abs() / dq_da_fp32.abs().clamp_min(1e-6)).median() < 0.03
    difference = torch.cat([(b - f).flatten() for b, f in zip(grads_bf16, grads_fp32)])
    assert difference.norm() < 0.05 * torch.cat([f.flatten() for f in grads_fp32]).norm()


@pytest.mark.slow
@pytest.mark.parametrize("invert, td3", [(False, False), (True, False), (False, True), (True, True)], ids=["ddpg", "invert", "td3", "td3-invert"])
def test_compiled_updates_match_eager(invert, td3):
    obs = torch.randn(BATCH, OBS_DIM)
    batch = Batch(obs, torch.rand(BATCH, ACTION_DIM) * 2 - 1, torch.randn(BATCH), torch.randn(BATCH, OBS_DIM), torch.zeros(BATCH))
    act_on = torch.randn(2, OBS_DIM)
    agents, actions = [], []
    for compile in (False, True):
        torch.manual_seed(0)
        switches = {"twin_critics": True, "target_noise": 0.2, "target_noise_clip": 0.3} if td3 else {}
        config = AgentConfig(actor_hidden=[32, 32], critic_hidden=[32, 32], invert_gradients=invert, max_grad_norm=1.0, critic_weight_decay=1e-3, policy_delay=2, **switches)
        agent = DDPGAgent(OBS_DIM, ACTION_DIM, config, compile=compile)
        for _ in range(5):  # critic, critic + actor + targets, ... (both branches of the compiled update)
            action = agent.update(batch, act_on=act_on)
        agents.append(agent)
        actions.append(action)
    eager, compiled = agents
    torch.testing.assert_close(actions[1], actions[0], rtol=1e-4, atol=1e-5)
    for network in ("actor", "critic", "actor_target", "critic_target") + (("critic2", "critic2_target") if td3 else ()):
        for want, got in zip(getattr(eager, network).parameters(), getattr(compiled, network).parameters(), strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(compiled._metric_sums, eager._metric_sums, rtol=1e-4, atol=1e-5)
    assert compiled.pop_metrics().keys() == eager.pop_metrics().keys()


# --- TD3's switches ----------------------------------------------------------------------------------


def make_td3(**overrides) -> DDPGAgent:
    torch.manual_seed(0)
    settings = {"twin_critics": True, "target_noise": 0.2, "target_noise_clip": 0.5, "policy_delay": 2, **overrides}
    config = AgentConfig(actor_hidden=[32, 32], critic_hidden=[32, 32], **settings)
    return DDPGAgent(OBS_DIM, ACTION_DIM, config, seed=7)


def test_twin_critics_target_is_the_smaller_of_the_two():
    agent = make_td3(target_noise=0.0)
    with torch.no_grad():  # make the second target critic clearly lower on some states, higher on others
        agent.critic2_target.net[-1].bias.add_(torch.tensor([3.0]))
    next_obs, reward, terminated = torch.randn(BATCH, OBS_DIM), torch.randn(BATCH), (torch.rand(BATCH) < 0.3).float()
    next_action = agent.actor_target(next_obs)
    q1, q2 = agent.critic_target(next_obs, next_action), agent.critic2_target(next_obs, next_action)
    expected = td_target(reward, terminated, torch.minimum(q1, q2), agent.config.gamma)
    torch.testing.assert_close(agent.td_targets(reward, terminated, next_obs), expected)
    assert not torch.equal(expected, td_target(reward, terminated, q2, agent.config.gamma))  # the min mattered
    single = make_agent()
    assert single.critic2 is None and "critic2" not in single.state_dict()


def test_target_smoothing_noise_is_clipped_seeded_and_enters_only_the_target():
    agent = make_td3()
    next_obs = torch.randn(BATCH, OBS_DIM)
    huge = torch.full((BATCH, ACTION_DIM), 100.0)
    clean = agent.actor_target(next_obs)
    torch.testing.assert_close(agent.target_action(next_obs, huge), (clean + 0.5).clamp(-1, 1))  # clipped to +-0.5
    torch.testing.assert_close(agent.target_action(next_obs, -huge), (clean - 0.5).clamp(-1, 1))
    assert torch.equal(agent.target_action(next_obs, None), clean)

    # Seeded: the same seed draws the same noise, another seed other noise.
    draws = []
    for seed in (7, 7, 8):
        other = DDPGAgent(OBS_DIM, ACTION_DIM, agent.config, seed=seed)
        draws.append(torch.randn((4, ACTION_DIM), generator=other.target_noise_rng))
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])

    # Only the target: the same update with and without noise gives the same actor gradient, the same Q
    # of the replayed actions, and differs only through y.
    batch = Batch(torch.randn(BATCH, OBS_DIM), torch.rand(BATCH, ACTION_DIM) * 2 - 1, torch.randn(BATCH), next_obs, torch.zeros(BATCH))
    noisy, quiet = make_td3(), make_td3(target_noise=0.0)
    noise = torch.randn(BATCH, ACTION_DIM) * 0.2
    grads_noisy, _, q_noisy = noisy.critic_gradients(*batch, target_noise=noise)
    grads_quiet, _, q_quiet = quiet.critic_gradients(*batch)
    assert torch.equal(q_noisy, q_quiet) and not all(torch.equal(a, b) for a, b in zip(grads_noisy, grads_quiet))
    for got, want in zip(noisy.actor_gradients(batch.obs)[0], quiet.actor_gradients(batch.obs)[0], strict=True):
        assert torch.equal(got, want)


def test_with_twin_critics_the_actor_step_touches_neither_critic():
    agent = make_td3()
    obs = torch.randn(BATCH, OBS_DIM)
    for critic in (agent.critic, agent.critic2):
        for param in critic.parameters():
            param.grad = None
    before = [p.detach().clone() for p in agent.critic_params]
    agent.update_actor(obs)
    assert all(torch.equal(p, b) for p, b in zip(agent.critic_params, before))
    assert all(p.grad is None for p in agent.critic_params)
    # ... and the actor ascends the first critic: its gradient is autograd of -mean Q1(s, mu(s)).
    agent = make_td3()
    expected = reference_actor_gradients(agent, obs)
    agent.update_actor(obs)
    for got, want in zip((p.grad for p in agent.actor.parameters()), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_td3_updates_both_critics_and_delays_the_actor():
    agent = make_td3()
    batch = Batch(torch.randn(BATCH, OBS_DIM), torch.rand(BATCH, ACTION_DIM) * 2 - 1, torch.randn(BATCH), torch.randn(BATCH, OBS_DIM), torch.zeros(BATCH))
    actor_before = [p.detach().clone() for p in agent.actor.parameters()]
    critic2_before = [p.detach().clone() for p in agent.critic2.parameters()]
    agent.update(batch)  # critic step only (policy_delay 2)
    assert all(torch.equal(p, b) for p, b in zip(agent.actor.parameters(), actor_before))
    assert any(not torch.equal(p, b) for p, b in zip(agent.critic2.parameters(), critic2_before))
    target2_before = [p.detach().clone() for p in agent.critic2_target.parameters()]
    agent.update(batch)  # critic, actor and all three targets
    assert any(not torch.equal(p, b) for p, b in zip(agent.actor.parameters(), actor_before))
    assert any(not torch.equal(p, b) for p, b in zip(agent.critic2_target.parameters(), target2_before))

    restored = make_td3()
    restored.load_state_dict(copy.deepcopy(agent.state_dict()))  # as a checkpoint would: no shared tensors
    for _ in range(3):  # the same state, the same noise: the same next updates
        agent.update(batch)
        restored.update(batch)
    for a, b in zip(agent.critic_params, restored.critic_params, strict=True):
        assert torch.equal(a, b)


def test_with_the_switches_off_a_ddpg_run_is_unchanged_bit_for_bit(tmp_path):
    """tests/data/ddpg_reference.pt holds the agent after a tiny DDPG run of the code as it was before
    the TD3 switches (one thread, on an AMD EPYC with AVX512). The same run now must end the same:
    bitwise on a CPU of that kind, and to float32 rounding on others (their kernels differ)."""
    from pathlib import Path

    from typer.testing import CliRunner

    from ddpg_cli.checkpoint import load_checkpoint
    from ddpg_cli.cli import app
    from ddpg_cli.reproducibility import conditions

    reference = torch.load(Path(__file__).parent / "data" / "ddpg_reference.pt", weights_only=True)
    args = ["train", *[part for item in reference["overrides"] for part in ("--set", item)], "--run-dir", str(tmp_path / "run"), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["counters"]["step"] == reference["counters"]["step"]
    same_kind = all(reference["reproducibility"][key] == conditions()[key] for key in ("cpu_vendor", "cpu_capability", "mkl_mode", "torch_version"))
    for network in ("actor", "critic", "actor_target", "critic_target"):
        for name, want in reference["agent"][network].items():
            got = state["agent"][network][name]
            if same_kind:
                assert torch.equal(got, want), f"{network}.{name} differs"
            else:
                torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6, msg=f"{network}.{name}")
    for slot, values in reference["agent"]["critic_optimizer"]["state"].items():
        for name, want in values.items():
            got = state["agent"]["critic_optimizer"]["state"][slot][name]
            assert torch.equal(got, want) if same_kind else torch.allclose(got, want, rtol=1e-4, atol=1e-6), f"critic Adam {slot} {name}"
    assert set(state["agent"]) == set(reference["agent"])  # no twin critic, no noise generator


# --- the learning-rate schedule ----------------------------------------------------------------------


def test_lr_fraction_moves_linearly_then_holds():
    from ddpg_cli.optim import lr_fraction_at

    assert lr_fraction_at(12_345, AgentConfig()) == 1.0
    linear = AgentConfig(lr_schedule="linear", final_lr_fraction=0.1, lr_schedule_steps=100)
    assert [lr_fraction_at(step, linear) for step in (0, 50, 100, 1_000)] == pytest.approx([1.0, 0.55, 0.1, 0.1])


def test_linear_lr_schedule_needs_its_steps():
    with pytest.raises(ValueError, match="agent.lr_schedule_steps must be at least 1"):
        AgentConfig(lr_schedule="linear")


def parameters_of(agent: DDPGAgent) -> list[torch.Tensor]:
    return [p.detach().clone() for network in (agent.actor, agent.critic) for p in network.parameters()]


@pytest.mark.parametrize("compile", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["eager", "compiled"])
def test_scheduled_rates_reach_the_update(compile):
    """The rates the schedule sets are the ones the (compiled) update steps with: at fraction 0 nothing
    moves, at fraction 1 both networks do; at fraction 1 the step is the constant rate's."""
    obs = torch.randn(BATCH, OBS_DIM)
    batch = Batch(obs, torch.rand(BATCH, ACTION_DIM) * 2 - 1, torch.randn(BATCH), torch.randn(BATCH, OBS_DIM), torch.zeros(BATCH))
    torch.manual_seed(0)
    config = AgentConfig(actor_hidden=[32, 32], critic_hidden=[32, 32], actor_lr=1e-3, critic_lr=2e-3, lr_schedule="linear", lr_schedule_steps=100)
    agent = DDPGAgent(OBS_DIM, ACTION_DIM, config, compile=compile)
    torch.manual_seed(0)
    constant = DDPGAgent(OBS_DIM, ACTION_DIM, config.model_copy(update={"lr_schedule": "constant"}), compile=compile)

    assert agent.follow_lr_schedule(50) == pytest.approx(0.5)
    assert [float(group["lr"]) for o in (agent.actor_optimizer, agent.critic_optimizer) for group in o.param_groups] == pytest.approx([5e-4, 1e-3])

    assert agent.follow_lr_schedule(0) == 1.0
    agent.update(batch)
    constant.update(batch)
    for got, want in zip(parameters_of(agent), parameters_of(constant), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)

    agent.follow_lr_schedule(100)  # final_lr_fraction 0: Adam steps of size 0
    before = parameters_of(agent)
    agent.update(batch)
    assert all(torch.equal(b, a) for b, a in zip(before, parameters_of(agent), strict=True))

    agent.follow_lr_schedule(0)
    agent.update(batch)
    moved = [not torch.equal(b, a) for b, a in zip(before, parameters_of(agent), strict=True)]
    assert all(moved[: len(list(agent.actor.parameters()))]) and any(moved[len(list(agent.actor.parameters())) :])


def test_a_restored_agent_keeps_its_rate_on_the_schedule():
    config = AgentConfig(actor_hidden=[32, 32], critic_hidden=[32, 32], lr_schedule="linear", final_lr_fraction=0.2, lr_schedule_steps=10)
    saved = DDPGAgent(OBS_DIM, ACTION_DIM, config)
    saved.follow_lr_schedule(5)
    restored = DDPGAgent(OBS_DIM, ACTION_DIM, config)
    restored.load_state_dict(saved.state_dict())
    for optimizer, base, rate in restored.scheduled_lrs:
        assert optimizer.param_groups[0]["lr"] is rate  # the tensor the update reads, not the loaded copy
        assert float(rate) == pytest.approx(base * 0.6)
    restored.follow_lr_schedule(10)
    assert [float(rate) for _, _, rate in restored.scheduled_lrs] == pytest.approx([0.2 * config.actor_lr, 0.2 * config.critic_lr])
