import pytest
import torch

pytest.importorskip("torchrl")

from tensordict import TensorDict  # noqa: E402

from lifelong.errors import ConfigError  # noqa: E402
from lifelong.rl import build_agent, make_strategies, sequence  # noqa: E402


def ppo_agent(spec, tasks=2, hidden=(), **seq):
    strategies = make_strategies(spec, "ppo")
    return build_agent(sequence("cartpole-physics", tasks=tasks, **seq), "ppo", strategies, 0, {"hidden": hidden})


def perturb(net, scale=0.3):
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn_like(p))


def penalty_grads(agent):
    for p in agent.actor.parameters():
        p.grad = None
    agent.strategies[0].add_grad()
    return {n: p.grad.clone() for n, p in agent.actor.named_parameters()}


def test_ewc_fisher_of_a_categorical_policy_and_its_penalty_gradient_by_hand():
    agent = ppo_agent("ewc")  # a linear policy: logits z = W s + b
    ewc = agent.strategies[0]
    states = torch.randn(50, 4)
    agent.visit(states)
    head = agent.actor.heads[0]
    with torch.no_grad():
        pi = torch.softmax(head(states), 1)
    # E_a[(d log pi_a / d z_k)^2] = sum_a pi_a (1[a=k] - pi_k)^2 = pi_k (1 - pi_k); dz_k/dW_kj = s_j
    var = pi * (1 - pi)
    fisher_w, fisher_b = (var.T @ states**2) / len(states), var.mean(0)
    theta_w, theta_b = head.weight.detach().clone(), head.bias.detach().clone()
    ewc.after_task(0)
    torch.testing.assert_close(ewc.penalty.omega["heads.0.weight"], fisher_w)
    torch.testing.assert_close(ewc.penalty.omega["heads.0.bias"], fisher_b)
    perturb(agent.actor)
    grads = penalty_grads(agent)  # d/dθ of λ Σ F (θ - θ*)^2 = 2 λ F (θ - θ*)
    torch.testing.assert_close(grads["heads.0.weight"], 2 * ewc.lam * fisher_w * (head.weight.detach() - theta_w))
    torch.testing.assert_close(grads["heads.0.bias"], 2 * ewc.lam * fisher_b * (head.bias.detach() - theta_b))


def test_ewc_sums_one_term_per_task_and_online_ewc_keeps_one_anchor():
    for spec in ("ewc", "online-ewc"):
        agent = ppo_agent(spec)
        strategy, anchors, fishers = agent.strategies[0], [], []
        for task in range(2):
            agent.begin_task(task)
            agent.visit(torch.randn(40, 4))
            fishers.append(agent.policy_fisher(agent.states(), task))
            anchors.append({n: p.detach().clone() for n, p in agent.actor.named_parameters()})
            strategy.after_task(task)
            perturb(agent.actor)
        grads = penalty_grads(agent)
        for n, p in agent.actor.named_parameters():
            if spec == "ewc":  # λ Σ_k F_k (θ - θ*_k)^2
                want = sum(2 * strategy.lam * f[n] * (p.detach() - a[n]) for f, a in zip(fishers, anchors))
            else:  # λ (F_1 + F_2) (θ - θ*_2)^2 (gamma 1)
                want = 2 * strategy.lam * (fishers[0][n] + fishers[1][n]) * (p.detach() - anchors[1][n])
            torch.testing.assert_close(grads[n], want)


def test_sac_fisher_is_the_gaussians_closed_form():
    seq = sequence("pendulum-gravity", tasks=1)
    agent = build_agent(seq, "sac", make_strategies("ewc", "sac"), 0, {"hidden": ()})
    states = torch.randn(30, 3)
    head = agent.actor.heads[0]  # out = W s + b; loc = out_0, scale = softplus-like map of out_1
    out = head(states).detach().requires_grad_(True)
    loc, scale = agent.extract(out)
    (dscale,) = torch.autograd.grad(scale.sum(), out)  # σ'(out_1), elementwise
    inv_var, dlog = 1 / scale.detach()[:, 0] ** 2, dscale[:, 1] / scale.detach()[:, 0]
    # (dμ/dθ)^2 / σ^2 + 2 (d log σ/dθ)^2, with dμ/dW_0j = s_j and d log σ/dW_1j = σ'/σ s_j
    want_w = torch.stack([(inv_var[:, None] * states**2).mean(0), (2 * dlog[:, None] ** 2 * states**2).mean(0)])
    want_b = torch.stack([inv_var.mean(), (2 * dlog**2).mean()])
    fisher = agent.policy_fisher(states, 0)
    torch.testing.assert_close(fisher["heads.0.weight"], want_w)
    torch.testing.assert_close(fisher["heads.0.bias"], want_b)


def transition(task, value):
    return TensorDict({"observation": torch.full((3,), float(value)), "task": torch.tensor(task),
                       "action": torch.zeros(1),
                       "next": {"observation": torch.zeros(3), "task": torch.tensor(task), "reward": torch.zeros(1),
                                "terminated": torch.tensor([False]), "done": torch.tensor([False])}}, [])


def sac_agent(spec, size=None):
    options = {"replay": {"size": size}} if size else None
    strategies = make_strategies(spec, "sac", options)
    return build_agent(sequence("pendulum-gravity", tasks=2), "sac", strategies, 0, {"hidden": (8,)})


def test_replay_keeps_old_tasks_transitions_and_naive_empties_the_buffer():
    for spec, kept in (("replay", True), ("naive", False)):
        agent = sac_agent(spec)
        agent.begin_task(0)
        for i in range(20):
            agent.remember(transition(0, i))
        agent.begin_task(1, keep_buffer=any(s.keeps_buffer for s in agent.strategies))
        for i in range(20):
            agent.remember(transition(1, i))
        tasks = agent.buffer.storage.get(torch.arange(len(agent.buffer)))["task"]
        assert (tasks == 0).sum().item() == (20 if kept else 0) and (tasks == 1).sum().item() == 20


def test_reservoir_keeps_a_uniform_sample_of_every_task():
    agent = sac_agent("replay", size=200)
    for task in range(2):
        agent.begin_task(task, keep_buffer=task > 0)
        for i in range(1000):
            agent.remember(transition(task, i))
    assert len(agent.buffer) == 200
    kept = agent.buffer.storage.get(torch.arange(200))
    old = (kept["task"] == 0).sum().item()
    assert 70 <= old <= 130  # 100 expected, sd 7: each of the 2000 transitions kept with probability 1/10
    assert (kept["observation"][:, 0] >= 200).any()  # not only the first transitions


def test_multihead_isolates_the_heads():
    agent = ppo_agent("multihead", hidden=(8,))
    assert len(agent.actor.heads) == 2 and agent.heads == 2
    obs = torch.randn(16, 4)
    agent.actor(obs, torch.ones(16, dtype=torch.long)).logsumexp(1).sum().backward()
    head0, head1 = agent.actor.heads
    assert head0.weight.grad is None or not head0.weight.grad.any()
    assert head1.weight.grad.abs().sum() > 0 and agent.actor.trunk[0].weight.grad.abs().sum() > 0
    with torch.no_grad():  # each sample gets its own task's head
        mixed = agent.actor(obs, torch.tensor([0, 1] * 8))
        torch.testing.assert_close(mixed[::2], agent.actor(obs[::2], torch.zeros(8, dtype=torch.long)))
        torch.testing.assert_close(mixed[1::2], agent.actor(obs[1::2], torch.ones(8, dtype=torch.long)))


def test_heads_of_different_sizes_give_padded_actions_no_probability():
    seq = sequence("classic-discrete", pad=True)
    agent = build_agent(seq, "ppo", make_strategies("naive", "ppo"), 0)
    assert agent.heads == 3  # different action spaces: a head per task without asking
    logits = agent.actor(torch.randn(5, 6), torch.zeros(5, dtype=torch.long))
    assert logits.shape == (5, 3) and torch.softmax(logits, 1)[:, 2].max() == 0


@pytest.mark.parametrize("spec, algo, match", [
    ("lwf", "ppo", "strategy 'lwf' does not support reinforcement learning: choose from naive"),
    ("replay", "ppo", "strategy 'replay' needs sac, not ppo"),
    ("ewcc", "ppo", "unknown RL strategy 'ewcc': did you mean 'ewc'"),
])
def test_strategies_that_cannot_do_rl_are_refused_in_one_line(spec, algo, match):
    with pytest.raises(ConfigError, match=match) as err:
        make_strategies(spec, algo)
    assert "\n" not in str(err.value)


def test_bad_strategy_options_are_refused():
    with pytest.raises(ConfigError, match="`lam` of ewc must be a number >= 0"):
        make_strategies("ewc", "ppo", {"ewc": {"lam": -1.0}})
    with pytest.raises(ConfigError, match="strategy 'ewc' has no option `lambda`"):
        make_strategies("ewc", "ppo", {"ewc": {"lambda": 1.0}})


def test_mas_importance_by_hand():
    agent = ppo_agent("mas")
    states = torch.randn(40, 4)
    agent.visit(states)
    head = agent.actor.heads[0]
    with torch.no_grad():
        out = head(states)  # d ||out||^2 / dW_kj = 2 out_k s_j, d/db_k = 2 out_k
    omega = agent.strategies[0].importance(0)
    torch.testing.assert_close(omega["heads.0.weight"], (2 * out[:, :, None] * states[:, None, :]).abs().mean(0))
    torch.testing.assert_close(omega["heads.0.bias"], (2 * out).abs().mean(0))


def test_agem_projects_the_update_off_the_old_tasks_loss_rising():
    agent = sac_agent("agem")
    agem = agent.strategies[0]
    agem.per_task, agem.memory._batch_size = 30, 16  # small for the test
    agent.begin_task(0)
    for i in range(40):
        agent.remember(transition(0, i / 40))
    agem.after_task(0)
    assert len(agem.memory) == 30 and (agem.memory.storage.get(torch.arange(30))["task"] == 0).all()
    params = [p for p in agent.loss_module.parameters() if p.requires_grad]
    signs = set()
    for seed in range(6):
        agent.begin_task(1)
        torch.manual_seed(seed)
        for p in params:  # a gradient pointing anywhere
            p.grad = torch.randn_like(p)
        before = [p.grad.clone() for p in params]
        torch.manual_seed(100 + seed)
        agem.after_backward()
        torch.manual_seed(100 + seed)  # the same reference batch and sampled actions again
        ref = agem.reference_gradient(params)
        dot = sum((g * r).sum() for g, r in zip(before, ref))
        after = sum((p.grad * r).sum() for p, r in zip(params, ref))
        signs.add(bool(dot < 0))
        if dot < 0:  # projected onto g.g_ref = 0
            assert abs(after.item()) < 1e-3 * abs(dot.item())
        else:  # left alone
            assert all(torch.equal(p.grad, b) for p, b in zip(params, before))
    assert signs == {True, False}  # both cases met


def learn(agent, task, steps):
    for s in agent.strategies:
        s.before_task(task)
    agent.begin_task(task)
    agent.train_task(task, steps, lambda done: None)
    agent.task_steps = steps
    for s in agent.strategies:
        s.after_task(task)


def test_packnet_freezes_each_tasks_weights_so_the_old_policy_is_kept_exactly():
    agent = ppo_agent("packnet", hidden=(16, 16))
    packnet = agent.strategies[0]
    obs = torch.randn(64, 4)
    learn(agent, 0, 256)
    owners0 = {n: o.clone() for n, o in packnet.owner.items()}
    kept0 = {n: p.detach().clone() for n, p in packnet.weights.items()}
    with packnet.evaluating(0):
        logits0 = agent.actor(obs, torch.zeros(64, dtype=torch.long))
    for n, o in owners0.items():  # a quarter of each layer kept by task 0, the rest released at 0
        assert (o == 1).float().mean().item() == pytest.approx(0.25, abs=0.01)
        assert not kept0[n][o == 0].any()
    learn(agent, 1, 256)
    for n, o in packnet.owner.items():
        assert torch.equal(o[owners0[n] == 1], owners0[n][owners0[n] == 1])  # task 0's stay task 0's
        assert ((o == 2) & (owners0[n] == 0)).sum() > 0  # task 1 took free ones
        assert torch.equal(packnet.weights[n].detach()[o == 1], kept0[n][o == 1])  # frozen
    with packnet.evaluating(0):
        torch.testing.assert_close(agent.actor(obs, torch.zeros(64, dtype=torch.long)), logits0, rtol=0, atol=0)
    assert any(not torch.equal(packnet.weights[n].detach(), kept0[n]) for n in kept0)  # task 1 did learn


def test_heads_take_any_leading_dimensions():
    agent = ppo_agent("multihead", hidden=(8,))
    obs, tasks = torch.randn(3, 5, 4), torch.randint(0, 2, (3, 5))
    with torch.no_grad():
        torch.testing.assert_close(agent.actor(obs, tasks), agent.actor(obs.reshape(15, 4), tasks.reshape(15))
                                   .reshape(3, 5, 2))
