"""gpugrad.optim against torch.optim: SGD, Adam, AdamW, gradient clipping, schedulers.

The key check: the same float64 initial weights and the same sequence of batches, fed
to a gpugrad optimiser and to the matching torch optimiser, give the same parameters
after every one of 10 steps (``rtol=1e-10``). Around it: grads of None are skipped
(their state does not advance either), zero_grad() sets grads to None, param_groups
carry the learning rate that step() uses, clip_grad_norm_ matches
torch.nn.utils.clip_grad_norm_, and StepLR/CosineAnnealingLR match torch's schedulers
over 20 epochs. Also as in torch: add_param_group, zero_grad(set_to_none=False), repr,
an lr put into a group checked at step(), and schedules resumed from state dicts.

Expected values come from PyTorch or closed forms, never from gpugrad itself. The whole
file is skipped where PyTorch is not installed.
"""

import math
import warnings

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


def step_both(gps, gopt, tps, topt, x, y, step):
    """One step of the problem's loss in both libraries, then the parameters compared."""
    gopt.zero_grad()
    Problem.gg_loss(gps, x, y).backward()
    gopt.step()
    topt.zero_grad()
    Problem.torch_loss(tps, x, y).backward()
    topt.step()
    assert_same_params(gps, tps, step)


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
    pytest.param(dict(lr=0.05, momentum=0.9, weight_decay=0.02, maximize=True),
                 id="maximize"),
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
    pytest.param(dict(lr=0.02, betas=(0.5, 0.9), amsgrad=True), id="amsgrad"),
    pytest.param(dict(lr=0.02, weight_decay=0.05, amsgrad=True, maximize=True),
                 id="amsgrad+maximize"),
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
    pytest.param(dict(lr=0.02, betas=(0.5, 0.9), weight_decay=0.1, amsgrad=True),
                 id="amsgrad"),
    pytest.param(dict(lr=0.02, weight_decay=0.1, maximize=True), id="maximize"),
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
    pytest.param("Adam", dict(lr=0.02, amsgrad=True, maximize=True), id="adam-amsgrad"),
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
        step_both(gps, gopt, tps, topt, x, y, step)


MOMENTUM_SCHEDULES = {"on at step 4": {4: 0.9}, "on, off, on": {1: 0.9, 3: 0.0, 5: 0.8}}


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("schedule", list(MOMENTUM_SCHEDULES))
def test_momentum_switched_on_mid_training_follows_torch(compiled, nesterov, schedule):
    """Momentum 0, then 0.9 (a warm-up): the buffer starts at the first step that needs
    it, as PyTorch's does (it was a KeyError); switched off, the buffer is kept for when
    it comes on again, as PyTorch keeps it."""
    problem = Problem(seed=5)
    gps, tps = problem.gg_params(), problem.torch_params()
    gopt, topt = gg.optim.SGD(gps, lr=0.05), torch.optim.SGD(tps, lr=0.05)

    def step(x, y):
        W, b, V = gps
        gopt.zero_grad()
        loss = (((x @ W.T + b).tanh() @ V.T - y) ** 2).mean()  # Problem.gg_loss
        loss.backward()
        gopt.step()
        return loss

    run = gg.compile(step) if compiled else step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gg.CompileWarning)  # a new momentum: a new plan
        for i, (x, y) in enumerate(problem.batches, start=1):
            momentum = MOMENTUM_SCHEDULES[schedule].get(i)
            if momentum is not None:
                for opt in (gopt, topt):
                    opt.param_groups[0].update(momentum=momentum,
                                               nesterov=nesterov and momentum > 0)
            run(gg.tensor(x), gg.tensor(y))
            topt.zero_grad()
            Problem.torch_loss(tps, x, y).backward()
            topt.step()
            assert_same_params(gps, tps, i)
    assert set(gopt.state[gps[0]]) == {"step", "momentum_buffer"}


@pytest.mark.parametrize("schedule", list(MOMENTUM_SCHEDULES))
def test_sgd_resumed_at_every_step_of_a_momentum_schedule_follows_torch(tmp_path, schedule):
    """A checkpoint taken at any step of a momentum schedule loads and goes on as
    training that never stopped: taken with momentum 0 after steps with it (the buffer
    kept), or with momentum just switched on (no buffer yet). Each was refused by
    load_state_dict as another optimiser's state."""
    problem = Problem(seed=6)
    gps, tps = problem.gg_params(), problem.torch_params()
    gopt, topt = gg.optim.SGD(gps, lr=0.05), torch.optim.SGD(tps, lr=0.05)
    for i, (x, y) in enumerate(problem.batches, start=1):
        momentum = MOMENTUM_SCHEDULES[schedule].get(i)
        if momentum is not None:
            for opt in (gopt, topt):
                opt.param_groups[0]["momentum"] = momentum
        gg.save(gopt.state_dict(), tmp_path / "opt.npz")
        gopt = gg.optim.SGD(gps, lr=0.05)
        gopt.load_state_dict(gg.load(tmp_path / "opt.npz"))
        step_both(gps, gopt, tps, topt, x, y, i)


# --------------------------------------------------------------------------------------
# add_param_group, zero_grad(set_to_none=False), repr, learning rates put into groups
# --------------------------------------------------------------------------------------


def run_with_a_group_added(lib, problem, name, config, group, at_step=4):
    """Train [W] alone, then from step `at_step` also b and V through add_param_group:
    the parameters after every step."""
    params = problem.gg_params() if lib is gg else problem.torch_params()
    loss = Problem.gg_loss if lib is gg else Problem.torch_loss
    opt = getattr(lib.optim, name)(params[:1], **config)
    after = []
    for step, (x, y) in enumerate(problem.batches, start=1):
        if step == at_step:
            opt.add_param_group({"params": params[1:], **group})
        opt.zero_grad()
        loss(params, x, y).backward()
        opt.step()
        after.append([np.array(p.detach().numpy(), dtype=np.float64) for p in params])
    return opt, after


@pytest.mark.parametrize("name, config", OPTIMIZERS)
@pytest.mark.parametrize("group", [{}, {"lr": 0.002}], ids=["defaults", "own-lr"])
def test_a_param_group_added_mid_training_follows_torch(name, config, group):
    """The new group takes the optimiser's defaults where the dict is silent, its own
    lr where given; b and V start moving at step 4, exactly as in PyTorch."""
    problem = Problem(seed=6)
    gopt, ours = run_with_a_group_added(gg, problem, name, config, group)
    _, theirs = run_with_a_group_added(torch, problem, name, config, group)
    for step, (mine, ref) in enumerate(zip(ours, theirs, strict=True), start=1):
        for i, (a, b) in enumerate(zip(mine, ref, strict=True)):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL,
                                       err_msg=f"parameter {i} after step {step}")
    np.testing.assert_array_equal(ours[2][1], problem.init[1])  # not trained before
    added = gopt.param_groups[1]
    assert added["lr"] == group.get("lr", config["lr"])
    assert {k: v for k, v in added.items() if k not in ("params", "lr")} == \
        {k: v for k, v in gopt.defaults.items() if k != "lr"}


def test_add_param_group_refuses_a_parameter_already_there():
    """As PyTorch: one parameter in two groups would be updated twice per step. Also
    refused: a set (its order, which state_dict numbers by, changes between runs), a
    list instead of a dict, a non-leaf tensor. Nothing is added by a refused group."""
    W, b, V = Problem().gg_params()
    opt = gg.optim.SGD([W], lr=0.1)
    for bad in ({"params": [b, W]}, {"params": [b, b]}, {"params": W}):
        with pytest.raises(ValueError, match="more than once"):
            opt.add_param_group(bad)
    with pytest.raises(TypeError, match="ordered"):
        opt.add_param_group({"params": {b}})
    with pytest.raises(TypeError, match="dict"):
        opt.add_param_group([b])
    with pytest.raises(ValueError, match="leaf"):
        opt.add_param_group({"params": [b * 2]})
    assert len(opt.param_groups) == 1
    opt.add_param_group({"params": b})  # one tensor: a group of one, as PyTorch
    assert opt.param_groups[1]["params"] == [b]


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_zero_grad_without_set_to_none_zeros_the_same_grads_like_torch(name):
    """set_to_none=False: every .grad is the same tensor as before, now zeros; a grad
    that was None stays None - as torch's; the next step then follows torch's too."""
    problem = Problem(seed=7)
    gps, tps = problem.gg_params(), problem.torch_params()
    gopt, topt = getattr(gg.optim, name)(gps, lr=0.05), getattr(torch.optim, name)(tps, lr=0.05)
    x, y = problem.batches[0]
    Problem.gg_loss(gps, x, y, use=(0,)).backward()  # b and V: no gradient
    Problem.torch_loss(tps, x, y, use=(0,)).backward()
    held = gps[0].grad
    gopt.zero_grad(set_to_none=False)
    topt.zero_grad(set_to_none=False)
    assert gps[0].grad is held
    np.testing.assert_array_equal(values(held), tps[0].grad.numpy())
    assert [p.grad is None for p in gps] == [p.grad is None for p in tps] == \
        [False, True, True]
    for step, (x, y) in enumerate(problem.batches[1:4], start=2):
        gopt.zero_grad(set_to_none=False)
        Problem.gg_loss(gps, x, y).backward()
        gopt.step()
        topt.zero_grad(set_to_none=False)
        Problem.torch_loss(tps, x, y).backward()
        topt.step()
        assert_same_params(gps, tps, step)


def test_repr_shows_each_groups_hyper_parameters_as_torch_prints_them():
    W, b, _ = Problem().gg_params()
    opt = gg.optim.SGD([W], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": [b], "lr": 0.01})
    assert repr(opt) == "\n".join([
        "SGD (", "Parameter Group 0", "    dampening: 0.0", "    lr: 0.1",
        "    maximize: False", "    momentum: 0.9", "    nesterov: False",
        "    weight_decay: 0.0",
        "Parameter Group 1", "    dampening: 0.0", "    lr: 0.01", "    maximize: False",
        "    momentum: 0.9", "    nesterov: False", "    weight_decay: 0.0", ")"])
    assert repr(gg.optim.Adam([W])).splitlines()[:4] == [
        "Adam (", "Parameter Group 0", "    amsgrad: False", "    betas: (0.9, 0.999)"]


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
@pytest.mark.parametrize("lr", [-0.1, float("nan"), float("inf")])
def test_a_bad_learning_rate_put_into_a_group_is_refused_at_the_next_step(name, lr):
    """The constructor refuses it; one set in param_groups afterwards (by hand, by a
    schedule) is refused by step(), naming the group, before anything changes."""
    with pytest.raises(ValueError, match="finite number >= 0"):
        getattr(gg.optim, name)(Problem().gg_params(), lr=lr)
    problem = Problem(seed=8)
    params = problem.gg_params()
    opt = getattr(gg.optim, name)(params[:2], lr=0.1)
    opt.add_param_group({"params": params[2:]})
    Problem.gg_loss(params, *problem.batches[0]).backward()
    opt.step()
    state = {id(p): dict(s) for p, s in opt.state.items()}
    before = [values(p) for p in params]
    opt.param_groups[1]["lr"] = lr
    with pytest.raises(ValueError, match=f"parameter group 1 has lr={lr}"):
        opt.step()
    for p, b in zip(params, before, strict=True):
        np.testing.assert_array_equal(values(p), b)
    assert all(opt.state[p]["step"] == state[id(p)]["step"] == 1 for p in params)
    with pytest.raises(ValueError, match="parameter group 2"):  # the one it would be
        opt.add_param_group({"params": [gg.zeros(2, requires_grad=True)], "lr": lr})
    assert len(opt.param_groups) == 2


def test_a_compiled_step_sees_an_added_group_and_a_bad_learning_rate():
    """gg.compile's plan holds the groups it was traced with: a group added later traces
    anew (else its parameters would never move); an lr turned NaN is refused by the
    plan's run itself (it reads lr every run), before anything moved - the same as
    eager, step for step."""
    problem = Problem(seed=9)

    def train(compiled):
        params = problem.gg_params()
        opt = gg.optim.SGD(params[:1], lr=0.05, momentum=0.9)

        def step(x, y):
            W, b, V = params
            opt.zero_grad()
            loss = (((x @ W.T + b).tanh() @ V.T - y) ** 2).mean()
            loss.backward()
            opt.step()
            return loss

        run = gg.compile(step) if compiled else step
        for i, (x, y) in enumerate(problem.batches[:6]):
            if i == 3:
                opt.add_param_group({"params": params[1:], "lr": 0.01})
            run(gg.tensor(x), gg.tensor(y))
        opt.param_groups[1]["lr"] = float("nan")
        with pytest.raises(ValueError, match="parameter group 1 has lr=nan"):
            run(*(gg.tensor(a) for a in problem.batches[6]))
        return [values(p) for p in params]

    with pytest.warns(gg.CompileWarning) as warned:
        compiled = train(True)
    reasons = " | ".join(str(w.message) for w in warned)
    assert "a parameter group or parameter was added" in reasons
    assert "learning rate" not in reasons  # the NaN lr is refused by the run, untraced
    for a, b in zip(compiled, train(False), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


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


def clipped_both(arrays, *args, **kwargs):
    """clip_grad_norm_ run on leaves whose grads are `arrays` (any dtype) in both
    libraries with the same arguments: (our norm, torch's, our grads, torch's)."""
    gps = [gg.tensor(np.zeros_like(a), requires_grad=True) for a in arrays]
    tps = [torch.zeros(a.shape, dtype=getattr(torch, str(a.dtype)), requires_grad=True)
           for a in arrays]
    for g, t, a in zip(gps, tps, arrays, strict=True):
        g.grad, t.grad = gg.tensor(a.copy()), torch.tensor(a.copy())
    ours = gg.nn.clip_grad_norm_(gps, *args, **kwargs)
    theirs = torch.nn.utils.clip_grad_norm_(tps, *args, **kwargs)
    return (ours, float(theirs), [values(g.grad) for g in gps],
            [t.grad.double().numpy() for t in tps])


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
def test_clip_grad_norm_takes_torchs_arguments_in_torchs_order(norm_type):
    """clip_grad_norm_(params, max_norm, norm_type): the third argument is the norm's
    order, as in torch (it used to be eps, so torch code clipped by a wrong factor)."""
    rng = np.random.default_rng(32)
    arrays = [rng.standard_normal((3, 4)) * 3, rng.standard_normal(5)]
    ours, theirs, g, t = clipped_both(arrays, 1.0, norm_type)
    assert ours == pytest.approx(theirs, rel=1e-12)
    for a, b in zip(g, t, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    ours, theirs, g, t = clipped_both(arrays, 1.0, norm_type=norm_type, foreach=False)
    assert ours == pytest.approx(theirs, rel=1e-12)


def test_clip_grad_norm_of_half_precision_gradients_does_not_overflow():
    """float16 squares overflow at 256: the norm 500 of [300, 400] was inf, and every
    gradient was scaled to zero. Accumulated in float32, as torch does."""
    ours, theirs, g, t = clipped_both([np.array([300.0, 400.0], np.float16)], 1.0)
    assert ours == theirs == 500.0
    np.testing.assert_allclose(g[0], t[0], rtol=1e-3)
    assert np.abs(g[0]).min() > 0.5


def test_clip_grad_norm_error_if_nonfinite_leaves_the_gradients_as_they_were():
    """As in torch: a RuntimeError, before any gradient is scaled."""
    arrays = [np.array([np.inf, 1.0]), np.array([2.0])]
    tps = [torch.zeros(len(a), dtype=torch.float64, requires_grad=True) for a in arrays]
    for t, a in zip(tps, arrays, strict=True):
        t.grad = torch.tensor(a)
    with pytest.raises(RuntimeError, match="non-finite"):
        torch.nn.utils.clip_grad_norm_(tps, 1.0, error_if_nonfinite=True)
    gps = [gg.tensor(np.zeros_like(a), requires_grad=True) for a in arrays]
    for p, a in zip(gps, arrays, strict=True):
        p.grad = gg.tensor(a)
    with pytest.raises(RuntimeError, match="is inf"):
        gg.nn.clip_grad_norm_(gps, 1.0, error_if_nonfinite=True)
    for p, a in zip(gps, arrays, strict=True):
        np.testing.assert_array_equal(values(p.grad), a)


def nan_grads():
    """Two leaves whose joint gradient norm is NaN (one NaN among finite values)."""
    w, b = gg.zeros(2, requires_grad=True), gg.zeros(1, requires_grad=True)
    w.grad, b.grad = gg.tensor([float("nan"), 3.0]), gg.tensor([4.0])
    return [w, b]


def test_a_nan_norm_scales_every_gradient_to_nan_eagerly_as_in_a_plan_and_torch():
    """Eagerly a NaN norm left the finite gradients as they were, where torch and a
    compiled plan make them all NaN: one behaviour on every path."""
    ours, theirs, g, t = clipped_both([np.array([np.nan, 3.0]), np.array([4.0])], 1.0)
    assert math.isnan(ours) and math.isnan(theirs)
    assert all(np.isnan(a).all() for a in g) and all(np.isnan(a).all() for a in t)
    params = nan_grads()
    gg.compile(lambda: gg.nn.clip_grad_norm_(params, 1.0))()
    assert all(np.isnan(values(p.grad)).all() for p in params)


@pytest.mark.parametrize("norm_type", [1.0, 3.0, float("inf")])
def test_a_compiled_clip_grad_norm_takes_the_norm_type(norm_type):
    rng = np.random.default_rng(33)
    arrays = [rng.standard_normal((2, 3)) * 4, rng.standard_normal(4) * 4]

    def leaves():
        params = [gg.zeros(a.shape, dtype="float64", requires_grad=True) for a in arrays]
        for p, a in zip(params, arrays, strict=True):
            p.grad = gg.tensor(a)
        return params

    eager, traced = leaves(), leaves()
    expected = gg.nn.clip_grad_norm_(eager, 1.0, norm_type)
    total = gg.compile(lambda: gg.nn.clip_grad_norm_(traced, 1.0, norm_type))()
    assert float(total.numpy()) == pytest.approx(expected, rel=1e-12)
    for a, b in zip(eager, traced, strict=True):
        np.testing.assert_allclose(values(b.grad), values(a.grad), rtol=1e-12)


def test_clip_grad_norm_refuses_what_it_cannot_do():
    """A norm order that is no norm, and a host check of the norm inside gg.compile
    (which only the tracing call would make), are named."""
    params = nan_grads()
    for bad in (0, -1, "nuc", None):
        with pytest.raises(ValueError, match="norm_type must be"):
            gg.nn.clip_grad_norm_(params, 1.0, bad)
    with pytest.raises(gg.CompileError, match="error_if_nonfinite"):
        gg.compile(lambda: gg.nn.clip_grad_norm_(params, 1.0, error_if_nonfinite=True))()


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


def scheduled_run(lib, make_sched, epochs, resume_at=None, tmp_path=None, lr=0.1):
    """The lr of each epoch of a run with two param groups (the second at lr / 10);
    with resume_at, the run stops after that epoch, saves the optimiser's and the
    scheduler's state dicts (gg.save for gpugrad, torch.save for torch), and a new
    optimiser and scheduler load them and go on."""
    def fresh():
        if lib is gg:
            a, b = gg.zeros(2, dtype="float64", requires_grad=True), gg.zeros(1, dtype="float64",
                                                                             requires_grad=True)
        else:
            a, b = torch.zeros(2, dtype=torch.float64, requires_grad=True), \
                torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = lib.optim.SGD([{"params": [a]}, {"params": [b], "lr": lr / 10}], lr=lr,
                            momentum=0.9)
        return opt, make_sched(lib.optim.lr_scheduler, opt)

    opt, sched = fresh()
    lrs = []
    for epoch in range(epochs):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
        if epoch + 1 == resume_at:
            path = tmp_path / f"{lib.__name__}.ckpt"
            state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
            gg.save(state, path) if lib is gg else torch.save(state, path)
            state = gg.load(path) if lib is gg else torch.load(path)
            opt, sched = fresh()  # a new process, say: the first epoch's lr again
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
    return lrs


@pytest.mark.parametrize("make", SCHEDULERS)
@pytest.mark.parametrize("resume_at", [1, 4, 9])
def test_a_resumed_schedule_goes_on_with_the_same_learning_rates(make, resume_at, tmp_path):
    """Stopped after epoch `resume_at`, saved with gg.save, loaded into a new optimiser
    and scheduler: the learning rates of every later epoch are those of the run that
    never stopped, and of torch's run resumed the same way."""
    whole = scheduled_run(gg, make, 16)
    resumed = scheduled_run(gg, make, 16, resume_at, tmp_path)
    theirs = scheduled_run(torch, make, 16, resume_at, tmp_path)
    np.testing.assert_allclose(resumed, whole, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(resumed, theirs, rtol=1e-10, atol=1e-15)
    assert whole[-1] != whole[0]  # the schedule moves: agreeing is not a given


def test_schedulers_keep_initial_lr_in_the_param_groups_as_torch_does():
    """initial_lr is what a schedule starts from: it travels in the optimiser's state
    dict, so that a scheduler made after loading it does not restart from a decayed lr."""
    ours = gg.optim.SGD([gg.zeros(1, requires_grad=True)], lr=0.3)
    theirs = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3)
    for opt, lib in ((ours, gg), (theirs, torch)):
        sched = lib.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)
        for _ in range(3):
            opt.step()
            sched.step()
    assert ours.param_groups[0]["initial_lr"] == theirs.param_groups[0]["initial_lr"] == 0.3
    assert ours.param_groups[0]["lr"] == theirs.param_groups[0]["lr"] == 0.3 / 8
    assert ours.state_dict()["param_groups"][0]["initial_lr"] == 0.3
    again = gg.optim.lr_scheduler.StepLR(ours, 1, gamma=0.5, last_epoch=2)
    assert again.base_lrs == [0.3] and again.get_last_lr() == [0.3 / 8]


def test_resuming_at_a_last_epoch_needs_the_initial_lr_as_in_torch():
    for lib in (gg, torch):
        p = lib.zeros(1, requires_grad=True)
        with pytest.raises(KeyError, match="initial_lr"):
            lib.optim.lr_scheduler.StepLR(lib.optim.SGD([p], lr=0.1), 2, last_epoch=3)


@pytest.mark.parametrize("make", SCHEDULERS)
def test_a_scheduler_state_dict_is_plain_numbers_and_lists(make):
    """JSON takes it as it is (so gg.save stores it without pickle); loading a state
    dict of another shape is refused."""
    import json

    opt = gg.optim.SGD([gg.zeros(1, requires_grad=True)], lr=0.1)
    sched = make(gg.optim.lr_scheduler, opt)
    opt.step()
    sched.step()
    state = sched.state_dict()
    assert json.loads(json.dumps(state)) == state
    assert state["last_epoch"] == 1 and state["base_lrs"] == [0.1]
    with pytest.raises(ValueError, match="2 learning rates"):
        sched.load_state_dict({**state, "base_lrs": [0.1, 0.2]})
    with pytest.raises(ValueError, match="unexpected keys"):
        sched.load_state_dict({**state, "warmup": 3})


def test_a_group_added_after_the_scheduler_is_named_at_its_next_step():
    """The schedule knows the groups it was made with: a later one is an error that says
    what to do, not a zip() failure (nor, as in torch, a group left unscheduled)."""
    opt = gg.optim.SGD([gg.zeros(1, requires_grad=True)], lr=0.1)
    sched = gg.optim.lr_scheduler.StepLR(opt, 2)
    opt.add_param_group({"params": [gg.zeros(1, requires_grad=True)]})
    opt.step()
    with pytest.raises(ValueError, match="make the scheduler after add_param_group"):
        sched.step()
    assert sched.last_epoch == 0 and opt.param_groups[0]["lr"] == 0.1  # no step was taken


def sgd_pair(lr=0.1):
    """One SGD over a parameter in each library: (ours, torch's)."""
    return (gg.optim.SGD([gg.zeros(1, requires_grad=True)], lr=lr),
            torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr))


def warnings_of(call):
    """The messages of the UserWarnings that call() gives."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def steps_of(*stepping):
    """A call of step() on each of `stepping` in turn (optimisers, schedulers)."""
    return lambda: [each.step() for each in stepping]


def test_a_scheduler_stepped_before_the_optimiser_warns_as_in_torch():
    """The first scheduler.step() before any optimizer.step() skips the first lr of
    the schedule: torch warns, and so does gpugrad; the right order is quiet."""
    for lib, opt in zip((gg, torch), sgd_pair(), strict=True):
        sched = lib.optim.lr_scheduler.StepLR(opt, 2)
        assert any("before `optimizer.step()`" in m or "before optimizer.step()" in m
                   for m in warnings_of(sched.step)), lib.__name__
        assert not warnings_of(sched.step)  # said once
    for lib, opt in zip((gg, torch), sgd_pair(), strict=True):
        sched = lib.optim.lr_scheduler.StepLR(opt, 2)
        assert not warnings_of(steps_of(opt, sched)), lib.__name__


def test_two_schedulers_on_one_optimiser_say_that_they_do_not_chain():
    """torch's chained schedulers multiply (StepLR then Cosine: the lr torch computes
    below); gpugrad's closed forms overwrite each other, so the second to step says so
    instead of training on other learning rates than the torch code it was ported
    from. An lr set by hand between steps is named the same way."""
    ours, theirs = sgd_pair()
    scheds = [(lib.optim.lr_scheduler.StepLR(opt, 2, gamma=0.5),
               lib.optim.lr_scheduler.CosineAnnealingLR(opt, 10))
              for lib, opt in ((gg, ours), (torch, theirs))]
    said = []
    for _ in range(3):
        for opt, (first, second) in zip((ours, theirs), scheds, strict=True):
            opt.step()
            said += warnings_of(steps_of(first, second))
    assert ours.param_groups[0]["lr"] != pytest.approx(theirs.param_groups[0]["lr"])
    assert any("do not chain" in m and "group(s) [0]" in m for m in said)

    opt, _ = sgd_pair()
    sched = gg.optim.lr_scheduler.StepLR(opt, 2)
    opt.step()
    sched.step()
    opt.param_groups[0]["lr"] = 0.5
    opt.step()
    assert any("changed since this scheduler set it" in m for m in warnings_of(sched.step))
    assert opt.param_groups[0]["lr"] == sched.lr_at(0.1, 2)  # as the README says


def test_a_single_scheduler_resumed_from_a_checkpoint_is_quiet(tmp_path):
    opt, _ = sgd_pair()
    sched = gg.optim.lr_scheduler.StepLR(opt, 2)
    for _ in range(3):
        opt.step()
        sched.step()
    gg.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "c.npz")
    saved = gg.load(tmp_path / "c.npz")
    again, _ = sgd_pair()
    resumed = gg.optim.lr_scheduler.StepLR(again, 2)
    again.load_state_dict(saved["opt"])
    resumed.load_state_dict(saved["sched"])
    assert resumed.state_dict() == sched.state_dict()
    assert not warnings_of(steps_of(again, resumed))
    assert again.param_groups[0]["lr"] == sched.lr_at(0.1, 4)


@pytest.mark.parametrize("make, message", [
    (lambda o: gg.optim.lr_scheduler.StepLR(o, 0), "step_size must be >= 1"),
    (lambda o: gg.optim.lr_scheduler.StepLR(o, -2), "step_size must be >= 1"),
    (lambda o: gg.optim.lr_scheduler.StepLR(o, 2.5), "step_size must be an integer"),
    (lambda o: gg.optim.lr_scheduler.CosineAnnealingLR(o, 0), "T_max must be"),
    (lambda o: gg.optim.lr_scheduler.CosineAnnealingLR(o, -10), "T_max must be"),
])
def test_a_schedule_of_no_length_is_refused_by_name(make, message):
    """Not a ZeroDivisionError (step 0), a schedule climbing the lr (a negative one) or
    2.5 epochs silently cut to 2; the optimiser's lr is left as it was."""
    opt, _ = sgd_pair()
    with pytest.raises((ValueError, TypeError), match=message):
        make(opt)
    assert opt.param_groups[0]["lr"] == 0.1


def test_a_compiled_adam_step_refusing_a_bad_lr_advances_no_counter():
    w = gg.tensor([1.0, 2.0], requires_grad=True)
    opt = gg.optim.Adam([w], lr=0.1)

    def step(x):
        opt.zero_grad()
        (w * x).sum().backward()
        opt.step()

    compiled = gg.compile(step)
    for _ in range(3):
        compiled(gg.tensor([1.0, -1.0]))
    before = values(w).tolist()
    assert opt.state[w]["step"] == 3
    opt.param_groups[0]["lr"] = -0.1
    with pytest.raises(ValueError, match="parameter group 0 has lr=-0.1"):
        compiled(gg.tensor([1.0, -1.0]))
    assert values(w).tolist() == before and opt.state[w]["step"] == 3  # as if not called


def test_a_compiled_step_checks_the_lr_of_a_group_without_gradients_too():
    w, frozen = gg.tensor([1.0, 2.0], requires_grad=True), gg.tensor([3.0], requires_grad=True)
    opt = gg.optim.SGD([{"params": [w]}, {"params": [frozen]}], lr=0.1)

    def step(x):
        opt.zero_grad()
        (w * x).sum().backward()  # frozen gets no gradient: its group is skipped
        opt.step()

    compiled = gg.compile(step)
    compiled(gg.ones(2))
    compiled(gg.ones(2))
    opt.param_groups[1]["lr"] = float("nan")
    for run in (step, compiled):  # eager refuses it; so does the plan's run
        with pytest.raises(ValueError, match="parameter group 1 has lr=nan"):
            run(gg.ones(2))


def test_amsgrad_switched_on_and_a_state_saved_without_the_switches_go_on_as_torch():
    """AMSGrad switched on at step 4 starts its maximum from zeros then, as a fresh
    torch.optim.Adam(amsgrad=True) loaded with the state so far does; a state dict
    saved without the amsgrad and maximize entries loads with both off."""
    problem = Problem(seed=3)
    gps, tps = problem.gg_params(), problem.torch_params()
    gopt, topt = gg.optim.Adam(gps, lr=0.02), torch.optim.Adam(tps, lr=0.02)
    for step, (x, y) in enumerate(problem.batches, start=1):
        if step == 4:
            saved = gopt.state_dict()
            for group in saved["param_groups"]:
                del group["amsgrad"], group["maximize"]  # as an older state holds it
            gopt = gg.optim.Adam(gps, lr=0.02, maximize=True)
            gopt.load_state_dict(saved)
            assert gopt.param_groups[0]["maximize"] is False
            gopt.param_groups[0]["amsgrad"] = True
            topt.param_groups[0]["amsgrad"] = True
            for p in tps:  # torch makes the maximum only in a fresh state: give it zeros
                topt.state[p]["max_exp_avg_sq"] = torch.zeros_like(p)
        step_both(gps, gopt, tps, topt, x, y, step)
    assert sorted(gopt.state[gps[0]]) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]


@pytest.mark.parametrize("make", [lambda ps: gg.optim.Adam(ps, amsgrad="False"),
                                  lambda ps: gg.optim.SGD(ps, lr=0.1, maximize=1)])
def test_a_switch_must_be_true_or_false(make):
    with pytest.raises(TypeError, match="must be True or False"):
        make(Problem().gg_params())
