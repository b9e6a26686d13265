"""gpugrad.optim against torch.optim: SGD, Adam, AdamW, gradient clipping, schedulers.

The key check: the same float64 initial weights and the same sequence of batches, fed
to a gpugrad optimiser and to the matching torch optimiser, give the same parameters
after every one of 10 steps (``rtol=1e-10``). Around it: grads of None are skipped
(their state does not advance either), zero_grad() sets grads to None, param_groups
carry the learning rate that step() uses, clip_grad_norm_ matches
torch.nn.utils.clip_grad_norm_, and StepLR/CosineAnnealingLR match torch's schedulers
over 20 epochs.

Expected values come from PyTorch or closed forms, never from gpugrad itself. The whole
file is skipped where PyTorch is not installed.
"""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import device_params  # noqa: E402

import gpugrad as gg  # noqa: E402

RTOL = 1e-10
ATOL = 1e-12
STEPS = 10


def values(t):
    """A gpugrad tensor's values as a float64 NumPy array."""
    return np.asarray(t.numpy(), dtype=np.float64)


class Problem:
    """A small regression problem, y = tanh(x W^T + b) V^T with a squared error, and
    its data: initial weights and STEPS batches, all float64, fixed by `seed`."""

    def __init__(self, seed=0, steps=STEPS):
        rng = np.random.default_rng(seed)
        self.init = [rng.standard_normal((4, 3)), rng.standard_normal(4) * 0.1,
                     rng.standard_normal((2, 4))]
        self.batches = [(rng.standard_normal((6, 3)), rng.standard_normal((6, 2)))
                        for _ in range(steps)]

    def gg_params(self, device="cpu"):
        return [gg.tensor(a.copy(), device=device, requires_grad=True) for a in self.init]

    def torch_params(self):
        return [torch.tensor(a.copy(), requires_grad=True) for a in self.init]

    @staticmethod
    def gg_loss(params, x, y, device="cpu", use=(0, 1, 2)):
        W, b, V = params
        x, y = gg.tensor(x, device=device), gg.tensor(y, device=device)
        if use == (0,):  # only W takes part: b and V get no gradient
            return (((x @ W.T).tanh().sum(axis=1) - y[:, 0]) ** 2).mean()
        return (((x @ W.T + b).tanh() @ V.T - y) ** 2).mean()

    @staticmethod
    def torch_loss(params, x, y, use=(0, 1, 2)):
        W, b, V = params
        x, y = torch.tensor(x), torch.tensor(y)
        if use == (0,):
            return ((torch.tanh(x @ W.T).sum(dim=1) - y[:, 0]) ** 2).mean()
        return (((torch.tanh(x @ W.T + b) @ V.T) - y) ** 2).mean()


def assert_same_params(gps, tps, step, rtol=RTOL, atol=ATOL):
    for i, (g, t) in enumerate(zip(gps, tps, strict=True)):
        np.testing.assert_allclose(values(g), t.detach().numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"parameter {i} after step {step}")


def run_both(make_gg, make_torch, problem=None, device="cpu", use_schedule=None):
    """Train the same problem in both libraries, comparing parameters after each step.

    use_schedule(step) -> which parameters the loss uses at that step (default: all).
    """
    problem = problem or Problem()
    gps, tps = problem.gg_params(device), problem.torch_params()
    gopt, topt = make_gg(gps), make_torch(tps)
    for step, (x, y) in enumerate(problem.batches, start=1):
        use = use_schedule(step) if use_schedule else (0, 1, 2)
        gopt.zero_grad()
        Problem.gg_loss(gps, x, y, device, use).backward()
        gopt.step()
        topt.zero_grad()
        Problem.torch_loss(tps, x, y, use).backward()
        topt.step()
        for g in gps:
            assert g.device == device
            assert g.requires_grad
        assert_same_params(gps, tps, step)
    return gps, tps


# --------------------------------------------------------------------------------------
# Trajectories against torch.optim
# --------------------------------------------------------------------------------------

SGD_CONFIGS = [
    pytest.param(dict(lr=0.1), id="plain"),
    pytest.param(dict(lr=0.05, momentum=0.9), id="momentum"),
    pytest.param(dict(lr=0.05, momentum=0.9, nesterov=True), id="nesterov"),
    pytest.param(dict(lr=0.1, weight_decay=0.05), id="weight_decay"),
    pytest.param(dict(lr=0.05, momentum=0.8, weight_decay=0.01), id="momentum+wd"),
    pytest.param(dict(lr=0.05, momentum=0.9, weight_decay=0.02, nesterov=True),
                 id="nesterov+wd"),
]


@pytest.mark.parametrize("config", SGD_CONFIGS)
def test_sgd_follows_torch_step_by_step(config):
    run_both(lambda ps: gg.optim.SGD(ps, **config),
             lambda ps: torch.optim.SGD(ps, **config))


ADAM_CONFIGS = [
    pytest.param(dict(), id="defaults"),
    pytest.param(dict(lr=0.01), id="lr"),
    pytest.param(dict(lr=0.01, weight_decay=0.1), id="weight_decay"),
    pytest.param(dict(lr=0.02, betas=(0.8, 0.95), eps=1e-6), id="betas+eps"),
    pytest.param(dict(lr=0.02, betas=(0.5, 0.9), eps=1e-4, weight_decay=0.05), id="all"),
]


@pytest.mark.parametrize("config", ADAM_CONFIGS)
def test_adam_follows_torch_step_by_step(config):
    run_both(lambda ps: gg.optim.Adam(ps, **config),
             lambda ps: torch.optim.Adam(ps, **config))


ADAMW_CONFIGS = [
    pytest.param(dict(), id="defaults"),
    pytest.param(dict(lr=0.01), id="lr"),
    pytest.param(dict(lr=0.01, weight_decay=0.1), id="weight_decay"),
    pytest.param(dict(lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.3), id="all"),
    pytest.param(dict(lr=0.01, weight_decay=0.0), id="no_decay"),
]


@pytest.mark.parametrize("config", ADAMW_CONFIGS)
def test_adamw_follows_torch_step_by_step(config):
    run_both(lambda ps: gg.optim.AdamW(ps, **config),
             lambda ps: torch.optim.AdamW(ps, **config))


def test_adam_and_adamw_weight_decay_differ():
    """Adam's weight_decay is L2 on the gradient, AdamW's is decoupled: with the same
    settings they take different paths (each matched to torch above)."""
    problem = Problem(seed=1)
    a, _ = run_both(lambda ps: gg.optim.Adam(ps, lr=0.01, weight_decay=0.5),
                    lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.5), problem)
    w, _ = run_both(lambda ps: gg.optim.AdamW(ps, lr=0.01, weight_decay=0.5),
                    lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.5), problem)
    assert not np.allclose(values(a[0]), values(w[0]), rtol=1e-6)


OPTIMIZERS = [
    pytest.param("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.02, nesterov=True),
                 id="sgd"),
    pytest.param("Adam", dict(lr=0.01, weight_decay=0.1), id="adam"),
    pytest.param("AdamW", dict(lr=0.01, weight_decay=0.1), id="adamw"),
]


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("name, config", OPTIMIZERS)
def test_optimisers_follow_torch_on_every_device(name, config, device):
    """The same trajectories with the parameters on each backend: optimiser state
    lives on the parameters' device and no host array leaks into the update."""
    run_both(lambda ps: getattr(gg.optim, name)(ps, **config),
             lambda ps: getattr(torch.optim, name)(ps, **config), device=device)


# --------------------------------------------------------------------------------------
# Parameters without gradients
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, config", OPTIMIZERS)
def test_a_parameter_whose_grad_is_none_is_left_alone(name, config):
    """b and V take no part in the loss: their grads stay None, and even with weight
    decay and momentum/Adam state they are exactly unchanged after 10 steps, while W
    follows torch."""
    problem = Problem(seed=2)
    gps, _ = run_both(lambda ps: getattr(gg.optim, name)(ps, **config),
                      lambda ps: getattr(torch.optim, name)(ps, **config), problem,
                      use_schedule=lambda step: (0,))
    assert gps[1].grad is None and gps[2].grad is None
    np.testing.assert_array_equal(values(gps[1]), problem.init[1])
    np.testing.assert_array_equal(values(gps[2]), problem.init[2])
    assert not np.array_equal(values(gps[0]), problem.init[0])


@pytest.mark.parametrize("name, config", OPTIMIZERS)
def test_skipped_steps_do_not_advance_a_parameters_state(name, config):
    """b and V get gradients only on even steps. torch keeps per-parameter state (the
    momentum buffer, Adam's moments and step count) untouched on the skipped steps;
    gpugrad must follow the same trajectory."""
    run_both(lambda ps: getattr(gg.optim, name)(ps, **config),
             lambda ps: getattr(torch.optim, name)(ps, **config), Problem(seed=3),
             use_schedule=lambda step: (0, 1, 2) if step % 2 == 0 else (0,))


# --------------------------------------------------------------------------------------
# zero_grad and param_groups
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_zero_grad_sets_grads_to_none(name):
    params = Problem().gg_params()
    opt = getattr(gg.optim, name)(params, lr=0.1)
    x, y = Problem().batches[0]
    Problem.gg_loss(params, x, y).backward()
    assert all(p.grad is not None for p in params)
    opt.zero_grad()
    assert all(p.grad is None for p in params)


@pytest.mark.parametrize("name, lr", [("SGD", 0.3), ("Adam", 0.001), ("AdamW", 0.001)])
def test_param_groups_hold_the_learning_rate(name, lr):
    params = Problem().gg_params()
    opt = getattr(gg.optim, name)(params, lr=lr) if name == "SGD" \
        else getattr(gg.optim, name)(params)
    assert isinstance(opt.param_groups, list) and len(opt.param_groups) >= 1
    assert all(isinstance(g, dict) for g in opt.param_groups)
    assert opt.param_groups[0]["lr"] == lr


def test_changing_the_learning_rate_in_param_groups_changes_the_step():
    """lr set to 0 in param_groups: SGD leaves the parameters exactly as they were."""
    problem = Problem()
    params = problem.gg_params()
    opt = gg.optim.SGD(params, lr=0.5)
    opt.param_groups[0]["lr"] = 0.0
    Problem.gg_loss(params, *problem.batches[0]).backward()
    opt.step()
    for p, a in zip(params, problem.init, strict=True):
        np.testing.assert_array_equal(values(p), a)


@pytest.mark.parametrize("name, config", OPTIMIZERS)
def test_a_learning_rate_changed_mid_training_follows_torch(name, config):
    """Halving lr through param_groups after 5 steps, in both libraries."""
    problem = Problem(seed=4)
    gps, tps = problem.gg_params(), problem.torch_params()
    gopt = getattr(gg.optim, name)(gps, **config)
    topt = getattr(torch.optim, name)(tps, **config)
    for step, (x, y) in enumerate(problem.batches, start=1):
        if step == 6:
            for group in gopt.param_groups:
                group["lr"] = group["lr"] / 2
            for group in topt.param_groups:
                group["lr"] = group["lr"] / 2
        gopt.zero_grad()
        Problem.gg_loss(gps, x, y).backward()
        gopt.step()
        topt.zero_grad()
        Problem.torch_loss(tps, x, y).backward()
        topt.step()
        assert_same_params(gps, tps, step)


# --------------------------------------------------------------------------------------
# clip_grad_norm_
# --------------------------------------------------------------------------------------


def grads_both(arrays):
    """Leaves in both libraries whose grads are exactly `arrays` (from sum(p * g)), plus
    one extra parameter in each that takes no part (grad None)."""
    gps = [gg.tensor(np.zeros_like(a), requires_grad=True) for a in arrays]
    tps = [torch.zeros(a.shape, dtype=torch.float64, requires_grad=True) for a in arrays]
    sum((p * gg.tensor(a)).sum() for p, a in zip(gps, arrays, strict=True)).backward()
    sum((p * torch.tensor(a)).sum() for p, a in zip(tps, arrays, strict=True)).backward()
    gps.append(gg.tensor(np.ones(3), requires_grad=True))
    tps.append(torch.ones(3, dtype=torch.float64, requires_grad=True))
    return gps, tps


@pytest.mark.parametrize("max_norm", [0.5, 2.0, 100.0])
def test_clip_grad_norm_matches_torch(max_norm):
    """Total L2 norm over all grads (returned as a float, before clipping); grads scaled
    by max_norm / (norm + 1e-6) when the norm exceeds max_norm, as torch does."""
    rng = np.random.default_rng(30)
    arrays = [rng.standard_normal((3, 4)), rng.standard_normal(5),
              np.asarray(rng.standard_normal(()), dtype=np.float64)]
    gps, tps = grads_both(arrays)
    total = gg.optim.clip_grad_norm_(gps, max_norm)
    expected = torch.nn.utils.clip_grad_norm_(tps, max_norm)
    assert isinstance(total, float)
    assert total == pytest.approx(float(expected), rel=1e-12)
    assert total == pytest.approx(math.sqrt(sum(float((a**2).sum()) for a in arrays)),
                                  rel=1e-12)
    for g, t in zip(gps[:-1], tps[:-1], strict=True):
        np.testing.assert_allclose(values(g.grad), t.grad.numpy(), rtol=1e-10, atol=1e-14)
    assert gps[-1].grad is None


def test_clip_grad_norm_leaves_the_norm_at_max_norm():
    rng = np.random.default_rng(31)
    gps, _ = grads_both([rng.standard_normal(10) * 5, rng.standard_normal((2, 2)) * 5])
    before = gg.optim.clip_grad_norm_(gps, 1.0)
    assert before > 1.0
    after = math.sqrt(sum(float((values(p.grad) ** 2).sum()) for p in gps[:-1]))
    assert after == pytest.approx(1.0, rel=1e-5)


def test_clip_grad_norm_does_not_touch_small_gradients():
    arrays = [np.array([0.3, -0.4])]  # norm 0.5
    gps, _ = grads_both(arrays)
    total = gg.optim.clip_grad_norm_(gps, 1.0)
    assert total == pytest.approx(0.5, rel=1e-12)
    np.testing.assert_allclose(values(gps[0].grad), arrays[0], rtol=1e-15)


# --------------------------------------------------------------------------------------
# Learning-rate schedulers
# --------------------------------------------------------------------------------------


def scheduled_lrs(make_sched, lib, epochs=20, lr=0.1):
    """(get_last_lr() before any step and after each epoch, param_groups lr likewise)."""
    if lib == "torch":
        p = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.SGD([p], lr=lr)
    else:
        p = gg.zeros(2, dtype="float64", requires_grad=True)
        opt = gg.optim.SGD([p], lr=lr)
    sched = make_sched(opt)
    last, group = [sched.get_last_lr()], [opt.param_groups[0]["lr"]]
    for _ in range(epochs):
        opt.step()
        sched.step()
        last.append(sched.get_last_lr())
        group.append(opt.param_groups[0]["lr"])
    return last, group


SCHEDULERS = [
    pytest.param(lambda m, o: m.StepLR(o, step_size=5), id="step5"),
    pytest.param(lambda m, o: m.StepLR(o, step_size=3, gamma=0.5), id="step3-half"),
    pytest.param(lambda m, o: m.StepLR(o, 1, gamma=0.9), id="step1"),
    pytest.param(lambda m, o: m.CosineAnnealingLR(o, T_max=20), id="cos20"),
    pytest.param(lambda m, o: m.CosineAnnealingLR(o, T_max=10, eta_min=0.001), id="cos10"),
    pytest.param(lambda m, o: m.CosineAnnealingLR(o, 7, eta_min=0.01), id="cos7-wraps"),
]


@pytest.mark.parametrize("make", SCHEDULERS)
def test_schedulers_match_torch_over_twenty_epochs(make):
    g_last, g_group = scheduled_lrs(lambda o: make(gg.optim.lr_scheduler, o), "gg")
    t_last, t_group = scheduled_lrs(lambda o: make(torch.optim.lr_scheduler, o), "torch")
    for epoch, (g, t) in enumerate(zip(g_last, t_last, strict=True)):
        assert isinstance(g, list) and all(isinstance(v, float) for v in g), (epoch, g)
        np.testing.assert_allclose(g, t, rtol=1e-10, atol=1e-15, err_msg=f"epoch {epoch}")
    np.testing.assert_allclose(g_group, t_group, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose([v[0] for v in g_last], g_group, rtol=1e-12, atol=1e-15)


def test_step_lr_closed_form():
    """StepLR(step_size=4, gamma=0.1) from lr 1: 1 for epochs 0-3, 0.1 for 4-7, ..."""
    last, _ = scheduled_lrs(lambda o: gg.optim.lr_scheduler.StepLR(o, 4), "gg", 12, lr=1.0)
    np.testing.assert_allclose([v[0] for v in last],
                               [0.1 ** (e // 4) for e in range(13)], rtol=1e-12)


def test_cosine_annealing_closed_form():
    """eta_t = eta_min + (eta_0 - eta_min)(1 + cos(pi t / T_max)) / 2."""
    last, _ = scheduled_lrs(
        lambda o: gg.optim.lr_scheduler.CosineAnnealingLR(o, T_max=8, eta_min=0.02),
        "gg", 8, lr=0.5)
    expected = [0.02 + 0.48 * (1 + math.cos(math.pi * t / 8)) / 2 for t in range(9)]
    np.testing.assert_allclose([v[0] for v in last], expected, rtol=1e-10)
    assert last[-1][0] == pytest.approx(0.02, rel=1e-10)


def test_a_scheduler_drives_the_optimiser_like_torch():
    """SGD with momentum under StepLR(2, 0.5): the parameter trajectory over 10 steps
    matches torch's, so the scheduled lr is the one step() uses."""
    problem = Problem(seed=5)
    gps, tps = problem.gg_params(), problem.torch_params()
    gopt = gg.optim.SGD(gps, lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(tps, lr=0.1, momentum=0.9)
    gs = gg.optim.lr_scheduler.StepLR(gopt, 2, gamma=0.5)
    ts = torch.optim.lr_scheduler.StepLR(topt, 2, gamma=0.5)
    for step, (x, y) in enumerate(problem.batches, start=1):
        gopt.zero_grad()
        Problem.gg_loss(gps, x, y).backward()
        gopt.step()
        gs.step()
        topt.zero_grad()
        Problem.torch_loss(tps, x, y).backward()
        topt.step()
        ts.step()
        assert_same_params(gps, tps, step)
