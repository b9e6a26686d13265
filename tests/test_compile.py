"""gg.compile: a function traced once and run from a flat plan gives what running it
eagerly gives — bit for bit, since the plan calls the same kernels — step after step,
with its side effects (gradients, parameter updates, optimiser state) included."""

import pathlib
import re
import shutil
import subprocess
import warnings

import numpy as np
import pytest
from conftest import compile_quietly, device_params, training_step
from hypothesis import given, settings
from hypothesis import strategies as st

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F
from gpugrad.compiler import fusion, passes
from gpugrad.compiler.compiled import trace_and_compile
from gpugrad.compiler.memory import fresh, plan_memory
from gpugrad.optim import fused_update

RNG = np.random.default_rng(7)


def batches(n, batch=6, features=5, classes=3):
    rng = np.random.default_rng(n)
    return [(gg.tensor(rng.standard_normal((batch, features)).astype("float32")),
             gg.tensor(rng.integers(0, classes, batch))) for _ in range(n)]


def model_and_optimiser(make_opt, seed=0, dropout=0.0):
    gg.manual_seed(seed)
    layers = [nn.Linear(5, 8), nn.Tanh()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    model = nn.Sequential(*layers, nn.Linear(8, 3))
    return model, make_opt(model.parameters())


def assert_same_parameters(model, other):
    """Every parameter of model equal, bit for bit, to other's in the same place."""
    for p, q in zip(model.parameters(), other.parameters(), strict=True):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def eager_and_compiled(name, cuda_graph=False):
    """Two alike models and optimisers: (model, optimiser, step) trained eagerly, and
    the same through gg.compile (with cuda_graph: its graph-ready plan, quietly)."""
    eager_model, eager_opt = model_and_optimiser(OPTIMISERS[name])
    model, opt = model_and_optimiser(OPTIMISERS[name])
    step = training_step(model, opt)
    return ((eager_model, eager_opt, training_step(eager_model, eager_opt)),
            (model, opt, compile_quietly(step) if cuda_graph else gg.compile(step)))


OPTIMISERS = {
    "sgd": lambda ps: gg.optim.SGD(ps, lr=0.1),
    "sgd momentum nesterov": lambda ps: gg.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True,
                                                     weight_decay=1e-3),
    "sgd dampening": lambda ps: gg.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.3),
    "adam": lambda ps: gg.optim.Adam(ps, lr=1e-2, weight_decay=1e-3),
    "adamw": lambda ps: gg.optim.AdamW(ps, lr=1e-2),
    "adamw amsgrad maximize": lambda ps: gg.optim.AdamW(ps, lr=1e-2, amsgrad=True,
                                                        maximize=True),
}


@pytest.mark.parametrize("name", OPTIMISERS)
def test_views_of_the_parameters_follow_a_compiled_step_as_an_eager_one(name):
    """An optimiser's step writes into each parameter's array, eagerly and in every run of
    a plan: a detach() taken before (or the source of nn.Parameter(w)) follows it."""
    (eager_model, _, eager), (model, _, compiled) = eager_and_compiled(name)
    views = [p.detach() for p in model.parameters()]
    eager_views = [p.detach() for p in eager_model.parameters()]
    for x, y in batches(3):
        compiled(x, y), eager(x, y)
        for view, eager_view, p in zip(views, eager_views, model.parameters(), strict=True):
            np.testing.assert_array_equal(view.numpy(), p.numpy())
            np.testing.assert_array_equal(view.numpy(), eager_view.numpy())


@pytest.mark.parametrize("name", OPTIMISERS)
def test_a_compiled_training_step_follows_eager_training_bit_for_bit(name):
    (eager_model, eager_opt, eager), (model, opt, compiled) = eager_and_compiled(name)
    for x, y in batches(6):
        assert compiled(x, y).item() == eager(x, y).item()
    for (key, p), q in zip(model.named_parameters(), eager_model.parameters(), strict=True):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=key)
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy(), err_msg=key)
    assert len(compiled.plans) == 1  # traced once, run five times from the plan


@pytest.mark.parametrize("device", device_params())
def test_compiled_training_equals_eager_training_on_every_device(device):
    def setup():
        gg.manual_seed(3)
        model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).to(device)
        return model, gg.optim.AdamW(model.parameters(), lr=1e-2)

    (eager_model, eager_opt), (model, opt) = setup(), setup()
    eager, compiled = training_step(eager_model, eager_opt), gg.compile(training_step(model,
                                                                                       opt))
    for x, y in batches(4):
        x, y = x.to(device), y.to(device)
        np.testing.assert_allclose(compiled(x, y).item(), eager(x, y).item(), rtol=1e-6)
    for p, q in zip(model.parameters(), eager_model.parameters(), strict=True):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-5, atol=1e-7)
    assert len(compiled.plans) == 1
    names = [n.name for n in compiled.plan.program.op_nodes()]
    if device == "cuda":  # kernels/optim.cu, kernels/softmax_xent.cu, kernels/bias_act.cu
        assert names.count("adam_update") == 4 * 3 and "cross_entropy_with_grad" in names
        assert names.count("bias_act") == 1


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd momentum nesterov", "sgd dampening"])
def test_an_optimiser_update_as_one_op_follows_eager_training(name, monkeypatch):
    # On CuPy a compiled step updates each parameter with one kernel of kernels/optim.cu
    # (gpugrad.optim.fused_update); its NumPy kernel, run here, does the same in place.
    monkeypatch.setattr(fused_update, "FUSED_UPDATE_BACKENDS", ("cupy", "numpy"))
    (eager_model, eager_opt, eager), (model, opt, compiled) = eager_and_compiled(name)
    for x, y in batches(5):
        assert compiled(x, y).item() == eager(x, y).item()
    names = [n.name for n in compiled.plan.program.op_nodes()]
    one_op = "adam_update" if "adam" in name else "sgd_momentum_update"
    assert names.count(one_op) == 4 * (3 if "adam" in name else 2)  # 4 parameters' outputs
    assert_same_parameters(model, eager_model)
    for state, eager_state in zip(opt.state.values(), eager_opt.state.values(), strict=True):
        for key, value in eager_state.items():
            np.testing.assert_array_equal(np.asarray(state[key]), np.asarray(value), key)


@pytest.mark.parametrize("calls_before", [0, 1])  # the tracing call, then a plan's run
def test_a_compiled_update_counts_as_an_in_place_change_for_older_graphs(calls_before):
    model, opt = model_and_optimiser(OPTIMISERS["sgd"])
    compiled = gg.compile(training_step(model, opt))
    for x, y in batches(calls_before):
        compiled(x, y)
    x = gg.ones((2, 5), requires_grad=True)
    stale = model(x).sum()  # recorded before the next compiled step changes the weights
    compiled(*batches(1)[0])
    with pytest.raises(gg.GraphError, match="changed in place"):
        stale.backward()


def test_gradients_accumulate_across_calls_that_do_not_zero_them_as_in_eager_mode():
    def make():
        w = gg.tensor([1.0, 2.0], requires_grad=True)

        def fn(x):
            (w * x).sum().backward()  # no zero_grad: .grad adds up from call to call
            return w.grad

        return fn

    eager, compiled = make(), gg.compile(make())
    x = gg.tensor([3.0, 4.0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            np.testing.assert_array_equal(compiled(x).numpy(), eager(x).numpy())
    assert "was None when traced" in str(caught[0].message)  # one trace anew, said why


@pytest.mark.filterwarnings("ignore:gg.compile.*(tracing anew|CUDA graphs need)")
@pytest.mark.parametrize("cuda_graph", [False, True], ids=["plan", "graph-ready plan"])
def test_a_grad_read_before_backward_is_each_runs_gradient_before_it(cuda_graph):
    def make():
        w = gg.tensor(np.ones((3, 2), "float32"), requires_grad=True)

        def fn(x):
            before = w.grad
            (x @ w).tanh().sum().backward()
            return before if before is not None else x * 0.0

        return w, fn

    (w, fn), (eager_w, eager) = make(), make()
    compiled = gg.compile(fn, cuda_graph=cuda_graph)
    kept = []
    for _ in range(5):
        x = gg.tensor(RNG.standard_normal((4, 3)).astype("float32"))
        got, want = compiled(x), eager(x)
        np.testing.assert_array_equal(got.numpy(), want.numpy())
        kept.append((got, want.numpy()))
    for got, value in kept:  # results keep their values after later runs
        np.testing.assert_array_equal(got.numpy(), value)
    np.testing.assert_array_equal(w.grad.numpy(), eager_w.grad.numpy())


def test_zeroing_through_the_module_inside_the_function_keeps_one_plan():
    model, opt = model_and_optimiser(OPTIMISERS["sgd"])

    def step(x, y):
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    compiled = gg.compile(step, retrace=False)  # a second trace would raise
    for x, y in batches(3):
        compiled(x, y)


def test_an_in_place_update_of_a_detached_value_leaves_the_value_alone():
    def fn(x):
        y = x * 2.0
        d = y.detach()
        d *= 0.0  # eager: d gets new values, y keeps its own
        return y + 1.0, d

    compiled = gg.compile(fn)
    x = gg.tensor([1.0, 2.0])
    for _ in range(2):
        for a, b in zip(compiled(x), fn(x), strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_fusion_does_not_move_a_read_of_a_parameter_past_its_in_place_update(monkeypatch):
    monkeypatch.setattr(fused_update, "FUSED_UPDATE_BACKENDS", ("cupy", "numpy"))

    def make():
        p = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
        opt = gg.optim.Adam([p], lr=0.5)

        def step(x):
            opt.zero_grad()
            before = p * 2.0  # read before the update, used after it
            loss = (x * p).sum()
            loss.backward()
            opt.step()
            return before.exp()

        return step

    eager, compiled = make(), gg.compile(make())
    x = gg.tensor([1.0, -1.0, 0.5])
    for _ in range(3):
        np.testing.assert_array_equal(compiled(x).numpy(), eager(x).numpy())


@pytest.mark.parametrize("cuda_graph", [False, True], ids=["plan", "graph-ready plan"])
def test_the_plan_reads_the_learning_rate_a_scheduler_sets_on_every_run(cuda_graph):
    (eager_model, eager_opt, eager), (model, opt, compiled) = \
        eager_and_compiled("adam", cuda_graph)
    schedules = [gg.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.1)
                 for o in (eager_opt, opt)]
    for x, y in batches(6):
        assert compiled(x, y).item() == eager(x, y).item()
        for s in schedules:
            s.step()
    assert_same_parameters(model, eager_model)
    if cuda_graph:  # the scalars reach the body in one vector: one group, one dtype
        assert compiled.compiled.plan.run.slots.count("scalars") == 1


@pytest.mark.filterwarnings("ignore:gg.compile.*CUDA graphs need")
@pytest.mark.parametrize("cuda_graph", [False, True], ids=["plan", "graph-ready plan"])
def test_host_work_and_gradient_edits_inside_the_function_are_redone_on_every_run(
        cuda_graph):
    # A scheduler stepped inside the step, gradients clipped by their norm (computed
    # anew each run: the eager path reads it on the host) and scaled in place.
    def make():
        model, opt = model_and_optimiser(lambda ps: gg.optim.SGD(ps, lr=0.5, momentum=0.5))
        schedule = gg.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            gg.nn.clip_grad_norm_(model.parameters(), 0.05)
            with gg.no_grad():
                for p in model.parameters():
                    p.grad *= 0.9
            opt.step()
            schedule.step()
            return loss

        return model, opt, step

    (eager_model, eager_opt, eager), (model, opt, step) = make(), make()
    compiled = gg.compile(step, cuda_graph=cuda_graph)
    for x, y in batches(6):
        assert compiled(x, y).item() == eager(x, y).item()
    assert opt.param_groups[0]["lr"] == eager_opt.param_groups[0]["lr"] == 0.5 * 0.5 ** 3
    for p, q in zip(model.parameters(), eager_model.parameters(), strict=True):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
    assert len(compiled.plans) == 1


def test_optimiser_state_written_by_the_plan_is_the_eager_state():
    eager_model, eager_opt = model_and_optimiser(OPTIMISERS["adam"])
    model, opt = model_and_optimiser(OPTIMISERS["adam"])
    eager, compiled = training_step(eager_model, eager_opt), gg.compile(training_step(model,
                                                                                       opt))
    for x, y in batches(3):
        eager(x, y)
        compiled(x, y)
    mine, theirs = opt.state_dict()["state"], eager_opt.state_dict()["state"]
    for i in theirs:
        assert mine[i]["step"] == theirs[i]["step"] == 3
        np.testing.assert_array_equal(mine[i]["exp_avg_sq"].numpy(),
                                      theirs[i]["exp_avg_sq"].numpy())


@pytest.mark.parametrize("when", ["before any step", "after two steps"])
def test_loading_an_optimiser_state_traces_anew_and_goes_on_as_eager(when):
    (eager_model, eager_opt, eager), (model, opt, compiled) = eager_and_compiled("adam")
    data = batches(6)
    saved = [o.state_dict() for o in (eager_opt, opt)]
    for x, y in data[:2]:
        eager(x, y), compiled(x, y)
    if when == "after two steps":
        saved = [o.state_dict() for o in (eager_opt, opt)]
    compiled(*data[2]), eager(*data[2])
    eager_opt.load_state_dict(saved[0])
    opt.load_state_dict(saved[1])
    with pytest.warns(gg.CompileWarning, match="optimiser's state was replaced"):
        assert compiled(*data[3]).item() == eager(*data[3]).item()
    for x, y in data[4:]:
        assert compiled(x, y).item() == eager(x, y).item()


@pytest.mark.filterwarnings("ignore:gg.compile.*CUDA graphs need")
@pytest.mark.parametrize("cuda_graph", [False, True], ids=["plan", "graph-ready plan"])
def test_dropout_draws_a_new_mask_on_every_run_like_eager_training(cuda_graph):
    eager_model, eager_opt = model_and_optimiser(OPTIMISERS["sgd"], dropout=0.5)
    model, opt = model_and_optimiser(OPTIMISERS["sgd"], dropout=0.5)
    data = batches(4)
    gg.manual_seed(11)
    eager_losses = [training_step(eager_model, eager_opt)(x, y).item() for x, y in data]
    gg.manual_seed(11)
    step = gg.compile(training_step(model, opt), cuda_graph=cuda_graph)
    losses = [step(x, y).item() for x, y in data]
    assert losses == eager_losses
    assert len(set(losses)) == len(losses)
    if cuda_graph:  # the mask is an input of the graph, copied in like x and y
        assert step.plan.run.slots.count("copy") == 3


def test_switching_between_train_and_eval_traces_once_for_each_mode():
    gg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    forward = gg.compile(lambda x: model(x))
    x = gg.ones((3, 4))
    with gg.no_grad():
        forward(x)
        model.eval()
        with pytest.warns(gg.CompileWarning, match="Dropout switched between train.. and "
                          "eval"):  # the module whose forward reads the mode
            np.testing.assert_array_equal(forward(x).numpy(), model(x).numpy())  # no dropout
        np.testing.assert_array_equal(forward(x).numpy(), model(x).numpy())
        for _ in range(2):  # back and forth: each mode's plan was kept
            model.train()
            dropped = forward(x).numpy()
            assert (dropped == 0).any()  # half the elements, drawn anew: some are zero
            model.eval()
            np.testing.assert_array_equal(forward(x).numpy(), model(x).numpy())
    assert len(forward.log) == 2 and len(forward.plans) == 1  # one kind, two variants


def test_a_modules_mode_is_guarded_where_it_is_read_through_forward_too():
    dropout = nn.Dropout(0.5)
    forward = gg.compile(lambda x: dropout.forward(x))  # not through dropout(x)
    x = gg.ones((4, 8))
    assert (forward(x).numpy() == 0).any()
    dropout.eval()
    with pytest.warns(gg.CompileWarning, match="Dropout switched between train"):
        np.testing.assert_array_equal(forward(x).numpy(), x.numpy())


def test_a_model_whose_forward_never_reads_its_mode_keeps_one_plan_in_both():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    forward = gg.compile(lambda x: model(x).detach())
    x = gg.ones((3, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no new trace: the plan is the same in eval()
        for mode in (True, False, True):
            model.train(mode)
            np.testing.assert_array_equal(forward(x).numpy(), model(x).numpy())
    assert forward.log == ["first call"]


def test_gradients_returned_by_gg_grad_inside_the_function():
    w = gg.tensor(RNG.standard_normal((4, 3)), dtype="float64", requires_grad=True)

    def loss_and_grad(x):
        loss = ((x @ w).tanh() ** 2).sum()
        (g,) = gg.grad(loss, [w])
        return loss, g

    compiled = gg.compile(loss_and_grad)
    for _ in range(3):
        x = gg.tensor(RNG.standard_normal((2, 4)))
        (loss, g), (ref_loss, ref_g) = compiled(x), loss_and_grad(x)
        assert loss.item() == ref_loss.item()
        np.testing.assert_array_equal(g.numpy(), ref_g.numpy())
        assert g.requires_grad is False  # results come without a graph


def test_new_argument_shapes_trace_anew_and_say_why():
    compiled = gg.compile(lambda x: (x * 2.0).sum())
    compiled(gg.ones((3, 2)))
    with pytest.warns(gg.CompileWarning, match=r"argument 0: \(3, 2\) float32 on cpu -> "
                                                 r"\(4, 2\) float32 on cpu"):
        assert compiled(gg.ones((4, 2))).item() == 16.0
    assert compiled.log == ["first call", "argument 0: (3, 2) float32 on cpu -> (4, 2) "
                            "float32 on cpu"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # both shapes have plans now: no new trace
        assert compiled(gg.ones((3, 2))).item() == 12.0


def test_keyword_arguments_are_bound_as_the_signature_says():
    def fn(x, scale=1.0, *, power=1):
        return (x * scale) ** power

    compiled = gg.compile(fn)
    x = gg.tensor([1.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gg.CompileWarning)
        for args, kwargs in [((x,), {"scale": 2.0}), ((x, 3.0), {"power": 2}),
                             ((), {"x": x, "scale": 2.0, "power": 3}),
                             ((x,), {"scale": 2.0})]:
            np.testing.assert_array_equal(compiled(*args, **kwargs).numpy(),
                                          fn(*args, **kwargs).numpy())
    assert len(compiled.plans) == 3  # scale by position; power a constant of each plan
    with pytest.raises(gg.CompileError, match="keyword-only argument power is a Tensor"):
        compiled(x, power=gg.tensor(2.0))

    def skipping(x, a=None, b=None):  # a tensor by keyword, past a default
        return x * b

    compiled = gg.compile(skipping)
    for b in ([2.0, 3.0], [4.0, 5.0]):  # the plan reads each call's tensor
        np.testing.assert_array_equal(compiled(x, b=gg.tensor(b)).numpy(),
                                      skipping(x, b=gg.tensor(b)).numpy())


def test_a_default_left_out_or_given_the_same_value_shares_one_plan():
    def fn(x, scale=1.0, *, power=1):
        return (x * scale) ** power

    compiled = gg.compile(fn)
    x = gg.tensor([1.0, 2.0])
    compiled(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same binding every time: no new trace
        for args, kwargs in [((x,), {"scale": 1.0}), ((x, 1.0), {}), ((x,), {"power": 1}),
                             ((x,), {})]:
            np.testing.assert_array_equal(compiled(*args, **kwargs).numpy(), fn(x).numpy())


def test_a_default_that_cannot_be_hashed_is_the_functions_own_constant():
    def fn(x, options={"scale": 2.0}, *, extra={"shift": 1.0}):  # noqa: B006
        return x * options["scale"] + extra["shift"]

    compiled = gg.compile(fn)
    x = gg.tensor([1.0, 2.0])
    for _ in range(3):  # the same dict objects on every call: one plan
        np.testing.assert_array_equal(compiled(x).numpy(), fn(x).numpy())
    assert compiled.log == ["first call"]
    # Given by the caller, such a value has no value to make a plan for: refused
    with pytest.raises(gg.CompileError, match="neither a Tensor nor hashable"):
        compiled(x, {"scale": 3.0})
    with pytest.raises(gg.CompileError, match="keyword-only arguments must be hashable"):
        compiled(x, extra={"shift": 0.0})
    assert len(compiled.plans) == 1


def test_the_signature_is_read_when_tracing_not_on_every_call(monkeypatch):
    import inspect

    from gpugrad.compiler import compiled as compiled_module

    reads, read = [], inspect.signature
    monkeypatch.setattr(compiled_module.inspect, "signature",
                        lambda fn: reads.append(fn) or read(fn))
    step = gg.compile(lambda x: x * 2.0)
    step(gg.ones(2))  # traced: how to bind a call, and what its graphs call x
    traced = len(reads)
    assert traced >= 1
    for _ in range(4):
        step(gg.ones(2))
    assert len(reads) == traced  # a plan's call costs microseconds: no per-call introspection


def test_a_backward_into_an_argument_made_by_ops_outside_is_refused_before_any_update():
    encoder, head = nn.Linear(3, 3), nn.Linear(3, 1)
    opt = gg.optim.SGD(head.parameters(), lr=0.1)

    def step(h):
        opt.zero_grad()
        loss = (head(h) ** 2).mean()
        loss.backward()  # eager: into head, and on through h into the encoder
        opt.step()
        return loss

    h = encoder(gg.ones((2, 3)))  # a graph: the compiled backward would stop at h
    before = head.weight.numpy()
    with pytest.raises(gg.CompileError, match=r"argument 0 \(h, made by linear at "
                                              r"test_compile.py:\d+\) carries a graph"):
        gg.compile(step)(h)
    np.testing.assert_array_equal(head.weight.numpy(), before)  # no step taken
    assert encoder.weight.grad is None and head.weight.grad is None
    compiled = gg.compile(step)
    for _ in range(2):  # detached, it is data: the step runs (and its plan)
        assert np.isfinite(compiled(h.detach()).item())
    assert not np.array_equal(head.weight.numpy(), before)


def test_gg_grad_with_respect_to_an_argument_made_by_ops_outside_is_its_own_business():
    w = gg.randn(3, requires_grad=True)
    h = w * 2.0  # a graph outside, which a gradient with respect to h does not enter

    def gradient(h):
        return gg.grad((h * h).sum(), [h])[0]

    np.testing.assert_array_equal(gg.compile(gradient)(h).numpy(), gradient(h).numpy())


def test_an_argument_updated_in_place_is_updated_for_the_caller_on_every_call():
    def step(x, y):
        out = (x * y).sum()  # (a compiled step updates a tensor as its last use)
        with gg.no_grad():
            x -= 1.0  # in place: each run hands x its new values
            y += y.sum()  # (a value of another shape first, broadcast)
        return out

    compiled = gg.compile(step)
    args, eager_args = (gg.zeros(3), gg.ones(3)), (gg.zeros(3), gg.ones(3))
    for _ in range(3):
        assert compiled(*args).item() == step(*eager_args).item()
        for a, b in zip(args, eager_args, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def accumulate_into(x, total):
    """Adds to its arguments in place, as a running total does (and returns a value
    read before the update: a compiled step updates a tensor as its last use)."""
    before = total * 1
    total += (x * x).sum()
    x += 1.0
    return before


def a_broadcast_argument():
    return gg.broadcast_to(gg.tensor([1.0, 2.0]), (2, 2)), gg.zeros(())


def a_view_argument():
    base = gg.zeros((2, 2))
    return base[0], gg.tensor(0.0), base  # (the base itself is not passed)


@pytest.mark.parametrize("make", [a_broadcast_argument, a_view_argument])
def test_an_argument_updated_in_place_gets_a_new_array_as_in_eager_mode(make):
    """An eager in-place update gives the tensor a new array: a read-only broadcast, a
    0-d running total and a view (whose base keeps its values) behave so in every run of
    a plan too."""
    compiled = gg.compile(accumulate_into)
    mine, theirs = make(), make()
    for _ in range(3):
        np.testing.assert_array_equal(compiled(*mine[:2]).numpy(),
                                      accumulate_into(*theirs[:2]).numpy())
        for a, b in zip(mine, theirs, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert compiled.log == ["first call"]
    returned = compiled.code.splitlines()[-1].strip()  # the generated code says so
    assert returned.startswith("return (") and "new arrays of argument(s)" in returned
    assert "a0" in returned.split("#")[1] and "a1" in returned.split("#")[1]


def test_two_arguments_sharing_one_array_each_get_their_own_values():
    compiled = gg.compile(accumulate_into)
    mine, theirs = gg.ones(2), gg.ones(2)
    for _ in range(3):  # x a detached view of the total: the same array at each call
        np.testing.assert_array_equal(compiled(mine.detach(), mine).numpy(),
                                      accumulate_into(theirs.detach(), theirs).numpy())
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_the_same_tensor_passed_twice_is_one_tensor_in_the_plan():
    def scaled_sum(x, y):
        out = (x * y).sum()
        x += 1.0
        return out

    compiled = gg.compile(scaled_sum)
    a, b = gg.ones(2), gg.ones(2)
    ea, eb = gg.ones(2), gg.ones(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gg.CompileWarning)
        for mine, theirs in [((a, a), (ea, ea)), ((a, b), (ea, eb)), ((a, a), (ea, ea))]:
            assert compiled(*mine).item() == scaled_sum(*theirs).item()
            np.testing.assert_array_equal(a.numpy(), ea.numpy())
    assert compiled.log == ["first call", "argument 1: the tensor passed as argument 0 -> "
                                          "(2,) float32 on cpu"]  # then both plans kept

    def update_both(x, y):
        x += 1.0
        y *= 2.0  # eagerly y is x, just updated: that is a read after the update
    with pytest.raises(gg.CompileError, match="reads a tensor after updating it in place"):
        gg.compile(update_both)(a, a)


def test_a_tensor_read_both_as_an_argument_and_directly_is_refused_with_the_line():
    w = gg.randn(3, requires_grad=True)

    def step(x, also_w):
        return ((x * w).sum() * also_w.sum()).backward()

    with pytest.raises(gg.CompileError, match=r"also given as an argument.*test_compile.py"):
        gg.compile(step)(gg.ones(3), w)


@pytest.mark.filterwarnings("ignore:gg.compile.*(tracing anew|CUDA graphs need)")
@pytest.mark.parametrize("cuda_graph", [False, True], ids=["plan", "graph-ready plan"])
def test_gradients_made_in_one_compiled_function_are_read_by_another(cuda_graph):
    # Accumulation over micro-batches: backward in one function, the update in another;
    # the second reads each call's .grad, not the one it saw when traced.
    def make():
        model, opt = model_and_optimiser(OPTIMISERS["adam"])

        def accumulate(x, y):
            F.cross_entropy(model(x), y).backward()

        def update():
            norm = sum((p.grad * p.grad).sum() for p in model.parameters())
            opt.step()
            opt.zero_grad()
            return norm

        return model, accumulate, update

    (model, accumulate, update), (eager_model, eager_accumulate, eager_update) = \
        make(), make()
    accumulate = gg.compile(accumulate, cuda_graph=cuda_graph)
    update = gg.compile(update, cuda_graph=cuda_graph)
    data = batches(8)
    for i in range(0, 8, 2):
        for x, y in data[i:i + 2]:
            accumulate(x, y), eager_accumulate(x, y)
        assert update().item() == eager_update().item()  # the gradients' norm
        assert_same_parameters(model, eager_model)


def test_a_parameter_frozen_or_unfrozen_between_calls_traces_anew():
    (eager_model, _, eager), (model, _, compiled) = eager_and_compiled("sgd")
    data = batches(4)
    for x, y in data[:2]:
        eager(x, y), compiled(x, y)
    for m in (model, eager_model):
        m[0].weight.requires_grad = False
    with pytest.warns(gg.CompileWarning, match="requires_grad"):
        assert compiled(*data[2]).item() == eager(*data[2]).item()
    assert compiled(*data[3]).item() == eager(*data[3]).item()
    np.testing.assert_array_equal(model[0].weight.numpy(), eager_model[0].weight.numpy())
    assert model[0].weight.grad is None


def test_a_gradient_penalty_through_create_graph_compiles():
    def make():
        gg.manual_seed(4)
        w = gg.randn(3, 2, requires_grad=True)

        def step(x):
            w.grad = None
            (x @ w).tanh().sum().backward(create_graph=True)
            penalty = (w.grad ** 2).sum()
            w.grad = None
            penalty.backward()
            return penalty, w.grad

        return step

    compiled, eager = gg.compile(make()), make()
    for _ in range(3):
        x = gg.randn(4, 3)
        for a, b in zip(compiled(x), eager(x), strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_composite_ops_run_their_ops_inside_a_compiled_function():
    @gg.composite_op("test_compile::block", replace=True)
    def block(x, w):
        return (x @ w).tanh()

    w = gg.randn(3, 3)
    compiled = gg.compile(lambda x: block(x, w).sum())
    for _ in range(3):
        x = gg.randn(2, 3)
        assert compiled(x).item() == block(x, w).sum().item()


def test_a_defvjp_op_differentiated_inside_a_compiled_function_is_refused():
    @gg.custom_op("test_compile::softplus", replace=True)
    def softplus(x):
        return gg.array_namespace(x).logaddexp(0.0, x)

    softplus.defvjp(lambda x: (softplus(x), (x,)), lambda res, g: (g * res[0].sigmoid(),))
    w = gg.randn(3, requires_grad=True)
    forward = gg.compile(lambda x: softplus(x).sum())  # without a gradient: fine
    x = gg.randn(3)
    assert forward(x).item() == softplus(x).sum().item()
    with pytest.raises(gg.CompileError, match="defvjp.*register_vjp"):
        gg.compile(lambda x: softplus(x * w).sum().backward())(x)


@pytest.mark.parametrize("outputs", [1, 2])
def test_a_custom_ops_output_is_checked_in_every_run_of_a_plan_as_eagerly(outputs):
    """A kernel whose output shape depends on its input's values (or breaks its shape
    function's promise) after the trace: eager mode refuses it, naming the op and the
    line, and so must each run of a plan made for the traced shapes (not go on with a
    wrong shape, or with its dtype)."""
    def first_or_all(x):
        return x[:1] if float(x[0]) > 5 else x * 1

    @gg.custom_op(f"test_compile::first_or_all_{outputs}", outputs=outputs, replace=True)
    def op(x):
        return first_or_all(x) if outputs == 1 else (x * 1, first_or_all(x))

    @op.register_shape
    def _(x):
        return x if outputs == 1 else (x, x)

    def fn(x):
        out = op(x)
        return (out if outputs == 1 else out[0] + out[1]).sum()

    compiled = gg.compile(fn)
    assert compiled(gg.ones(2)).item() == fn(gg.ones(2)).item() == 2.0 * outputs
    with pytest.raises(gg.ShapeError, match=f"test_compile::first_or_all_{outputs}"):
        fn(gg.full((2,), 10.0))
    where = "" if outputs == 1 else r", as output 1,"
    with pytest.raises(gg.ShapeError, match=rf"first_or_all_{outputs}: the kernel returned"
                                            rf"{where} \(1,\) float32 where its traced "
                                            r"call returned \(2,\) float32.*in a run of "
                                            r"gg.compile\(.*fn\).*test_compile.py"):
        compiled(gg.full((2,), 10.0))

    @gg.custom_op("test_compile::sometimes_f64", replace=True)
    def sometimes_f64(x):
        return x.astype("float64") if float(x[0]) > 5 else x * 1

    doubled = gg.compile(lambda x: sometimes_f64(x) * 2)
    assert doubled(gg.ones(2)).dtype == np.float32
    with pytest.raises(gg.DTypeError, match=r"sometimes_f64: the kernel returned \(2,\) "
                                            r"float64 where its traced call returned "
                                            r"\(2,\) float32"):
        doubled(gg.full((2,), 10.0))


def test_a_backward_into_an_argument_adds_to_its_grad_and_says_how_to_avoid_retraces():
    w = gg.tensor([1.0, 2.0])

    def fn(x):
        (x * w).sum().backward()

    compiled = gg.compile(fn)
    x = gg.tensor([1.0, 1.0], requires_grad=True)
    x.grad = gg.tensor([100.0, 100.0])
    compiled(x)
    np.testing.assert_array_equal(x.grad.numpy(), [101.0, 102.0])  # added, as eager does
    with pytest.warns(gg.CompileWarning, match=r"into an argument.*gg.grad\(loss, \[x\]\)"):
        for _ in range(3):
            compiled(gg.tensor([1.0, 1.0], requires_grad=True))
    assert [len(v) for v in compiled.plans.values()] == [1]  # no run could use the others


@pytest.mark.parametrize("cuda_graph", [False, True], ids=["plan", "graph-ready plan"])
def test_a_constant_gradient_accumulated_into_by_later_runs_stays_the_plans_constant(
        cuda_graph):
    """x.grad of (x * 2).sum() is a constant of the plan made while it was None: a copy
    of it each run, since the plan made for a .grad that exists (a graph-ready one writes
    the sum into that .grad's array) must not change it for later runs after a reset."""
    def calls(compiled):
        x = gg.tensor([1.0, 2.0], requires_grad=True)

        def backward():
            (x * 2).sum().backward()
            return x.grad * 1

        step = compile_quietly(backward, cuda_graph) if compiled else backward
        seen = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gg.CompileWarning)
            for _ in range(3):
                x.grad = None
                seen += [step().numpy().tolist() for _ in range(3)]
        return seen

    assert calls(compiled=True) == calls(compiled=False)


@pytest.mark.parametrize("cuda_graph", [False, True], ids=["plan", "graph-ready plan"])
def test_a_gradient_one_plan_set_and_another_edits_in_place_changes_no_plans_constant(
        cuda_graph):
    """backward's plan sets x.grad to a constant of its own (2 everywhere); the other
    plan halves the .grad each call finds, in place: that tensor takes the new values,
    as in eager mode, and no run writes into the first plan's constant (which a later
    backward, accumulating into the .grad's array, would otherwise change too)."""
    def calls(compiled):
        x = gg.tensor([1.0, 2.0], requires_grad=True)

        def backward():
            (x * 2).sum().backward()

        def halve():
            with gg.no_grad():
                x.grad *= 0.5

        if compiled:
            backward, halve = (compile_quietly(backward, cuda_graph),
                               compile_quietly(halve, cuda_graph))
        seen = []
        warnings.simplefilter("ignore", gg.CompileWarning)  # (a plan with .grad, one without)
        for _ in range(3):
            x.grad = None
            backward()
            held = x.grad
            halve()
            seen.append((x.grad is held, x.grad.numpy().tolist()))
            backward()  # accumulated into the halved gradient
            seen.append(x.grad.numpy().tolist())
        return seen

    with warnings.catch_warnings():
        assert calls(compiled=True) == calls(compiled=False)


@pytest.mark.parametrize("reset", ["None", "zeros"])
def test_a_grad_set_inside_the_function_is_the_runs_own(reset):
    def make():
        w = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)

        def step(x):
            w.grad = None if reset == "None" else gg.zeros_like(w)  # not zero_grad()
            (w * x).sum().backward()
            return w.grad

        return step

    compiled, eager = gg.compile(make()), make()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one plan: no new trace at any call
        for k in (1.0, 2.0, 3.0):
            x = gg.full((3,), k)
            np.testing.assert_array_equal(compiled(x).numpy(), eager(x).numpy())


def test_under_detect_anomaly_or_profile_the_function_runs_eagerly():
    compiled = gg.compile(lambda x: (x.log() * 2.0).sum())
    compiled(gg.ones(2))
    compiled(gg.ones(2))  # a plan now
    with gg.detect_anomaly(), pytest.raises(gg.AnomalyError, match="log"):
        compiled(gg.tensor([1.0, -1.0]))
    with gg.profile() as prof:
        compiled(gg.ones(2))
    assert "log" in prof.table()


def test_a_new_default_device_traces_anew():
    from gpugrad import backends

    pytest.importorskip("array_api_strict")
    compiled = gg.compile(lambda s: gg.ones(3) * s)
    before = gg.tensor(2.0).device
    assert compiled(gg.tensor(2.0)).device == before
    saved = backends._default, backends._default_reason
    try:
        gg.set_default_device("array_api_strict")
        with pytest.warns(gg.CompileWarning, match="default device .* -> array_api_strict"):
            out = compiled(gg.tensor(2.0))
        assert out.device == gg.device("array_api_strict")
    finally:
        backends._default, backends._default_reason = saved


@pytest.mark.parametrize("bad", [[0, 1, 3, 1, 0, 2], [0, -1, 2, 1, 0, 2]])
def test_class_indices_out_of_range_raise_on_every_run_as_in_eager_mode(bad):
    (_, _, eager), (_, _, compiled) = eager_and_compiled("sgd")
    for x, y in batches(2):
        compiled(x, y), eager(x, y)
    x, _ = batches(1)[0]
    for step in (eager, compiled):  # -1 would pick the last class; 3 is past the end
        with pytest.raises(gg.OutOfBoundsError, match=r"^cross_entropy: class indices must "
                                                      r"be in \[0, 3\)"):  # named once
            step(x, gg.tensor(bad))


def test_nll_loss_checks_its_class_indices_on_every_run_too():
    compiled = gg.compile(lambda z, y: F.nll_loss(F.log_softmax(z), y))
    z = gg.randn(4, 3)
    assert compiled(z, gg.tensor([0, 1, 2, 1])).item() == \
        F.nll_loss(F.log_softmax(z), gg.tensor([0, 1, 2, 1])).item()
    compiled(z, gg.tensor([2, 1, 0, 1]))  # a plan now
    with pytest.raises(gg.OutOfBoundsError, match=r"^nll_loss: class indices must be in"):
        compiled(z, gg.tensor([0, -1, 2, 1]))  # as an index, -1 would pick the last class


def scheduled_step(model, opt):
    """A training step that also steps a learning-rate schedule: host work of every run."""
    step = training_step(model, opt)
    schedule = gg.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

    def scheduled(x, y):
        loss = step(x, y)
        schedule.step()
        return loss

    return scheduled, schedule


def training_state(model, opt, schedule):
    """Everything a step changes: parameters, optimiser state (step counters included),
    the schedule's epoch and learning rate."""
    arrays = [p.numpy() for p in model.parameters()]
    arrays += [np.asarray(v) for p in model.parameters() for v in opt.state[p].values()]
    return arrays, schedule.last_epoch, schedule.get_last_lr()


def assert_same_state(a, b):
    (arrays_a, *rest_a), (arrays_b, *rest_b) = a, b
    assert rest_a == rest_b
    for x, y in zip(arrays_a, arrays_b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("cuda_graph", [False, True], ids=["plan", "graph-ready plan"])
@pytest.mark.parametrize("name", ["adam", "sgd momentum nesterov"])
def test_a_compiled_step_that_raises_changes_nothing_as_an_eager_step(name, cuda_graph):
    # The plan's host part (step counters, the schedule) runs before its kernels: a run
    # failing before it wrote into a tensor takes that back, so skipping a bad batch
    # trains on exactly as in eager mode.
    runs = []
    for make in ("eager", "compiled"):
        model, opt = model_and_optimiser(OPTIMISERS[name])
        step, schedule = scheduled_step(model, opt)
        if make == "compiled":
            step = compile_quietly(step, cuda_graph) if cuda_graph else gg.compile(step)
        good = batches(5)
        for x, y in good[:3]:
            step(x, y)
        before = training_state(model, opt, schedule)
        with pytest.raises(gg.OutOfBoundsError):
            step(good[3][0], gg.tensor([0, 1, 3, 1, 0, 2]))
        assert_same_state(training_state(model, opt, schedule), before)
        for x, y in good[3:]:
            step(x, y)
        runs.append(training_state(model, opt, schedule))
    assert_same_state(*runs)


@pytest.mark.parametrize("cuda_graph", [False, True], ids=["plan", "graph-ready plan"])
def test_an_interrupt_inside_a_compiled_step_before_any_update_changes_nothing(cuda_graph):
    tripped = []

    @gg.custom_op("test_compile::tripwire", replace=True)
    def tripwire(x):  # Ctrl-C arriving while the forward pass runs
        if tripped:
            raise KeyboardInterrupt
        return x

    @tripwire.register_vjp
    def _(ctx, grad):
        return (grad,)

    model, opt = model_and_optimiser(OPTIMISERS["adam"])
    schedule = gg.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)

    def step(x, y):
        opt.zero_grad()
        F.cross_entropy(tripwire(model(x)), y).backward()
        opt.step()
        schedule.step()

    step = compile_quietly(step, cuda_graph) if cuda_graph else gg.compile(step)
    for x, y in batches(3):
        step(x, y)
    before = training_state(model, opt, schedule)
    tripped.append(True)
    with pytest.raises(KeyboardInterrupt):
        step(*batches(1)[0])
    assert_same_state(training_state(model, opt, schedule), before)


def test_at_most_max_plans_are_kept_the_least_recently_used_goes_first():
    compiled = gg.compile(lambda x: x * 2, max_plans=2)
    small, medium, large = gg.ones(1), gg.ones(2), gg.ones(3)
    compiled(small)
    with pytest.warns(gg.CompileWarning, match="tracing anew"):
        compiled(medium)
    compiled(small)  # used last: medium is now the least recently used
    with pytest.warns(gg.CompileWarning) as caught:  # tracing anew, and:
        np.testing.assert_array_equal(compiled(large).numpy(), [2, 2, 2])
    assert any("max_plans=2 kinds of arguments are kept" in str(w.message) for w in caught)
    assert [key[1][0] for key in compiled.plans] == [(1,), (3,)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # small runs its plan: no trace, no warning
        compiled(small)
    with pytest.warns(gg.CompileWarning, match="tracing anew") as caught:
        compiled(medium)  # traced again; the full cache was said once already
    assert not any("arguments are kept" in str(w.message) for w in caught)
    assert len(compiled.plans) == 2 and len(compiled.log) == 4


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "8"])
def test_max_plans_must_be_a_positive_int_or_none(bad):
    with pytest.raises(ValueError, match="max_plans must be a positive int or None"):
        gg.compile(lambda x: x, max_plans=bad)


def test_retrace_false_raises_instead_of_tracing_anew():
    compiled = gg.compile(lambda x: x.exp(), retrace=False)
    compiled(gg.ones(3))
    with pytest.raises(gg.CompileError, match="would trace anew.*float64"):
        compiled(gg.ones(3, dtype="float64"))


def test_changing_an_optimisers_hyper_parameter_traces_anew_and_follows_eager():
    # The plan holds momentum, betas, weight decay as constants, guarded; lr is read on
    # every run. A change (or a key added to the group) traces anew, saying why.
    (eager_model, eager_opt, eager), (model, opt, compiled) = eager_and_compiled(
        "sgd momentum nesterov")
    data = batches(4)
    for step, (x, y) in enumerate(data):
        if step == 2:
            for o in (eager_opt, opt):
                o.param_groups[0]["momentum"] = 0.5
                o.param_groups[0]["lr"] = 0.05  # read anew: no retrace for it alone
            with pytest.warns(gg.CompileWarning, match="an optimiser hyper-parameter changed"):
                compiled(x, y)
            eager(x, y)
            continue
        assert compiled(x, y).item() == eager(x, y).item()
    assert len(compiled.log) == 2
    assert_same_parameters(model, eager_model)
    opt.param_groups[0]["foreach"] = False  # an entry the plan did not know
    with pytest.warns(gg.CompileWarning, match="an optimiser hyper-parameter changed"):
        compiled(*data[0])


def test_a_learning_rate_changed_and_changed_back_is_read_on_every_run():
    # The plan converts the host numbers anew only when they changed: a rate going back to
    # an earlier value must not keep the one in between.
    (eager_model, eager_opt, eager), (model, opt, compiled) = eager_and_compiled("sgd")
    for lr, (x, y) in zip([0.1, 0.1, 0.5, 0.5, 0.1, 0.0, 0.1], batches(7), strict=True):
        for o in (eager_opt, opt):
            o.param_groups[0]["lr"] = lr
        assert compiled(x, y).item() == eager(x, y).item()
        assert_same_parameters(model, eager_model)
    assert len(compiled.log) == 1  # one trace: the rate alone never retraces


def test_a_learning_rate_going_from_zero_to_minus_zero_is_read_on_the_next_run():
    # -0.0 == 0.0, yet p - (-0.0 * g) is 0.0 where p - 0.0 * g is -0.0 (p = -0.0, g > 0):
    # the plan must not keep the scalar it made of the equal number before.
    def setup():
        p = gg.tensor([-0.0, -0.0], requires_grad=True)
        opt = gg.optim.SGD([p], lr=0.0)

        def step(x):
            opt.zero_grad()
            loss = (p * x).sum()
            loss.backward()
            opt.step()
            return loss

        return p, opt, step

    (eager_p, eager_opt, eager), (p, opt, step) = setup(), setup()
    compiled = gg.compile(step)
    x = gg.ones(2)
    for lr in (0.0, 0.0, -0.0, 0.0):
        for o in (eager_opt, opt):
            o.param_groups[0]["lr"] = lr
        eager(x), compiled(x)
        assert p.numpy().tobytes() == eager_p.numpy().tobytes()  # the sign of zero too
    assert len(compiled.log) == 1


def test_the_plan_reads_the_current_values_of_the_tensors_it_uses():
    model = nn.Linear(3, 2)
    compiled = gg.compile(lambda x: model(x).sum())
    x = gg.ones((1, 3))
    with gg.no_grad():
        compiled(x)
        model.weight *= 0.0  # updated in place, outside the compiled function
        model.weight += 1.0
        np.testing.assert_allclose(compiled(x).item(), 6.0 + model.bias.numpy().sum(),
                                   rtol=1e-6)
        model.load_state_dict({"weight": gg.ones((2, 3)), "bias": gg.zeros(2)})
        assert compiled(x).item() == 6.0
    assert len(compiled.plans) == 1


def test_any_and_all_inside_the_function_give_eagers_answers_on_every_run():
    def fn(x):
        return x.any(), (x > 0).all(axis=1), gg.any(x < -1, dim=0, keepdim=True)

    compiled = gg.compile(fn)
    for values in ([[0.0, 0.0], [0.0, 0.0]], [[1.0, 2.0], [0.0, -3.0]],
                   [[1.0, 2.0], [3.0, 4.0]]):  # each answer changes between runs
        x = gg.tensor(values)
        for got, want in zip(compiled(x), fn(x), strict=True):
            assert got.dtype == want.dtype == np.bool_
            np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert len(compiled.plans) == 1


def test_a_loss_called_with_pytorchs_keywords_inside_the_function_equals_eager():
    model, _ = model_and_optimiser(OPTIMISERS["sgd"])

    def loss_of(x, labels):
        return F.cross_entropy(input=model(x), target=labels)

    compiled = gg.compile(loss_of)
    with gg.no_grad():  # the values alone: no graph is asked of the plan's result
        for x, labels in batches(3):
            assert compiled(x, labels).item() == loss_of(x, labels).item()


def test_detach_inside_the_function_reads_each_runs_values():
    w = gg.tensor([1.0, 2.0], requires_grad=True)

    def fn(x):
        y = w * x
        loss = (y.detach() * y).sum()  # the gradient flows through one factor only
        loss.backward()
        return loss

    compiled = gg.compile(fn)
    for x in ([1.0, 3.0], [2.0, 3.0], [4.0, -1.0]):
        w.grad = None
        got = compiled(gg.tensor(x)).item(), w.grad.numpy()
        w.grad = None
        want = fn(gg.tensor(x)).item(), w.grad.numpy()
        assert got[0] == want[0]
        np.testing.assert_array_equal(got[1], want[1])


def test_the_gradient_seed_of_a_scalar_loss_is_a_constant_of_the_plan():
    model, opt = model_and_optimiser(OPTIMISERS["sgd"])
    compiled = gg.compile(training_step(model, opt))
    compiled(*batches(1)[0])
    traced = [n.name for n in compiled.plan.traced.op_nodes()]
    optimised = [n.name for n in compiled.plan.program.op_nodes()]
    assert "broadcast_to" in traced  # mean's backward: 1 / batch, to every row
    assert "broadcast_to" not in optimised  # folded: the seed 1 is known when compiling
    assert compiled.plan.pass_stats["fold_constants"] >= 2


def test_reading_a_value_on_the_host_inside_the_function_is_refused_with_the_line():
    def step(x):
        if (x.sum() > 0).item():  # data-dependent Python: the plan could not follow it
            return x * 2.0
        return x

    with pytest.raises(gg.CompileError, match=r"on the host .*test_compile\.py:\d+"):
        gg.compile(step)(gg.ones(3))


def test_the_plans_graph_works_with_every_viewer():
    model, opt = model_and_optimiser(OPTIMISERS["adam"])
    compiled = gg.compile(training_step(model, opt))
    compiled(*batches(1)[0])
    graph = compiled.graph
    text = str(graph)
    assert "linear(" in text and "cross_entropy_with_grad(" in text
    assert graph.to_dot().startswith("digraph")
    assert len(graph.nx) == len(graph)
    assert compiled.traced_graph.op_counts()["linear"] == 2
    assert "def run(" in compiled.code and "in place" in compiled.code
    fused = [line for line in graph.to_dot().splitlines() if 'label="fused' in line]
    assert fused and all("expr=" in line and "steps=" not in line for line in fused)


# --- the passes, each alone ---------------------------------------------------------------
def program_of(fn, *args):
    """The untouched program of one trace of fn (the passes not yet run)."""
    _, plan = trace_and_compile(fn, list(args), optimize=False)
    return plan.program


def test_dead_code_drops_what_no_result_reads():
    program = program_of(lambda x: (x + 1.0, (x * 3.0).exp()), gg.ones(2))
    assert passes.dead_code(program) == 0  # everything traced is read by a result
    program.sinks = program.sinks[:1]  # keep only x + 1
    assert passes.dead_code(program) == 3  # mul, exp and the constant 3.0 go
    assert [n.name for n in program.op_nodes()] == ["add"]


def test_common_subexpressions_merge_the_same_op_on_the_same_inputs():
    def fn(x, y):
        return (x * y).tanh() + (x * y).tanh()

    program = program_of(fn, gg.ones(3), gg.ones(3))
    assert [n.name for n in program.op_nodes()] == ["mul", "tanh", "mul", "tanh", "add"]
    assert passes.common_subexpressions(program) == 2
    assert [n.name for n in program.op_nodes()] == ["mul", "tanh", "add"]
    add = program.op_nodes()[-1]
    assert add.inputs[0] is add.inputs[1]


def test_fold_constants_runs_ops_on_constants_at_compile_time():
    x = gg.tensor([1.0, 2.0], requires_grad=True)

    def fn(x):
        (g,) = gg.grad((x ** 3.0).sum(), [x])  # the VJP computes b - 1 on the constant b
        return g

    program = program_of(fn, x)
    before = len(program.op_nodes())
    assert passes.fold_constants(program) >= 1
    assert len(program.op_nodes()) < before
    compiled = gg.compile(fn)
    compiled(x)
    np.testing.assert_array_equal(compiled(x).numpy(), [3.0, 12.0])


def fused_nodes(program):
    return [n for n in program.op_nodes() if n.op is fusion.FUSED]


def test_fusion_turns_an_elementwise_chain_into_one_op():
    def fn(x, y):
        return ((x * y + x).exp() - y).relu()  # mul, add, exp, sub, relu

    x, y = gg.tensor(RNG.standard_normal((4, 3))), gg.tensor(RNG.standard_normal((4, 3)))
    program = program_of(fn, x, y)
    assert fusion.fuse_elementwise(program) == 4  # five ops, one left
    (node,) = program.op_nodes()
    assert node.op is fusion.FUSED and node.shape == (4, 3)
    assert fusion.describe(node.attrs["steps"], len(node.inputs)) == \
        "relu(sub(exp(add(mul(x0, x1), x0)), x1))"
    compiled = gg.compile(fn)
    for _ in range(2):  # the same ufuncs, chained with out=: bit for bit
        np.testing.assert_array_equal(compiled(x, y).numpy(), fn(x, y).numpy())


def test_fusion_keeps_apart_what_is_read_twice_returned_or_of_another_shape():
    def fn(x, b):
        shared = x.exp()  # two readers: it must exist on its own
        small = b.tanh()  # (3,): broadcast into the (4, 3) chain, not part of it
        returned = shared * 2.0  # a result: it must exist on its own
        return returned, (shared + small).sqrt()  # add and sqrt: one op

    program = program_of(fn, gg.ones((4, 3)), gg.ones(3))
    assert fusion.fuse_elementwise(program) == 1
    assert [n.name for n in program.op_nodes()] == ["exp", "tanh", "mul", "fused"]
    exp, tanh, _, fused = program.op_nodes()
    assert fused.inputs == (exp, tanh)


def test_a_long_chain_becomes_several_fused_ops_of_bounded_size():
    def fn(x):
        for _ in range(50):
            x = (x * 0.5).tanh()  # 100 elementwise ops in a row
        return x

    x = gg.tensor(RNG.standard_normal(8))
    program = program_of(fn, x)
    fusion.fuse_elementwise(program)
    sizes = [len(n.attrs["steps"]) for n in fused_nodes(program)]
    assert sum(sizes) == 100 and max(sizes) == fusion.MAX_STEPS
    np.testing.assert_array_equal(gg.compile(fn)(x).numpy(), fn(x).numpy())


def test_a_fused_chain_on_numpy_reuses_its_own_buffers():
    steps = (("gpugrad::exp", (0,)), ("gpugrad::mul", (2, 1)), ("gpugrad::tanh", (3,)))
    source, _ = fusion.chain_source(steps, 2)
    assert "s0 = U0(x0)" in source  # the first step allocates (NumPy's ufunc itself),
    assert "s1 = U1(s0, x1, out=s0)" in source  # the next ones write into it
    assert "return U2(s1, out=out)" in source  # and the result goes where it is asked
    assert fusion.scratch_buffers(steps, 2, has_out=False) == 0
    assert fusion.scratch_buffers(steps, 2, has_out=True) == 1


TRANSPOSED_CHAINS = {
    "(-x.T * w).sum()": lambda x, w: (-x.T * w).sum(),
    "(-x.T * w).sum(0)": lambda x, w: (-x.T * w).sum(0),
    "((x.T.exp() * 2).tanh() + w).sum(0)": lambda x, w: ((x.T.exp() * 2).tanh() + w).sum(0),
    "(x.T * 2 + (w * 3).exp() + x.T.abs()).sum(1)":
        lambda x, w: (x.T * 2 + (w * 3).exp() + x.T.abs()).sum(1),
}


@pytest.mark.parametrize("optimize", [False, True], ids=["unoptimized", "fused"])
@pytest.mark.parametrize("name", TRANSPOSED_CHAINS)
def test_an_op_over_a_transpose_writes_into_a_buffer_of_eagers_layout_only(name, optimize):
    """An elementwise op over a transpose makes a column-major array, and one over that
    and a row-major array a row-major one again: a plan writing the second into the
    first's buffer (in place, or a fused chain's step) would leave it column-major, and a
    sum over it adds in another order than eager mode's."""
    fn = TRANSPOSED_CHAINS[name]
    x = gg.tensor(RNG.standard_normal((300, 200)).astype("float32"))
    w = gg.tensor(RNG.standard_normal((200, 300)).astype("float32"))
    compiled = gg.compile(fn, optimize=optimize)
    for _ in range(3):
        np.testing.assert_array_equal(compiled(x, w).numpy(), fn(x, w).numpy())


def test_a_fused_chain_reuses_only_buffers_of_a_steps_own_layout():
    steps = (("gpugrad::exp", (0,)), ("gpugrad::add", (2, 1)), ("gpugrad::tanh", (3,)))
    source, _ = fusion.chain_source(steps, 2, layouts=(0, 1, 1))
    assert "s1 = U1(s0, x1)" in source  # exp's result is column-major, add's is not
    assert "s2 = U2(s1, out=s1)" in source
    assert fusion.scratch_buffers(steps, 2, has_out=False, layouts=(0, 1, 1)) == 1


def test_a_fused_chain_calls_an_op_that_is_no_single_ufunc_through_its_kernels():
    steps = (("gpugrad::exp", (0,)), ("gpugrad::relu", (2,)), ("gpugrad::mul", (3, 1)))
    source, _ = fusion.chain_source(steps, 2)
    assert "s1 = O1(xp, s0, s0)" in source  # relu is maximum(x, 0): its out_kernel
    fused, fused_out = fusion.kernels(steps, 2, "numpy")
    x0 = np.array([-1.0, 0.5, 2.0], np.float32)
    x1 = np.array([3.0, -2.0, 0.25], np.float32)
    expected = np.maximum(np.exp(x0), 0) * x1
    np.testing.assert_array_equal(fused(x0, x1), expected)
    out = np.empty(3, np.float32)
    assert fused_out(x0, x1, out) is out
    np.testing.assert_array_equal(out, expected)


def test_fused_training_steps_equal_unfused_ones_step_after_step():
    for name in ("adam", "sgd momentum nesterov"):
        runs = []
        for optimize in (True, False):
            model, opt = model_and_optimiser(OPTIMISERS[name])
            compiled = gg.compile(training_step(model, opt), optimize=optimize)
            losses = [compiled(x, y).item() for x, y in batches(4)]
            runs.append((losses, [p.numpy().copy() for p in model.parameters()]))
        (fused_losses, fused_params), (plain_losses, plain_params) = runs
        assert fused_losses == plain_losses, name
        for a, b in zip(fused_params, plain_params, strict=True):
            np.testing.assert_array_equal(a, b)


CUDA_WRAPPER = """
namespace unit_{name} {{
typedef {ctype} T;
extern "C" __global__ void fused_{name}({params}, T* __restrict__ out, long long n) {{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {{
        {loads}
        T& y = out[i];
        {body}
    }}
}}
}}
"""


def cuda_translation_unit(name, steps, n, ctype):
    """The ElementwiseKernel body in a kernel of the same shape as CuPy's: each input
    read into a local of type T, the result assigned to `y`."""
    params = ", ".join(f"const T* __restrict__ p{k}" for k in range(n))
    loads = " ".join(f"const T x{k} = p{k}[i];" for k in range(n))
    return CUDA_WRAPPER.format(name=name, ctype=ctype, params=params, loads=loads,
                               body=fusion.cuda_body(steps, n))


@pytest.mark.skipif(shutil.which("nvcc") is None and not
                    pathlib.Path("/usr/local/cuda/bin/nvcc").is_file(),
                    reason="nvcc is not installed (no CUDA toolkit)")
def test_every_fusible_op_and_a_training_steps_chains_compile_as_cuda(tmp_path):
    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    source = tmp_path / "fused.cu"
    source.write_text(fusion.PREAMBLE + "\n".join(
        cuda_translation_unit(f"{i}_{ctype}", steps, n, ctype)
        for i, (steps, n) in enumerate(fusion_chains()) for ctype in ("float", "double")))
    result = subprocess.run([nvcc, "--ptx", "-arch=sm_80", "-Werror", "all-warnings",
                             str(source), "-o", str(tmp_path / "fused.ptx")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("nvcc") is None and not
                    pathlib.Path("/usr/local/cuda/bin/nvcc").is_file(),
                    reason="nvcc is not installed (no CUDA toolkit)")
def test_fused_chains_round_every_product_and_sum_as_the_unfused_kernels_do(tmp_path):
    # NVRTC, as nvcc, contracts by default: a product and sum left without a rounding mode
    # in the PTX (mul.f32, add.f32) may become one fused multiply-add in the machine code,
    # which the eager ops, one CuPy kernel each, never compute. Chains of arithmetic only
    # (CUDA's exp, log, ... are compiled as in CuPy's own kernels, and excluded here).
    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    transcendental = {"gpugrad::exp", "gpugrad::log", "gpugrad::tanh", "gpugrad::erf",
                      "gpugrad::sqrt"}
    chains = [(steps, n) for steps, n in fusion_chains()
              if not transcendental & {name for name, _ in steps}]
    chains.append(((("gpugrad::mul", (1, 2)), ("gpugrad::sub", (0, 3))), 3))  # p - lr g
    assert any(len(steps) > 1 for steps, _ in chains)
    source = tmp_path / "arithmetic.cu"
    source.write_text(fusion.PREAMBLE + "\n".join(
        cuda_translation_unit(f"{i}_{ctype}", steps, n, ctype)
        for i, (steps, n) in enumerate(chains) for ctype in ("float", "double")))
    for arch in ("sm_80", "sm_90"):
        ptx = tmp_path / f"arithmetic_{arch}.ptx"
        result = subprocess.run([nvcc, "--ptx", f"-arch={arch}", "-ftz=true", str(source),
                                 "-o", str(ptx)], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        text = ptx.read_text()
        assert "fma." not in text
        contractible = re.findall(r"\b(?:mul|add|sub)(?:\.ftz)?\.f(?:32|64)\b", text)
        assert not contractible, f"{arch}: {contractible[:3]}"


def fusion_chains():
    """(steps, n): every fusible op alone, and the chains of a compiled Adam training step."""
    alone = [(((name, (0, 1)[:arity(name)]),), arity(name)) for name in fusion.C_EXPRESSIONS]
    model, opt = model_and_optimiser(OPTIMISERS["adam"])
    step = gg.compile(training_step(model, opt))
    step(*batches(1)[0])
    chains = [(n.attrs["steps"], len(n.inputs)) for n in fused_nodes(step.plan.program)]
    assert chains  # Adam's update is made of such chains
    return alone + chains


def arity(name):
    return 1 if name in ("gpugrad::neg", "gpugrad::exp", "gpugrad::log", "gpugrad::sqrt",
                         "gpugrad::tanh", "gpugrad::relu", "gpugrad::erf") else 2


@pytest.mark.gpu
def test_fused_kernels_on_cupy_agree_with_the_step_by_step_reference():
    if not gg.cuda.is_available():
        pytest.skip(f"no usable GPU: {gg.cuda.reason()}")
    import cupy

    rng = np.random.default_rng(3)
    for name in fusion.C_EXPRESSIONS:
        steps = ((name, (0, 1)[:arity(name)]), ("gpugrad::mul", (2, 1)))
        for dtype in (np.float32, np.float64):
            host = [np.abs(rng.standard_normal((257, 3))).astype(dtype) + 0.1
                    for _ in range(2)]
            arrays = [cupy.asarray(a) for a in host]
            kernel, into = fusion.kernels(steps, 2, "cupy")
            want = fusion._step_by_step(np, *host, steps=steps)
            rtol = 1e-5 if dtype == np.float32 else 1e-12  # CUDA's exp/log/tanh: few ulp
            np.testing.assert_allclose(cupy.asnumpy(kernel(*arrays)), want, rtol=rtol)
            out = cupy.empty_like(arrays[0])
            into(*arrays, out)
            np.testing.assert_allclose(cupy.asnumpy(out), want, rtol=rtol)


def test_share_softmax_computes_one_softmax_for_a_loss_and_its_gradient():
    z = gg.tensor(RNG.standard_normal((6, 4)), requires_grad=True)
    y = gg.tensor([0, 1, 2, 3, 0, 1])

    def mean_loss(z, y):
        loss = F.cross_entropy(z, y)
        (g,) = gg.grad(loss, [z])  # seeded by 1 / 6: known before the forward runs
        return loss, g

    program = program_of(mean_loss, z, y)
    passes.fold_constants(program)
    assert passes.share_softmax(program) == 1
    names = [n.name for n in program.op_nodes()]
    assert names == ["cross_entropy_with_grad", "mean", "cross_entropy_with_grad"]
    got = gg.compile(mean_loss)(z, y)
    for a, b in zip(got, mean_loss(z, y), strict=True):  # bit for bit the two ops' results
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    def weighted_by_itself(z, y):
        losses = F.cross_entropy(z, y, reduction="none")
        (g,) = gg.grad((losses * losses.detach()).sum(), [z])  # needs the forward's values
        return g

    program = program_of(weighted_by_itself, z, y)
    passes.fold_constants(program)
    assert passes.share_softmax(program) == 0
    np.testing.assert_array_equal(gg.compile(weighted_by_itself)(z, y).numpy(),
                                  weighted_by_itself(z, y).numpy())


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_cuda_kernel_of_a_shared_softmax_takes_the_arguments_the_plan_passes(smoothing):
    # On CuPy arrays it runs kernels/softmax_xent.cu; on NumPy arrays the same call runs
    # the kernels' generic references: here, the plumbing is checked against NumPy's.
    from gpugrad.ops import loss

    rng = np.random.default_rng(5)
    g = np.full(7, 1 / 7)
    logits, target = rng.standard_normal((7, 4)) * 3, rng.integers(0, 4, 7)
    fused_loss, fused_grad = loss._ce_with_grad_fused(np, g, logits, target, smoothing)
    want_loss, want_grad = loss._ce_with_grad_ndarray(np, g, logits, target, smoothing)
    np.testing.assert_allclose(fused_loss, want_loss, rtol=1e-12)
    np.testing.assert_allclose(fused_grad, want_grad, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("activation", [nn.ReLU, nn.Tanh, nn.Sigmoid])
def test_bias_activation_gives_a_layers_bias_and_activation_one_kernel(activation,
                                                                     monkeypatch):
    # gg.compile runs this pass on CuPy programs (kernels/bias_act.cu); here it runs on a
    # NumPy program, whose bias_act op runs the kernel's generic reference.
    monkeypatch.setattr(passes, "FUSED_KERNEL_BACKENDS", ("cupy", "numpy"))
    gg.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), activation(), nn.Linear(8, 3))
    opt = gg.optim.SGD(model.parameters(), lr=0.1)
    compiled = gg.compile(training_step(model, opt))
    x, y = batches(1)[0]
    compiled(x, y)
    assert compiled.plan.pass_stats["bias_activation"] == 1  # the last layer has none
    names = [n.name for n in compiled.plan.program.op_nodes()]
    assert names[:3] == ["matmul", "bias_act", "linear"]
    eager_model = nn.Sequential(nn.Linear(5, 8), activation(), nn.Linear(8, 3))
    eager_model.load_state_dict(model.state_dict())
    eager = training_step(eager_model, gg.optim.SGD(eager_model.parameters(), lr=0.1))
    for x, y in batches(3):  # the reference repeats the ops' operations: the same bits
        assert compiled(x, y).item() == eager(x, y).item()
    assert_same_parameters(model, eager_model)


def test_passes_change_no_result():
    def fn(x):
        a = (x * x).sum() + (x * x).sum()
        return a * (2.0 - 1.0) + x.exp().sum()

    x = gg.tensor(RNG.standard_normal(5))
    plain, optimised = gg.compile(fn, optimize=False), gg.compile(fn)
    for _ in range(2):
        assert plain(x).item() == optimised(x).item() == fn(x).item()
    assert optimised.plan.pass_stats["common_subexpressions"] >= 1


# --- the memory plan ------------------------------------------------------------------------
def assert_no_buffer_is_overwritten_while_still_to_be_read(program, memory):
    """An independent check: a buffer written in place by op i is read by no op after
    i, directly or through a value that may be a view of it."""
    ops = program.op_nodes()
    position = {id(n): i for i, n in enumerate(ops)}
    readers = {}
    for i, n in enumerate(ops):
        for inp in n.inputs:
            readers.setdefault(id(inp), []).append(i)
    escaping = {id(n) for n in program.sink_nodes()}

    def reads_after(value, i):
        stack, seen = [value], set()
        while stack:
            v = stack.pop()
            if id(v) in seen:
                continue
            seen.add(id(v))
            if id(v) in escaping and v is not value:
                return True
            for r in readers.get(id(v), ()):
                if r > i:
                    return True
                if not fresh(ops[r]) and r != i:
                    stack.append(ops[r])  # a possible view: its readers read v too
        return False

    for node, target in memory.out.items():
        i = position[id(node)]
        assert not reads_after(target, i), f"{node!r} overwrites {target!r} too early"
        assert id(target) not in escaping or target.op.is_leaf


def test_the_memory_plan_of_a_training_step_reuses_buffers_safely():
    model, opt = model_and_optimiser(OPTIMISERS["adam"])
    compiled = gg.compile(training_step(model, opt))
    compiled(*batches(1)[0])
    plan = compiled.plan
    assert plan.memory.in_place > 10  # the Adam update runs in its state's buffers
    assert 0 < plan.peak_bytes <= plan.memory.allocated_bytes
    assert_no_buffer_is_overwritten_while_still_to_be_read(plan.program, plan.memory)


def test_the_peak_is_known_before_running_and_counts_what_lives_at_once():
    def fn(x):
        a = x.exp()  # 4 KiB
        b = a.tanh()  # in place: a dies here
        return b.sum()

    x = gg.ones(1024)
    _, unfused = trace_and_compile(fn, [x], optimize=False)
    assert unfused.memory.in_place == 1
    assert unfused.peak_bytes == 4096 + 4  # one buffer of 1024 float32, then the sum
    _, fused = trace_and_compile(fn, [x])
    assert fused.pass_stats["fuse_elementwise"] == 1  # exp and tanh: one kernel
    assert fused.peak_bytes == 4096 + 4  # which writes tanh into exp's buffer


UNARY = ["exp", "tanh", "relu", "abs", "sigmoid"]
BINARY = ["add", "mul", "sub"]


def program_steps(view, most):
    """A strategy of random DAGs of 2 to `most` steps over two inputs: unary and binary
    elementwise ops, `view` (a kind of view, as run_steps takes it) and scaling."""
    @st.composite
    def programs(draw):
        steps = []
        for i in range(draw(st.integers(2, most))):
            kind = draw(st.sampled_from(["unary", "binary", view, "scale"]))
            a = draw(st.integers(0, i + 1))
            if kind == "unary":
                steps.append((kind, draw(st.sampled_from(UNARY)), a))
            elif kind == "binary":
                steps.append((kind, draw(st.sampled_from(BINARY)), a,
                               draw(st.integers(0, i + 1))))
            else:
                steps.append((kind, None, a))
        return steps

    return programs()


def run_steps(steps, x, y):
    """Every value of a program_steps program, the inputs first."""
    values = [x, y]
    for step in steps:
        kind, name, a = step[:3]
        if kind == "unary":
            values.append(getattr(values[a], name)())
        elif kind == "binary":
            values.append(getattr(values[a], f"__{name}__")(values[step[3]]))
        elif kind == "view":
            values.append(values[a].T.reshape(3, 4).reshape(4, 3))
        elif kind == "transpose":
            values.append(values[a].T)
        else:
            values.append(values[a] * 0.5)
    return values


def random_programs():
    """A random DAG of elementwise ops, reductions and views over two inputs."""
    return program_steps("view", 12)


def run_program(steps, x, y):
    values = run_steps(steps, x, y)
    loss = sum(v.sum() for v in values[2:])
    return [loss] + gg.grad(loss, [x, y], allow_unused=True)


@settings(max_examples=40, deadline=None)
@given(random_programs())
def test_compiled_random_programs_equal_eager_bit_for_bit(steps):
    x = gg.tensor(RNG.standard_normal((4, 3)), requires_grad=True)
    y = gg.tensor(RNG.standard_normal((4, 3)), requires_grad=True)
    compiled = gg.compile(lambda x, y: [g for g in run_program(steps, x, y) if g is not None])
    for _ in range(2):
        ref = [g for g in run_program(steps, x, y) if g is not None]
        got = compiled(x, y)
        for a, b in zip(got, ref, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    plan = compiled.plan
    assert_no_buffer_is_overwritten_while_still_to_be_read(plan.program, plan.memory)
    memory = plan_memory(plan.program)  # planning again gives the same plan
    assert memory.peak_bytes == plan.peak_bytes


def square_programs():
    """A random chain of elementwise ops and transposes over two square inputs, whose
    intermediates die along the way (their buffers free to take a result)."""
    return program_steps("transpose", 10)


def run_square_program(steps, x, y):
    last = run_steps(steps, x, y)[-1]  # sums along and across its rows: they add in its
    return [last.sum(axis=0), last.sum(axis=1), last.sum()]  # layout's order


@settings(max_examples=200, deadline=None)
@given(square_programs(), st.booleans())
def test_compiled_programs_over_transposes_equal_eager_bit_for_bit(steps, optimize):
    x = gg.tensor(RNG.standard_normal((40, 40)).astype("float32"))
    y = gg.tensor(RNG.standard_normal((40, 40)).astype("float32"))
    compiled = gg.compile(lambda x, y: run_square_program(steps, x, y), optimize=optimize)
    for _ in range(2):
        for a, b in zip(compiled(x, y), run_square_program(steps, x, y), strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("dtype", ["bool", "int8", "int32", "int64", "float16", "float32",
                                   "float64"])
def test_a_compiled_sum_gives_the_eager_sum_its_dtype_and_bits_over_any_axes(dtype):
    """A plan on NumPy sums by np.add.reduce itself (Op.plan_kernel): the same values and
    dtype as eager mode's sum, small integers and booleans summed as int64 included."""
    x = gg.tensor((RNG.standard_normal((5, 4, 3)) * 40).astype(dtype))
    for axis in (None, 0, -1, (0, 2), (1,)):
        for keepdims in (False, True):
            sums = gg.compile(lambda t, axis=axis, keepdims=keepdims: t.sum(
                axis=axis, keepdims=keepdims))
            got, want = sums(x), x.sum(axis=axis, keepdims=keepdims)
            assert (got.dtype, got.shape) == (want.dtype, want.shape)
            np.testing.assert_array_equal(got.numpy(), want.numpy())
            assert got.numpy().dtype == want.numpy().dtype


def test_gpugrad_train_compiles_by_default_and_gives_the_eager_run(tmp_path):
    from gpugrad.train import Config, run

    def train(name, **kw):
        config = Config(epochs=2, hidden=[16], out=str(tmp_path / name), **kw)
        return run(config, stream=open(tmp_path / f"{name}.log", "w"))  # noqa: SIM115

    eager, compiled = train("eager", compile=False), train("compiled")
    assert [e["train_loss"] for e in compiled["epochs"]] == \
        [e["train_loss"] for e in eager["epochs"]]
    assert compiled["test_accuracy"] == eager["test_accuracy"]
    graph_ready = train("graph-ready", cuda_graph=True)  # on a CPU: compiled, no graph
    assert [e["train_loss"] for e in graph_ready["epochs"]] == \
        [e["train_loss"] for e in eager["epochs"]]
    assert "--cuda-graph: the step runs on cpu" in (tmp_path / "graph-ready.log").read_text()


class RunsOut(gg.optim.lr_scheduler.LRScheduler):
    """A schedule given as a list: stepping past its end raises IndexError."""

    def __init__(self, opt, lrs):
        self.lrs = lrs
        super().__init__(opt)

    def lr_at(self, base_lr, epoch):
        return self.lrs[epoch]


def gradients(model):
    return [None if p.grad is None else p.grad.numpy() for p in model.parameters()]


def compiled_if(compiled, fn, cuda_graph):
    """fn itself, or fn through gg.compile (its graph-ready plan with cuda_graph)."""
    if not compiled:
        return fn
    return compile_quietly(fn, cuda_graph) if cuda_graph else gg.compile(fn)


def run_failing_at_the_forward_pass(compiled, cuda_graph):
    """Three steps, then one whose class indices are out of range: the state it leaves."""
    model, opt = model_and_optimiser(OPTIMISERS["adam"])
    first = gg.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    later = gg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)

    def step(x, y):
        first.step()
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        later.step()
        later.step()
        loss.backward()
        opt.step()

    step = compiled_if(compiled, step, cuda_graph)
    good = batches(4)
    for x, y in good[:3]:
        step(x, y)
    with pytest.raises(gg.OutOfBoundsError):
        step(good[3][0], gg.tensor([0, 1, 3, 1, 0, 2]))
    assert all(g is None for g in gradients(model))  # zero_grad came first
    return training_state(model, opt, first), later.last_epoch, later.get_last_lr()


@pytest.mark.parametrize("cuda_graph", [False, True], ids=["plan", "graph-ready plan"])
@pytest.mark.filterwarnings("ignore:.*(before optimizer.step|do not chain)")  # on purpose
def test_a_failed_run_keeps_what_the_function_did_before_the_failure_as_eager_mode(
        cuda_graph):
    # A scheduler stepped first and the zero_grad before the forward pass happened in
    # an eager call whose forward pass raises; the two steps of a scheduler stepped
    # after the forward pass did not (each is taken back, in turn).
    eager = run_failing_at_the_forward_pass(False, cuda_graph)
    compiled = run_failing_at_the_forward_pass(True, cuda_graph)
    assert_same_state(eager[0], compiled[0])
    assert eager[1:] == compiled[1:]


def run_until_the_schedule_runs_out(compiled, cuda_graph):
    model, opt = model_and_optimiser(OPTIMISERS["sgd momentum nesterov"])
    schedule = RunsOut(opt, [0.1, 0.05, 0.02])
    step = training_step(model, opt)

    def scheduled(x, y):
        loss = step(x, y)
        schedule.step()
        return loss

    scheduled = compiled_if(compiled, scheduled, cuda_graph)
    good = batches(3)
    for x, y in good[:2]:
        scheduled(x, y)
    with pytest.raises(IndexError):
        scheduled(*good[2])
    return training_state(model, opt, schedule), gradients(model)


@pytest.mark.parametrize("cuda_graph", [False, True], ids=["plan", "graph-ready plan"])
def test_a_schedule_running_out_after_the_update_leaves_the_update_as_eager_mode(cuda_graph):
    # The scheduler's step comes after the optimiser's: an eager call has updated the
    # model when the schedule raises, so the plan does that host call after its writes.
    eager = run_until_the_schedule_runs_out(False, cuda_graph)
    compiled = run_until_the_schedule_runs_out(True, cuda_graph)
    assert_same_state(eager[0], compiled[0])
    for a, b in zip(eager[1], compiled[1], strict=True):
        np.testing.assert_array_equal(a, b)


def train_with_the_update_apart(compiled, cuda_graph):
    """Gradients from one function, the update in another, called first of all."""
    model, opt = model_and_optimiser(OPTIMISERS["adam"])

    def accumulate(x, y):
        F.cross_entropy(model(x), y).backward()

    def update():
        opt.step()
        opt.zero_grad()

    accumulate = compiled_if(compiled, accumulate, cuda_graph)
    update = compiled_if(compiled, update, cuda_graph)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gg.CompileWarning)  # tracing anew, once
        update()  # nothing to do yet
        for x, y in batches(4):
            accumulate(x, y)
            update()
    return [p.numpy() for p in model.parameters()]


@pytest.mark.parametrize("cuda_graph", [False, True], ids=["plan", "graph-ready plan"])
def test_an_update_traced_before_any_gradient_existed_traces_anew_once_one_does(cuda_graph):
    # The trace of the first update() skipped every parameter (no .grad yet): a plan
    # doing nothing must not be reused once gradients exist.
    eager = train_with_the_update_apart(False, cuda_graph)
    compiled = train_with_the_update_apart(True, cuda_graph)
    for a, b in zip(eager, compiled, strict=True):
        np.testing.assert_array_equal(a, b)


def model_with_batch_norm():
    """A model whose forward reads its mode (batch statistics in train(), running ones
    in eval()): switching it fails a plan's guard."""
    gg.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4))


def test_with_retrace_false_a_failed_guard_keeps_the_plan_for_when_it_holds_again():
    model = model_with_batch_norm()
    forward = gg.compile(lambda x: model(x).detach(), retrace=False)
    x = gg.ones((2, 5))
    expected = forward(x).numpy()
    model.eval()
    for _ in range(2):  # the guard's reason, every time
        with pytest.raises(gg.CompileError, match="switched between train.. and eval"):
            forward(x)
    assert forward.plan is not None  # the plan is still there ...
    model.train()
    np.testing.assert_array_equal(forward(x).numpy(), expected)  # ... and serves again


def test_the_plan_of_a_function_whose_new_trace_failed_is_refused_with_a_reason():
    model = model_with_batch_norm()
    fail = []

    def forward(x):
        if fail:
            raise ValueError("the function itself failed")
        return model(x).detach()

    compiled = gg.compile(forward)
    compiled(gg.ones((2, 5)))
    model.eval()  # the plan's guard fails: it is dropped and the function traced anew
    fail.append(True)
    with pytest.warns(gg.CompileWarning), pytest.raises(ValueError):
        compiled(gg.ones((2, 5)))
    with pytest.raises(gg.CompileError, match="no plan yet"):
        compiled.plan  # noqa: B018 - was a KeyError


def test_a_compiled_function_called_inside_another_ones_trace_runs_inline():
    w = gg.tensor(RNG.standard_normal((3, 3)).astype("float32"))
    inner = gg.compile(lambda x: (x @ w).tanh())

    def outer_fn(x):
        return inner(x) * 2.0

    outer = gg.compile(outer_fn)
    inner(gg.ones((2, 3)))  # inner has a plan of its own: outer must not freeze its result
    for _ in range(3):
        x = gg.tensor(RNG.standard_normal((2, 3)).astype("float32"))
        np.testing.assert_array_equal(outer(x).numpy(), outer_fn(x).numpy())


def test_manual_seed_inside_the_function_seeds_every_run():
    def fn(x):
        gg.manual_seed(0)
        return x * gg.rand(3), gg.randn(2)

    compiled = gg.compile(fn)
    x = gg.ones(3)
    for _ in range(3):
        for a, b in zip(compiled(x), fn(x), strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_tensor_passed_twice_and_updated_through_one_name_is_updated_by_the_trace():
    def fn(a, b):
        with gg.no_grad():
            a += b

    compiled = gg.compile(fn)
    for _ in range(3):
        x, y = gg.tensor([1.0, 2.0]), gg.tensor([1.0, 2.0])
        fn(x, x)
        compiled(y, y)
        np.testing.assert_array_equal(y.numpy(), x.numpy())


def test_gg_trace_of_a_compiled_function_records_its_ops():
    w = gg.tensor(RNG.standard_normal((3, 3)).astype("float32"), requires_grad=True)

    def fn(x):
        return (x @ w).tanh().sum()

    compiled = gg.compile(fn)
    x = gg.ones((2, 3))
    with pytest.warns(gg.CompileWarning, match="requires grad"):
        compiled(x), compiled(x)  # a plan exists (its result comes without a graph)
    assert gg.trace(compiled, x).op_counts() == gg.trace(fn, x).op_counts()


def test_a_tensor_the_function_makes_starts_anew_at_every_run():
    # New at every eager call: a plan feeds the values it was made with, never what the
    # previous run left in it.
    def fill(x):
        buf = gg.zeros(3)
        with gg.no_grad():
            buf += x
        return buf

    def subtract(x):
        t = gg.tensor([5.0, 5.0, 5.0])
        with gg.no_grad():
            t -= x
        return t * 2

    x = gg.tensor([1.0, 2.0, 3.0])
    for fn in (fill, subtract):
        compiled = gg.compile(fn)
        for _ in range(3):
            np.testing.assert_array_equal(compiled(x).numpy(), fn(x).numpy())


def test_an_accumulator_the_function_makes_carries_gradients_as_in_eager_mode():
    # acc = zeros; acc += w * 3: acc takes the op's node (as in eager), so the loss
    # through acc reaches w: dloss/dw = 18 w + 1.
    def step(w):
        acc = gg.zeros(2)
        acc += w * 3.0
        return gg.grad([(acc * acc).sum() + w.sum()], [w])[0]

    compiled = gg.compile(step)
    w = gg.tensor([1.0, 2.0], requires_grad=True)
    for _ in range(3):
        np.testing.assert_array_equal(compiled(w).numpy(), [19.0, 37.0])


def test_a_tensor_the_function_makes_and_keeps_lives_on_between_runs():
    # Made on the first call and stored outside the function (a running sum, a mask):
    # later runs read and update that tensor, as eager calls do.
    class Holder:
        total = mask = None

    held = Holder()

    def running_sum(x):
        if held.total is None:
            held.total = gg.zeros(3)
            held.mask = gg.ones(3)
        with gg.no_grad():
            held.total += x
        return held.total * held.mask

    compiled = gg.compile(running_sum)
    x = gg.tensor([1.0, 2.0, 3.0])
    for k in (1, 2, 3):
        np.testing.assert_array_equal(compiled(x).numpy(), (k * x).numpy())
    with gg.no_grad():
        held.mask *= 0.0  # changed between calls: the next run reads it
    assert compiled(x).numpy().tolist() == [0.0, 0.0, 0.0]
    assert held.total.numpy().tolist() == [4.0, 8.0, 12.0] and len(compiled.log) == 1


def test_a_leaf_the_function_makes_with_requires_grad_gives_eagers_gradient():
    def fn(x):
        w = gg.ones(3, requires_grad=True)  # its .grad is None at every eager call
        (w * x).sum().backward()
        return w.grad

    compiled = gg.compile(fn)
    x = gg.tensor([1.0, 2.0, 3.0])
    with warnings.catch_warnings():
        # (the backward's saved inputs hold w, so the trace cannot tell that w dies with
        # the call: it reads w as a tensor that lives on, guarding its .grad)
        warnings.simplefilter("ignore", gg.CompileWarning)
        for _ in range(3):
            np.testing.assert_array_equal(compiled(x).numpy(), fn(x).numpy())


def test_accumulating_gradients_with_zero_grad_outside_traces_once_per_pattern():
    # forward and backward compiled; the caller steps and clears every third call: the
    # plan for ".grad None" and the one for ".grad set" both stay, used in turn.
    (eager_model, eager_opt, _), (model, opt, _) = eager_and_compiled("adam")

    def accumulate(m):
        def fn(x, y):
            F.cross_entropy(m(x), y).backward()
        return fn

    eager, compiled = accumulate(eager_model), gg.compile(accumulate(model))
    with pytest.warns(gg.CompileWarning, match="grad") as traced_anew:
        for i, (x, y) in enumerate(batches(12)):
            eager(x, y)
            compiled(x, y)
            if i % 3 == 2:
                for o in (eager_opt, opt):
                    o.step()
                    o.zero_grad()
    assert len(traced_anew) == 1 and len(compiled.log) == 2  # each pattern traced once
    assert_same_parameters(model, eager_model)


# --- what users write, from an audit ------------------------------------------------------------
def test_numpy_reading_a_tensor_inside_the_function_is_a_host_read_error():
    # np.asarray(t) froze the first call's values into every later run.
    compiled = gg.compile(lambda x: np.asarray(x) * 2)
    with pytest.raises(gg.CompileError, match=r"np\.asarray\(\).*test_compile.py"):
        compiled(gg.ones(2))


def test_results_in_namedtuples_dataclasses_and_ordered_dicts_are_each_runs():
    import collections
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Out:
        loss: object
        label: str = "train"

    Pair = collections.namedtuple("Pair", "total mean")
    fns = [lambda x: Out(x.sum()), lambda x: Pair(x.sum(), x.mean()),
           lambda x: collections.OrderedDict(total=x.sum())]
    for fn in fns:
        compiled = gg.compile(fn)
        for scale in (1.0, 3.0, 5.0):  # the traced call, then plan runs
            got, want = compiled(gg.ones(2) * scale), fn(gg.ones(2) * scale)
            assert type(got) is type(want) and repr(got) == repr(want)


def test_a_result_object_holding_tensors_is_refused_rather_than_kept_stale():
    class Holder:
        def __init__(self, loss):
            self.loss = loss

    with pytest.raises(gg.CompileError, match="returns a Holder that holds tensors"):
        gg.compile(lambda x: Holder(x.sum()))(gg.ones(2))


def test_detect_anomaly_inside_the_function_is_refused_with_what_to_do():
    def fn(x):
        with gg.detect_anomaly():  # would check the tracing call only
            return x.log().sum()

    with pytest.raises(gg.CompileError, match=r"gg\.detect_anomaly\(\) inside a compiled "
                                              r"function \(at test_compile.py:\d+\).*around"):
        gg.compile(fn)(gg.ones(2))


@pytest.mark.filterwarnings("ignore:.*tracing anew")  # one plan each, as meant
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # 1 / 0.0, as meant
def test_float_arguments_are_told_apart_by_their_bits():
    compiled = gg.compile(lambda x, s: x / s)
    x = gg.ones(1)
    assert compiled(x, 0.0).item() == np.inf and compiled(x, -0.0).item() == -np.inf
    compiled(x, float("nan")), compiled(x, float("nan"))
    assert len(compiled.log) == 3  # 0.0, -0.0, nan: the second nan reuses its plan


def test_an_error_inside_a_plan_run_names_the_op_and_the_users_line():
    h = gg.randn(4, 3)
    compiled = gg.compile(lambda idx: h[gg.arange(4), idx])
    compiled(gg.tensor([0, 1, 2, 0]))
    with pytest.raises(gg.OutOfBoundsError, match=r"getitem: index 7 is out of bounds.*"
                                                  r"op created at test_compile.py:\d+"):
        compiled(gg.tensor([0, 1, 7, 0]))  # a plan run: its kernel raises


def test_a_tuple_of_tensors_as_an_argument_is_refused_clearly():
    compiled = gg.compile(lambda pair: pair[0] + pair[1])
    with pytest.raises(gg.CompileError, match="a tuple of tensors; pass each tensor"):
        compiled((gg.ones(2), gg.ones(2)))


@pytest.mark.filterwarnings("ignore:.*tracing anew")  # one plan each, as meant
def test_a_compiled_method_binds_its_object():
    class Scaler:
        def __init__(self, k):
            self.k = gg.full((2,), k)

        @gg.compile
        def apply(self, x):
            return x * self.k

    a, b = Scaler(2.0), Scaler(3.0)
    for _ in range(2):
        assert a.apply(gg.ones(2)).numpy().tolist() == [2.0, 2.0]
        assert b.apply(gg.ones(2)).numpy().tolist() == [3.0, 3.0]


def test_in_place_ops_that_save_their_old_value_agree_compiled_and_eager():
    # y /= w and acc *= w keep the value they read for w's gradient, compiled as eager.
    def divide(w):
        y = w + 1
        y /= w  # (w + 1) / w: d/dw = -1 / w^2
        return gg.grad([y.sum()], [w])[0]

    def scale(w):
        acc = gg.full((2,), 2.0)
        acc *= w  # 2 w: d/dw = 2
        return gg.grad([acc.sum()], [w])[0]

    w = gg.tensor([1.0, 2.0], requires_grad=True)
    for fn, expected in ((divide, [-1.0, -0.25]), (scale, [2.0, 2.0])):
        compiled = gg.compile(fn)
        assert fn(w).numpy().tolist() == expected
        for _ in range(2):
            assert compiled(w).numpy().tolist() == expected


def test_a_grad_mode_switched_inside_and_left_so_is_refused():
    """gg.set_grad_enabled(False) alone switches recording off from the call on, in eager
    mode; a plan's runs would leave the mode as it was, so the trace refuses it (and
    leaves the mode as before the call). Inside a with block it is a plan's like any."""
    def left_off(x):
        gg.set_grad_enabled(False)
        return x * 2.0

    def in_a_block(x):
        with gg.set_grad_enabled(False):
            return x * 2.0

    x = gg.ones(2, requires_grad=True)
    with pytest.raises(gg.CompileError, match="switches grad mode off and leaves it so"):
        gg.compile(left_off)(x)
    assert gg.is_grad_enabled()
    step = gg.compile(in_a_block)
    for _ in range(2):
        assert not step(x).requires_grad and gg.is_grad_enabled()


def test_a_no_grad_update_of_a_tensor_that_requires_grad_is_refused_compiled():
    # Eager: new values, the old graph for the gradient; a plan cannot hold both.
    def fn(w):
        y = w * 2
        with gg.no_grad():
            y += 1
        return gg.grad([(y * y).sum()], [w])[0]

    w = gg.tensor([1.0, 2.0], requires_grad=True)
    assert fn(w).numpy().tolist() == [12.0, 20.0]
    with pytest.raises(gg.CompileError, match="in-place update under no_grad of a tensor "
                                              "that requires grad"):
        gg.compile(fn)(w)


@pytest.mark.filterwarnings("ignore:.*tracing anew")
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_numpy_floats_and_floats_in_tuples_are_told_apart_by_their_bits_too():
    by_number = gg.compile(lambda x, s: x / s)
    by_tuple = gg.compile(lambda x, s: x / s[0])
    x = gg.ones(1)
    assert by_number(x, np.float32(0.0)).item() == np.inf
    assert by_number(x, np.float32(-0.0)).item() == -np.inf
    assert by_tuple(x, (0.0,)).item() == np.inf and by_tuple(x, (-0.0,)).item() == -np.inf


def test_keyword_only_numbers_are_told_apart_by_their_types_and_bits_too():
    """A keyword-only argument is a constant of the plan as a positional number is: -0.0
    is not 0.0 (x / s), 2 is not 2.0 (an integer tensor times it), and a NaN keeps its
    plan."""
    def f(x, *, s):
        return x / s, x.astype("int64") * s

    compiled = gg.compile(f)
    x = gg.tensor([1.0, -2.0])
    for s in (0.0, -0.0, 2, 2.0, float("nan"), float("nan")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gg.CompileWarning)
            got = compiled(x, s=s)
        for a, b in zip(got, f(x, s=s), strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a.numpy(), b.numpy())
            np.testing.assert_array_equal(np.signbit(a.numpy()), np.signbit(b.numpy()))
    assert len(compiled.log) == 5  # the second NaN ran the first one's plan


def test_a_new_trace_for_an_equal_number_of_another_type_names_both_types():
    def f(x, s, *, k=1.0):
        return x * (s[0] if isinstance(s, tuple) else s) * k

    compiled = gg.compile(f)
    x = gg.ones(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gg.CompileWarning)
        compiled(x, 2.0)
        compiled(x, np.float32(2.0))
        compiled(x, np.float32(2.0), k=np.float64(1.0))
        compiled(x, (1, 2.0))
        compiled(x, (1, np.float32(2.0)))
    assert compiled.log[1:] == [
        "argument 1: float 2.0 -> numpy.float32 2.0",
        "keyword arguments {'k': float 1.0} -> {'k': numpy.float64 1.0}",
        "argument 1: 2.0 -> (1, 2.0)",
        "argument 1: tuple (int 1, float 2.0) -> tuple (int 1, numpy.float32 2.0)"]


def test_reasons_for_new_traces_tell_keyword_only_arguments_from_positional_ones():
    """A function taking *args and keyword-only ones binds every call (the keyword-only
    defaults are part of each key); the reasons count the positional arguments alone and
    say which keyword-only ones changed."""
    def spread(x, *rest, k=2):
        return x * k + sum(rest) if rest else x * k

    def scaled(x, **options):
        return x * options.get("s", 1.0)

    x, y = gg.ones(2), gg.zeros(2)
    first, second = gg.compile(spread), gg.compile(scaled)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gg.CompileWarning)
        for args, kwargs in [((x,), {}), ((x, y), {}), ((x, y), {"k": 3}), ((x, y, y), {"k": 3})]:
            np.testing.assert_array_equal(first(*args, **kwargs).numpy(),
                                          spread(*args, **kwargs).numpy())
        second(x)
        second(x, s=2.0)
    assert first.log == ["first call", "2 arguments instead of 1",
                         "keyword arguments {'k': 2} -> {'k': 3}", "3 arguments instead of 2"]
    assert second.log == ["first call", "keyword arguments {} -> {'s': 2.0}"]


def test_results_that_hold_no_tensor_come_back_as_they_are():
    import enum

    class Phase(enum.Enum):
        TRAIN = 1

    compiled = gg.compile(lambda x: (x.sum(), x.device, Phase.TRAIN, range(2), None))
    for scale in (1.0, 2.0):
        total, device, phase, steps, nothing = compiled(gg.ones(2) * scale)
        assert total.item() == 2 * scale and device == "cpu" and phase is Phase.TRAIN
        assert steps == range(2) and nothing is None


# --- Python values the function reads: guarded -------------------------------------------
def module_with(source, **variables):
    """A module's namespace holding `variables` and the functions of `source`."""
    namespace = {"gg": gg, **variables}
    exec(source, namespace)
    return namespace


def test_a_global_number_the_function_reads_is_guarded_rebinding_it_traces_anew():
    module = module_with("def f(x):\n    return x * scale\n", scale=2.0)
    f = gg.compile(module["f"])
    x = gg.ones(3)
    assert f(x).numpy().tolist() == [2.0, 2.0, 2.0]
    module["scale"] = 3.0
    with pytest.warns(gg.CompileWarning, match="global variable 'scale' that f reads "
                      r"changed \(it was 2.0"):
        assert f(x).numpy().tolist() == [3.0, 3.0, 3.0]
    module["scale"] = 2.0  # back to the first value: its plan runs again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(x).numpy().tolist() == [2.0, 2.0, 2.0]
    assert len(f.log) == 2


def test_a_flag_that_chose_a_branch_and_an_enclosing_variable_are_guarded():
    module = module_with("def f(x):\n    return x + 1 if DEBUG else x\n", DEBUG=False)
    f = gg.compile(module["f"])
    x = gg.ones(2)
    assert f(x).numpy().tolist() == [1.0, 1.0]
    module["DEBUG"] = True
    with pytest.warns(gg.CompileWarning, match="'DEBUG'"):
        assert f(x).numpy().tolist() == [2.0, 2.0]

    def scaled_by(k):
        return gg.compile(lambda x: x * k)

    k = 4.0
    g = scaled_by(k)
    assert g(x).numpy().tolist() == [4.0, 4.0]
    assert g.log == ["first call"]  # each closure has its own cell and plans


# (pytest.warns re-raises the warnings it did not match, x / 0's among them, from a place
# the filter of gpugrad's own kernels' warnings does not name)
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_a_guarded_float_tells_minus_zero_from_zero_and_a_nan_keeps_its_plan():
    module = module_with("def f(x):\n    return x / d\n", d=0.0)
    f = gg.compile(module["f"])
    x = gg.ones(1)
    assert f(x).item() == float("inf")
    module["d"] = -0.0
    with pytest.warns(gg.CompileWarning, match="'d'"):
        assert f(x).item() == float("-inf")
    module["d"] = float("nan")
    with pytest.warns(gg.CompileWarning, match="'d'"):
        f(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NaN read again is the same NaN: no trace
        assert np.isnan(f(x).item())


def test_a_variable_the_function_assigns_is_not_guarded():
    # The assignment runs at the trace only; a guard on it would fail at every call.
    module = module_with("calls = 0\n"
                         "def f(x):\n"
                         "    global calls\n"
                         "    calls += 1\n"
                         "    return x * 2\n")
    f = gg.compile(module["f"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            f(gg.ones(2))
    assert module["calls"] == 1 and len(f.log) == 1


def test_builtins_modules_and_objects_the_function_reads_add_no_guard():
    module = module_with("import math\n"
                         "def f(x):\n"
                         "    return x * len(shape) * math.pi + bias\n",
                         shape=(1, 2), bias=gg.ones(2))
    f = gg.compile(module["f"])
    f(gg.ones(2))
    guards = f.plan.program.guards
    assert [reason for _, _, reason in guards] == [
        "the global variable 'shape' that f reads changed (it was (1, 2); pass values that "
        "vary as arguments)",  # a tuple of numbers is guarded; len, math not
        "the global variable 'bias' that f reads holds another tensor (it held one of "
        "shape (2,); pass tensors that vary as arguments)"]  # a tensor by identity


def test_a_global_tensor_rebound_to_another_tensor_traces_anew():
    """The plan reads a global tensor's values on every run, from the tensor it was
    traced with: rebinding the variable to another tensor traces anew (a plan reading
    the old one would give its values)."""
    module = module_with("def f(x):\n"
                         "    return x * weight\n", weight=gg.tensor([1.0, 2.0]))
    f = gg.compile(module["f"])
    x = gg.ones(2)
    for values in ([1.0, 2.0], [5.0, 6.0], [5.0, 6.0]):
        if values != module["weight"].tolist():
            module["weight"] = gg.tensor(values)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gg.CompileWarning)
            np.testing.assert_array_equal(f(x).numpy(), np.array(values, "float32"))
    module["weight"] *= 2  # (an in-place update: the same tensor, new values)
    np.testing.assert_array_equal(f(x).numpy(), [10.0, 12.0])
    assert len(f.log) == 2 and "holds another tensor" in f.log[1]


def test_a_guarded_variable_rebound_to_an_equal_value_of_another_type_traces_anew():
    # True == 1 and 2.0 == np.float64(2.0), but a bool mask plus True stays bool where
    # plus 1 is int64, and gg.tensor makes float64 of a NumPy float64: the type counts.
    module = module_with("def f(mask, x):\n"
                         "    return mask + flag, x * gg.tensor(value)\n",
                         flag=True, value=2.0)
    f = gg.compile(module["f"])
    mask, x = gg.tensor([True, False]), gg.ones(2)
    for flag, value in ((True, 2.0), (1, 2.0), (1, np.float64(2.0))):
        module["flag"], module["value"] = flag, value
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gg.CompileWarning)
            compiled = f(mask, x)
        eager = module["f"](mask, x)
        for c, e in zip(compiled, eager, strict=True):
            assert c.dtype == e.dtype
            np.testing.assert_array_equal(c.numpy(), e.numpy())
    assert len(f.log) == 3


def test_a_tuple_argument_of_equal_numbers_of_other_types_has_a_plan_of_its_own():
    def f(mask, offsets):
        return mask + offsets[0]

    compiled = gg.compile(f)
    mask = gg.tensor([True, False])
    for offsets in ((True,), (1,), (True,)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gg.CompileWarning)
            result = compiled(mask, offsets)
        assert result.dtype == f(mask, offsets).dtype
        np.testing.assert_array_equal(result.numpy(), f(mask, offsets).numpy())
    assert len(compiled.log) == 2  # (True,) runs its plan again


def test_a_guarded_complex_nan_keeps_its_plan():
    # (nan+0j) == (nan+0j) is False, as for floats: compared by its bits instead.
    module = module_with("def f(x):\n    return x * abs(c)\n", c=complex("nan+1j"))
    f = gg.compile(module["f"])
    x = gg.ones(2)
    f(x)
    module["c"] = complex("nan+1j")  # another object, the same bits
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            assert np.isnan(f(x).numpy()).all()
    assert len(f.log) == 1


def test_a_variable_not_rebound_is_checked_by_identity_on_every_call(monkeypatch):
    # A guard runs on every call: a global left alone costs one `is`, however long the
    # tuple it holds; only a rebound one is compared by its bits.
    from gpugrad.compiler import reads

    module = module_with("def f(x):\n    return x * len(names) * scale\n",
                         names=tuple(f"class {i}" for i in range(1000)), scale=0.5)
    f = gg.compile(module["f"])
    x = gg.ones(2)
    f(x)
    compared, by_bits = [], reads.by_bits
    monkeypatch.setattr(reads, "by_bits", lambda v: compared.append(v) or by_bits(v))
    f(x)
    assert compared == []
    module["scale"] = float("0.5")  # another float of the same bits: no trace
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(x).numpy().tolist() == module["f"](x).numpy().tolist()
    assert compared == [0.5] and len(f.log) == 1


def test_a_nested_functions_own_variable_does_not_hide_the_global_of_that_name():
    module = module_with("def f(x):\n"
                         "    def doubled(y):\n"
                         "        scale = 2.0  # its own variable, which the lambda reads\n"
                         "        return (lambda: y * scale)()\n"
                         "    return doubled(x) * scale\n", scale=1.0)
    f = gg.compile(module["f"])
    x = gg.ones(2)
    f(x)
    module["scale"] = 3.0
    with pytest.warns(gg.CompileWarning, match="global variable 'scale'"):
        compiled = f(x)
    np.testing.assert_array_equal(compiled.numpy(), module["f"](x).numpy())


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd momentum nesterov"])
def test_a_learning_rate_given_as_a_numpy_scalar_updates_as_a_python_number_does(name):
    # NumPy computes with its scalars in their own dtype: eagerly, an lr of np.float64
    # made a float32 update in float64, and the compiled plan's float32 constants gave
    # other bits. Both now compute from Python numbers.
    (eager_model, eager_opt, eager), (model, opt, compiled) = eager_and_compiled(name)
    for lr, (x, y) in zip([np.float64(0.01), np.float32(0.5), 0.3, np.float16(0.1)],
                          batches(4), strict=True):
        for o in (eager_opt, opt):
            o.param_groups[0]["lr"] = lr
        assert compiled(x, y).item() == eager(x, y).item()
        assert_same_parameters(model, eager_model)


@pytest.mark.parametrize("betas", [(np.float32(0.9), np.float32(0.999)),
                                   [np.float64(0.8), np.float64(0.99)]])
def test_betas_changed_to_numpy_scalars_after_the_trace_update_as_eager_does(betas):
    # np.float32(0.9) == 0.9 in NumPy (it compares in float32), so the plan made for
    # Python numbers ran on with their constants; and betas set as a list kept NumPy's
    # float64 scalars in the eager update. Both now follow the eager step bit for bit.
    (eager_model, eager_opt, eager), (model, opt, compiled) = eager_and_compiled("adam")
    for i, (x, y) in enumerate(batches(5)):
        if i == 2:
            for o in (eager_opt, opt):
                o.param_groups[0]["betas"] = betas
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", gg.CompileWarning)
            assert compiled(x, y).item() == eager(x, y).item()
    assert_same_parameters(model, eager_model)


def test_a_decorated_functions_wrapped_code_is_read_for_guards_too():
    module = module_with("import functools\n"
                         "def logged(f):\n"
                         "    @functools.wraps(f)\n"
                         "    def wrapper(*args):\n"
                         "        return f(*args)\n"
                         "    return wrapper\n"
                         "@logged\n"
                         "def f(x):\n"
                         "    return x * scale\n", scale=2.0)
    f = gg.compile(module["f"])
    x = gg.ones(2)
    assert f(x).numpy().tolist() == [2.0, 2.0]
    module["scale"] = 5.0
    with pytest.warns(gg.CompileWarning, match="'scale' that f reads"):
        assert f(x).numpy().tolist() == [5.0, 5.0]
