"""gg.compile(fn, cuda_graph=True): the plan in graph-ready form (prepare, body, finish),
captured as a CUDA graph on a GPU and replayed.

What a graph needs of the plan is checked here on every machine: the body reads only
its inputs and constants (so a replay computes the new step from what prepare copied
in), every updated tensor keeps its array from run to run (so the addresses the graph
captured stay the tensors'), and run without a graph the plan gives eager training's
bits. The products a captured plan sends to cuBLAS directly are checked against a NumPy
model of column-major GEMM on every operand layout; the capture itself (and the
fallback when a capture fails) runs under the `gpu` marker.
"""

import warnings

import numpy as np
import pytest
from conftest import compile_quietly
from hypothesis import given
from test_compile import (
    OPTIMISERS,
    RNG,
    batches,
    eager_and_compiled,
    model_and_optimiser,
    random_programs,
    run_program,
    training_step,
)

import gpugrad as gg
import gpugrad.nn as nn
from gpugrad.backends import cublas
from gpugrad.compiler.cuda_graph import CudaGraphRunner
from gpugrad.compiler.static import COPY, FIXED, SCALARS
from gpugrad.optim import fused_update


def graph_ready(fn):
    return compile_quietly(fn, cuda_graph=True)


def static_plan(call):
    return call.compiled.plan.run


@pytest.mark.parametrize("one_op_update", [False, True], ids=["op by op", "one op"])
@pytest.mark.parametrize("name", OPTIMISERS)
def test_a_graph_ready_plan_follows_eager_training_bit_for_bit(name, one_op_update,
                                                               monkeypatch):
    if one_op_update:  # the CUDA configuration: kernels/optim.cu's update, here its NumPy twin
        monkeypatch.setattr(fused_update, "FUSED_UPDATE_BACKENDS", ("cupy", "numpy"))
    (eager_model, eager_opt, eager), (model, opt, step) = \
        eager_and_compiled(name, cuda_graph=True)
    for x, y in batches(6):
        assert step(x, y).item() == eager(x, y).item()
    for p, q in zip(model.parameters(), eager_model.parameters(), strict=True):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
    for state, eager_state in zip(opt.state.values(), eager_opt.state.values(), strict=True):
        for key, value in eager_state.items():
            np.testing.assert_array_equal(np.asarray(state[key]), np.asarray(value), key)
    assert len(step.compiled.plans) == 1


@given(random_programs())
def test_graph_ready_random_programs_equal_eager_bit_for_bit(steps):
    x = gg.tensor(RNG.standard_normal((4, 3)), requires_grad=True)
    y = gg.tensor(RNG.standard_normal((4, 3)), requires_grad=True)
    step = graph_ready(lambda x, y: [g for g in run_program(steps, x, y) if g is not None])
    for _ in range(3):
        ref = [g for g in run_program(steps, x, y) if g is not None]
        for a, b in zip(step(x, y), ref, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_on_a_cpu_the_plan_runs_without_a_graph_and_says_so():
    model, opt = model_and_optimiser(OPTIMISERS["sgd"])
    step = gg.compile(training_step(model, opt), cuda_graph=True)
    x, y = batches(1)[0]
    with pytest.warns(gg.CompileWarning, match="CUDA graphs need a CUDA device"):
        step(x, y)
    assert "def body(" in step.code  # the graph-ready plan, shown as code


def test_a_plan_with_a_collective_is_never_captured(monkeypatch):
    # DistributedDataParallel's gradient average is an op with effects: its kernel starts
    # an NCCL allreduce and waits for it on the host, which fails inside a capture (and a
    # failed wait aborts the NCCL communicator). On a CUDA device such a plan runs without
    # a graph from the start; here the CPU stands in for one.
    from gpugrad.compiler import cuda_graph
    from gpugrad.ops.custom import CustomOp

    monkeypatch.setattr(cuda_graph, "CAPTURE_BACKENDS", ("cupy", "numpy"))
    average = CustomOp("test::average", lambda g: g / 2, differentiable=False,
                       source="test")
    average.effects = True
    step = gg.compile(lambda x: average(x * 3), cuda_graph=True)
    x = gg.tensor([1.0, 2.0])
    with pytest.warns(gg.CompileWarning, match="calls test::average, which waits on the host"):
        step(x)
    assert step.plan.run.status.startswith("not captured: the function calls test::average")
    for _ in range(3):  # never a capture (which would use CuPy here)
        np.testing.assert_array_equal(step(x).numpy(), [1.5, 3.0])
    assert step.plan.run.captures == 0
    plain = gg.compile(lambda x: x * 3, cuda_graph=True)
    plain(x)
    assert plain.plan.run.status == "warming up"


def test_the_body_reads_nothing_but_its_inputs_and_constants():
    # What a graph replays: kernel calls on the body's arguments. Reading a tensor's
    # array, a .grad or the host scalars inside it would bake the capture's values in.
    model, opt = model_and_optimiser(OPTIMISERS["adam"])
    step = graph_ready(training_step(model, opt))
    for x, y in batches(2):
        step(x, y)
    body = static_plan(step).body
    names = set(body.__code__.co_names)
    # kernels (K, O), constants (c), checks of values eager makes on the host (C: NumPy);
    # on failure only, the undo of the host work (_U)
    assert names and all(n[0] in "KOcC" or n in ("_copyto", "_U", "BaseException")
                         for n in names), names
    assert set(body.__code__.co_varnames[:body.__code__.co_argcount]) >= {"a0", "a1"}


def test_updated_tensors_keep_their_arrays_from_run_to_run():
    # Parameters, optimiser state and gradients accumulated into are "fixed" inputs: a
    # captured graph reads and writes their arrays, so runs must not replace them.
    model, opt = model_and_optimiser(OPTIMISERS["sgd momentum nesterov"])

    def accumulate(x, y):  # no zero_grad: .grad is read and written on every run
        loss = gg.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    step = graph_ready(accumulate)
    data = batches(5)
    step(*data[0])
    with pytest.warns(gg.CompileWarning, match="tracing anew: a .grad accumulated into was None"):
        step(*data[1])  # a plan for .grad holding a gradient (as the first run left it)

    def arrays():
        return [id(p._data) for p in model.parameters()] + \
               [id(p.grad._data) for p in model.parameters()] + \
               [id(a) for s in opt.state.values() for a in s.values() if hasattr(a, "shape")]

    kept = arrays()
    for x, y in data[2:]:
        step(x, y)
        assert arrays() == kept
    slots = static_plan(step).slots
    assert slots.count(FIXED) == 4 * 3 and slots.count(COPY) == 2 and SCALARS in slots


@pytest.mark.filterwarnings("ignore:gg.compile.*tracing anew")
def test_gradients_accumulated_across_runs_equal_eager_ones():
    def make():
        gg.manual_seed(1)
        w = gg.randn(3, 2, requires_grad=True)

        def fn(x):
            (x @ w).tanh().sum().backward()
            return w.grad

        return w, fn

    (w, fn), (eager_w, eager) = make(), make()
    step = graph_ready(fn)
    for _ in range(4):
        x = gg.randn(5, 3)
        np.testing.assert_array_equal(step(x).numpy(), eager(x).numpy())
    np.testing.assert_array_equal(w.grad.numpy(), eager_w.grad.numpy())


@pytest.mark.parametrize("name", ["sgd momentum nesterov", "adam"])
def test_a_0d_parameter_trains_like_eager(name):
    def make():
        gg.manual_seed(2)
        w, b = gg.randn(3, requires_grad=True), gg.tensor(0.5, requires_grad=True)
        opt = OPTIMISERS[name]([w, b])

        def step(x):
            opt.zero_grad()
            loss = ((x @ w + b) ** 2).mean()
            loss.backward()
            opt.step()
            return loss

        return (w, b), step

    (params, step), (eager_params, eager) = make(), make()
    step = graph_ready(step)
    for _ in range(4):
        x = gg.randn(5, 3)
        assert step(x).item() == eager(x).item()
    for p, q in zip(params, eager_params, strict=True):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_views_of_a_parameter_taken_before_its_update_keep_the_old_values():
    def make():
        w = gg.tensor(np.arange(6.0, dtype="float32").reshape(3, 2), requires_grad=True)

        def fn(x):
            old, old_t = w.detach(), w.T
            (g,) = gg.grad([(x @ w).sum()], [w])
            with gg.no_grad():
                w.__isub__(0.5 * g)
            return old, old_t

        return fn

    eager, plain, ready = make(), gg.compile(make()), graph_ready(make())
    x = gg.ones((4, 3))
    for _ in range(3):
        want = [t.numpy() for t in eager(x)]
        for got in (plain(x), ready(x)):
            for a, b in zip(got, want, strict=True):
                np.testing.assert_array_equal(a.numpy(), b)


def test_a_result_of_the_tracing_call_is_not_an_array_the_plan_writes_into():
    w = gg.tensor([1.0, 2.0], requires_grad=True)

    def accumulate(x):
        (w * x).sum().backward()
        return w.grad

    step = graph_ready(accumulate)
    x = gg.ones(2)
    step(x)
    with pytest.warns(gg.CompileWarning, match="tracing anew"):
        traced = step(x)  # .grad holds a gradient now: a plan that adds to it
    ran = step(x)
    values = [traced.numpy().copy(), ran.numpy().copy()]
    step(x), step(x)  # the plan writes each new .grad into the array it read
    for result, value in zip([traced, ran], values, strict=True):
        np.testing.assert_array_equal(result.numpy(), value)


# --- the runner: warm-up, a checked capture, replays -------------------------------------------
class ReplayOnNumpy:
    """A stand-in for CUDA graphs where there is no GPU. "Capturing" keeps the body and
    its input buffers; a launch runs the body on those buffers (as a replay runs the
    captured kernels on the captured addresses) and puts its outputs in the captured
    list. It checks the runner's bookkeeping — what it copies into the buffers, when it
    captures, what it does when a graph is wrong or a capture fails — not CUDA.
    wrong=True: the launch gives other bits; fail=True: the capture raises;
    fail_in_body=True: it raises inside the body (as an op CUDA cannot capture does);
    fail_after=n: every launch after the n-th raises."""

    def __init__(self, wrong=False, fail=False, fail_in_body=False, fail_after=None):
        self.wrong, self.fail, self.fail_after = wrong, fail, fail_after
        self.fail_in_body = fail_in_body
        self.launches = self.released = 0

    def to_device(self, vector):
        return vector.copy()

    def write(self, buffer, vector):
        buffer[...] = vector

    def equal(self, a, b):
        return np.array_equal(a, b, equal_nan=True)

    def release(self, pool):
        self.released += 1

    def capture(self, body, buffers):
        if self.fail:
            raise RuntimeError("an op that cannot be captured")
        if self.fail_in_body:
            body(*[None] * len(buffers))
        outputs, stand_in = [], self

        class Graph:
            def launch(self):
                if stand_in.launches == stand_in.fail_after:
                    raise RuntimeError("cudaErrorLaunchFailure")
                stand_in.launches += 1
                outputs[:] = body(*buffers)
                if stand_in.wrong:
                    outputs[0] = outputs[0] + 1

        return Graph(), outputs, "a pool"


def with_runner(step, device):
    """Run the graph-ready plan of a traced compiled step through a CudaGraphRunner."""
    plan = step.compiled.plan
    plan.run = CudaGraphRunner(plan.run, "step", device)
    return plan.run


def test_the_runner_warms_up_captures_once_then_replays_like_eager_training():
    (eager_model, eager_opt, eager), (model, opt, step) = \
        eager_and_compiled("adam", cuda_graph=True)
    data, device = batches(7), ReplayOnNumpy()
    assert step(*data[0]).item() == eager(*data[0]).item()  # the trace
    runner = with_runner(step, device)
    for i, (x, y) in enumerate(data[1:]):
        assert step(x, y).item() == eager(x, y).item()
        assert runner.status == ("warming up" if i == 0 else "captured")
    assert runner.captures == 1 and device.launches == 6  # two to check, four replays
    for p, q in zip(model.parameters(), eager_model.parameters(), strict=True):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_a_gradient_from_before_the_call_halved_in_place_is_captured_once():
    """p.grad *= 0.5 on the .grad a call finds is written into that .grad's own array,
    as a gradient accumulated into: the graph reads the same array on the next call and
    replays (a new array each call captured anew, then gave up)."""
    def run(compiled):
        x = gg.tensor([1.0, 2.0], requires_grad=True)
        x.grad = gg.tensor([4.0, 8.0])

        def halve():
            with gg.no_grad():
                x.grad *= 0.5

        step = graph_ready(halve) if compiled else halve
        step()
        runner = with_runner(step, ReplayOnNumpy()) if compiled else None
        seen = []
        for _ in range(5):
            step()
            seen.append(x.grad.numpy().tolist())
        return seen, runner

    (seen, runner), (expected, _) = run(compiled=True), run(compiled=False)
    assert seen == expected
    assert runner.status == "captured" and runner.captures == 1


def test_a_tensor_given_a_new_array_is_captured_anew():
    (eager_model, eager_opt, eager), (model, opt, step) = \
        eager_and_compiled("sgd momentum nesterov", cuda_graph=True)
    data = batches(6)
    step(*data[0]), eager(*data[0])
    device = ReplayOnNumpy()
    runner = with_runner(step, device)
    for x, y in data[1:4]:
        assert step(x, y).item() == eager(x, y).item()
    weight = next(iter(model.parameters()))
    weight._data = weight._data.copy()  # as a user's code outside the step might
    with pytest.warns(gg.CompileWarning, match="capturing anew"):
        assert step(*data[4]).item() == eager(*data[4]).item()
    assert step(*data[5]).item() == eager(*data[5]).item()
    assert runner.captures == 2 and runner.status == "captured"
    assert device.released == 1  # the first graph's memory, given back


def test_a_dropped_plan_gives_its_graph_memory_back():
    model, opt = model_and_optimiser(OPTIMISERS["sgd"])
    step = compile_quietly(training_step(model, opt))
    step.compiled.max_plans = 1
    data, device = batches(4), ReplayOnNumpy()
    step(*data[0])
    runner = with_runner(step, device)
    for x, y in data[1:]:
        step(x, y)
    assert runner.status == "captured"
    x, y = batches(1, batch=3)[0]  # another batch size: a new plan, the old one dropped
    with pytest.warns(gg.CompileWarning) as caught:  # tracing anew, and:
        step(x, y)
    assert any("max_plans=1 kinds of arguments are kept" in str(w.message) for w in caught)
    assert runner.graph is None and device.released == 1


@pytest.mark.parametrize("problem", ["wrong", "fail", "fail_in_body"])
def test_a_graph_that_fails_its_check_is_dropped_and_the_step_stands(problem):
    # (a capture failing inside the body is not a failed step: its host work stands)
    (eager_model, eager_opt, eager), (model, opt, step) = \
        eager_and_compiled("adamw", cuda_graph=True)
    data = batches(5)
    step(*data[0]), eager(*data[0])
    device = ReplayOnNumpy(**{problem: True})
    runner = with_runner(step, device)
    step(*data[1]), eager(*data[1])
    expected = {"wrong": "differs from the plan run without it",
                "fail": "the capture failed .RuntimeError: an op that cannot be captured",
                "fail_in_body": "the capture failed .TypeError"}[problem]
    with pytest.warns(gg.CompileWarning, match=expected):
        assert step(*data[2]).item() == eager(*data[2]).item()
    for x, y in data[3:]:  # from then on, the plan without a graph
        assert step(x, y).item() == eager(x, y).item()
    assert runner.status.startswith("not captured") and runner.graph is None
    assert device.released == (problem == "wrong")  # a failed capture frees its own
    for p, q in zip(model.parameters(), eager_model.parameters(), strict=True):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_a_replay_that_fails_leaves_the_plan_without_a_graph_and_the_step_runs():
    (eager_model, eager_opt, eager), (model, opt, step) = \
        eager_and_compiled("adam", cuda_graph=True)
    data = batches(6)
    step(*data[0]), eager(*data[0])
    runner = with_runner(step, ReplayOnNumpy(fail_after=3))  # two to check, one replay
    for x, y in data[1:4]:
        assert step(x, y).item() == eager(x, y).item()
    with pytest.warns(gg.CompileWarning, match="a replay failed .RuntimeError"):
        assert step(*data[4]).item() == eager(*data[4]).item()
    assert step(*data[5]).item() == eager(*data[5]).item()
    assert runner.status.startswith("not captured: a replay failed")


@given(random_programs())
def test_random_programs_replayed_through_the_runner_equal_eager_bit_for_bit(steps):
    x = gg.tensor(RNG.standard_normal((4, 3)), requires_grad=True)
    y = gg.tensor(RNG.standard_normal((4, 3)), requires_grad=True)
    step = graph_ready(lambda x, y: [g for g in run_program(steps, x, y) if g is not None])
    step(x, y)
    runner = with_runner(step, ReplayOnNumpy())
    for _ in range(4):  # warm-up, capture and check, two replays
        x, y = (gg.tensor(RNG.standard_normal((4, 3)), requires_grad=True) for _ in "xy")
        ref = [g for g in run_program(steps, x, y) if g is not None]
        for a, b in zip(step(x, y), ref, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert runner.status == "captured"


def test_a_function_updating_its_argument_in_place_runs_without_a_graph():
    # A graph would write into its own copy of the argument, not the caller's array.
    def step(x):
        out = (x * 2.0).sum()
        with gg.no_grad():
            x -= 1.0
        return out

    compiled, x, eager_x = graph_ready(step), gg.zeros(3), gg.zeros(3)
    compiled(x), step(eager_x)
    runner = with_runner(compiled, ReplayOnNumpy())
    with pytest.warns(gg.CompileWarning, match="updates an argument in place"):
        compiled(x)
    step(eager_x)
    for _ in range(2):
        assert compiled(x).item() == step(eager_x).item()
        np.testing.assert_array_equal(x.numpy(), eager_x.numpy())
    assert runner.status.startswith("not captured")


def test_argument_buffers_keep_the_arguments_memory_order():
    # Reductions add in memory order: a graph's copy of a column-major argument is
    # column-major too, or its sums would differ in the last bits.
    step = graph_ready(lambda x: (x.sum(axis=0), x.mean()))
    x = gg.tensor(np.asfortranarray(RNG.standard_normal((64, 33))))
    step(x)
    with_runner(step, ReplayOnNumpy())
    for _ in range(3):
        for got, want in zip(step(x), (x.sum(axis=0), x.mean()), strict=True):
            np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_tensors_given_new_arrays_call_after_call_end_the_captures():
    w = gg.tensor([1.0, 2.0])
    step = graph_ready(lambda x: (w * x).sum())
    x = gg.ones(2)
    step(x)
    runner = with_runner(step, ReplayOnNumpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gg.CompileWarning)
        for _ in range(8):
            w._data = w._data + 1.0  # a new array each time, as `w = w + 1` code does
            assert step(x).item() == (w * x).sum().item()
    assert runner.captures == 3 and runner.status.startswith("not captured: tensors")


# --- cuBLAS's view of row-major operands --------------------------------------------------------
def column_major(x, ld, rows, cols):
    """x's memory, from its first element, read as a column-major rows x cols matrix."""
    return np.lib.stride_tricks.as_strided(x, shape=(rows, cols),
                                           strides=(x.itemsize, ld * x.itemsize))


def model_gemm(a, b):
    """a @ b as cublas<t>gemm computes it from gemm_call's arguments, modelled in NumPy."""
    layouts = [cublas.operand(x.shape, x.strides, x.itemsize) for x in (a, b)]
    ta, tb, m, n, k, lda, ldb, ldc = cublas.gemm_call(*layouts, a.shape[0], b.shape[1],
                                                      a.shape[1])
    first = column_major(b, lda, *((k, m) if ta else (m, k)))  # B's memory comes first
    second = column_major(a, ldb, *((n, k) if tb else (k, n)))
    product = (first.T if ta else first) @ (second.T if tb else second)  # m x n col-major
    assert ldc == m
    return product.T  # the row-major (a.rows x b.cols) matrix C


def layouts(rows, cols):
    """Row-major views of one shape as a plan makes them: C order, a transpose, rows of a
    wider array, every other row, a single row or column."""
    rng = np.random.default_rng(rows * 10 + cols)
    base = rng.standard_normal((rows, cols))
    wide = rng.standard_normal((rows, cols + 3))
    tall = rng.standard_normal((2 * rows, cols))
    return {"C order": base, "transposed": np.ascontiguousarray(base.T).T,
            "rows of a wider array": wide[:, :cols], "every other row": tall[::2]}


@pytest.mark.parametrize("shapes", [(4, 3, 5), (1, 6, 2), (5, 1, 3), (3, 4, 1), (2, 2, 2)])
def test_gemm_arguments_give_the_row_major_product_on_every_layout(shapes):
    m, k, n = shapes
    for a_name, a in layouts(m, k).items():
        for b_name, b in layouts(k, n).items():
            np.testing.assert_allclose(model_gemm(a, b), a @ b, rtol=1e-12,
                                       err_msg=f"{a_name} @ {b_name}")


def test_layouts_cublas_cannot_read_are_copied_first():
    x = np.zeros((4, 6))
    assert cublas.operand(x[:, ::2].shape, x[:, ::2].strides, 8) is None  # strided columns
    broadcast = np.broadcast_to(np.zeros(3), (4, 3))
    assert cublas.operand(broadcast.shape, broadcast.strides, 8) is None


# --- on a GPU -------------------------------------------------------------------------------------
def cuda_model(make_opt):
    gg.manual_seed(5)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 10)).to("cuda")
    return model, make_opt(model.parameters())


def cuda_batches(n):
    rng = np.random.default_rng(3)
    return [(gg.tensor(rng.standard_normal((16, 20)).astype("float32")).to("cuda"),
             gg.tensor(rng.integers(0, 10, 16)).to("cuda")) for _ in range(n)]


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["adamw", "sgd momentum nesterov", "sgd"])
def test_a_plan_captured_as_a_cuda_graph_trains_like_eager(name):
    (eager_model, eager_opt), (model, opt) = (cuda_model(OPTIMISERS[name]),
                                              cuda_model(OPTIMISERS[name]))
    eager = training_step(eager_model, eager_opt)
    step = gg.compile(training_step(model, opt), cuda_graph=True)
    losses = []
    for x, y in cuda_batches(8):
        losses.append(step(x, y))  # kept: a later replay must not overwrite a result
        expected = eager(x, y).item()
        np.testing.assert_allclose(losses[-1].item(), expected, rtol=1e-5)
    runner = step.plan.run
    assert runner.status == "captured" and runner.captures == 1
    assert len({loss.item() for loss in losses}) == len(losses)
    for p, q in zip(model.parameters(), eager_model.parameters(), strict=True):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
def test_a_parameter_given_a_new_array_is_read_through_a_new_capture():
    model, opt = cuda_model(OPTIMISERS["sgd"])
    step = gg.compile(training_step(model, opt), cuda_graph=True)
    data = cuda_batches(4)
    for x, y in data[:3]:
        step(x, y)
    weight = next(iter(model.parameters()))
    weight._data = weight._data.copy()
    with pytest.warns(gg.CompileWarning, match="capturing anew"):
        step(*data[3])
    assert step.plan.run.captures == 2 and step.plan.run.status == "captured"


@pytest.mark.gpu
def test_a_capture_that_fails_leaves_a_plan_without_a_graph_and_says_why():
    # A batched product goes to cupy.matmul, which refuses to call cuBLAS in a capture.
    w = gg.randn(3, 4, 5, device="cuda")

    def fn(x):
        return (x @ w).sum()

    step = gg.compile(fn, cuda_graph=True)
    x = gg.randn(3, 2, 4, device="cuda")
    step(x)
    step(x)
    with pytest.warns(gg.CompileWarning, match="runs without a CUDA graph"):
        got = step(x)
    np.testing.assert_allclose(got.item(), fn(x).item(), rtol=1e-5)
    assert step.plan.run.status.startswith("not captured")
    np.testing.assert_allclose(step(x).item(), fn(x).item(), rtol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cublas_gemm_agrees_with_cupy_matmul_on_every_layout(dtype):
    import cupy

    for m, k, n in [(4, 3, 5), (1, 6, 2), (5, 1, 3), (64, 32, 16)]:
        for a_name, a in layouts(m, k).items():
            for b_name, b in layouts(k, n).items():
                a_gpu = cupy.asarray(a.astype(dtype))
                b_gpu = cupy.asarray(b.astype(dtype))
                if a_name == "transposed":
                    a_gpu = cupy.asfortranarray(a_gpu)
                if b_name == "transposed":
                    b_gpu = cupy.asfortranarray(b_gpu)
                got = cublas.gemm(cupy, a_gpu, b_gpu)
                np.testing.assert_allclose(cupy.asnumpy(got), a.astype(dtype) @ b.astype(dtype),
                                           rtol=1e-5, err_msg=f"{a_name} @ {b_name}")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_optimiser_kernels_read_per_step_scalars_from_the_device_as_given_by_value(dtype):
    import cupy

    from gpugrad.backends import fused

    rng = np.random.default_rng(0)
    arrays = [cupy.asarray(rng.standard_normal(1000).astype(dtype)) for _ in range(4)]
    arrays[3] = abs(arrays[3])
    by_value = [a.copy() for a in arrays]
    scalars = {"scale": 0.999, "step_size": 1e-3 / 0.1, "sqrt_bias2": 0.0316}
    on_device = {k: cupy.asarray(np.array(v, dtype=dtype)) for k, v in scalars.items()}
    settings = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01, "l2": False,
                "scales": True}
    fused.adam_step_cupy(*by_value, **settings, **scalars)
    fused.adam_step_cupy(*arrays, **settings, **on_device)
    for a, b in zip(arrays, by_value, strict=True):
        cupy.testing.assert_array_equal(a, b)
    p, g, buf = (cupy.asarray(rng.standard_normal(100).astype(dtype)) for _ in range(3))
    p2, buf2 = p.copy(), buf.copy()
    sgd = {"weight_decay": 1e-3, "momentum": 0.9, "nesterov": True}
    fused.sgd_step_cupy(p, g, buf, lr=0.1, dampening_factor=1.0, **sgd)
    fused.sgd_step_cupy(p2, g, buf2, lr=cupy.asarray(np.array(0.1, dtype=dtype)),
                        dampening_factor=cupy.asarray(np.array(1.0, dtype=dtype)), **sgd)
    cupy.testing.assert_array_equal(p, p2)
    cupy.testing.assert_array_equal(buf, buf2)
