"""Property tests: gradients of random expression DAGs.

Hypothesis builds random programs: 1-3 float64 inputs of small shapes, then a list of
nodes, each applying one op to one or two *earlier* nodes (any earlier node, so nodes are
reused and the DAG has shared subexpressions whose gradients must add up). The scalar
output is the sum of the last few nodes, and of every node nothing else reads, each
times fixed random weights.

The same program runs on three interpreters: gpugrad, NumPy (for central finite
differences, perturbing the NumPy inputs one entry at a time) and, where installed,
PyTorch. gpugrad's gradients must agree with both, and ``gg.gradcheck`` must accept
every such program.

Input values and weights come from a NumPy generator seeded by Hypothesis: the
structure (ops, wiring, shapes) is what Hypothesis explores and shrinks, while the
values stay generic, clear of the clip corners where a derivative is undefined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import gpugrad as gg

try:
    import torch
except ImportError:  # PyTorch is an optional reference
    torch = None

EPS = 1e-6
FD_TOL = 1e-5  # relative and absolute, finite differences against gpugrad
TORCH_RTOL = 1e-9  # gpugrad against PyTorch: same maths, only rounding differs
VALUE_BOUND = 1e3  # programs whose intermediates exceed this are discarded

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# --------------------------------------------------------------------------------------
# Programs
# --------------------------------------------------------------------------------------

INPUT_SHAPES = [(), (3,), (2, 3), (2, 1)]  # any two broadcast together
UNARY_OPS = ("tanh", "sigmoid", "exp_of_clip", "square", "sum_broadcast")
BINARY_OPS = ("add", "sub", "mul", "div_soft")
CLIP_LO, CLIP_HI = -3.0, 3.0


@dataclass(frozen=True)
class Step:
    """A node: ``op`` applied to earlier nodes ``args`` (inputs are nodes 0..n-1).
    ``axis`` is the reduced axis of ``sum_broadcast`` (None on a 0-d node)."""

    op: str
    args: tuple
    axis: int | None = None


@dataclass(frozen=True)
class Program:
    input_shapes: tuple
    steps: tuple
    node_shapes: tuple  # of inputs, then of steps
    outputs: tuple  # the nodes summed (with weights) into the scalar output
    seed: int

    def inputs(self):
        rng = np.random.default_rng(self.seed)
        return [rng.uniform(-2.0, 2.0, size=shape) for shape in self.input_shapes]

    def weights(self):
        rng = np.random.default_rng(self.seed + 1)
        return [rng.standard_normal(self.node_shapes[i]) for i in self.outputs]


@st.composite
def programs(draw):
    """A random Program; every node feeds the output, directly or through later nodes."""
    n_inputs = draw(st.integers(1, 3))
    input_shapes = tuple(draw(st.sampled_from(INPUT_SHAPES)) for _ in range(n_inputs))
    shapes = list(input_shapes)
    steps = []
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(UNARY_OPS + BINARY_OPS))
        a = draw(st.integers(0, len(shapes) - 1))
        if op in BINARY_OPS:
            b = draw(st.integers(0, len(shapes) - 1))
            steps.append(Step(op, (a, b)))
            shapes.append(tuple(np.broadcast_shapes(shapes[a], shapes[b])))
        else:
            ndim = len(shapes[a])
            axis = draw(st.integers(0, ndim - 1)) if op == "sum_broadcast" and ndim else None
            steps.append(Step(op, (a,), axis))
            shapes.append(shapes[a])
    n_last = draw(st.integers(1, min(3, len(steps))))
    read = {arg for step in steps for arg in step.args}
    sinks = {i for i in range(len(shapes)) if i not in read}
    outputs = tuple(sorted(sinks | set(range(len(shapes) - n_last, len(shapes)))))
    seed = draw(st.integers(0, 2**32 - 1))
    return Program(input_shapes, tuple(steps), tuple(shapes), outputs, seed)


# --------------------------------------------------------------------------------------
# Interpreters: one program, three array libraries
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    tanh: Callable
    sigmoid: Callable
    exp: Callable
    clip: Callable
    sum: Callable  # sum(x, axis) with axis an int or None
    constant: Callable  # a float64 numpy array as this library's (non-differentiable) array


NUMPY = Backend(
    tanh=np.tanh,
    sigmoid=lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)),
    exp=np.exp,
    clip=np.clip,
    sum=lambda x, axis: x.sum(axis=axis),
    constant=lambda a: a,
)

GPUGRAD = Backend(
    tanh=lambda x: x.tanh(),
    sigmoid=lambda x: x.sigmoid(),
    exp=lambda x: x.exp(),
    clip=lambda x, lo, hi: x.clip(lo, hi),
    sum=lambda x, axis: x.sum(axis=axis),
    constant=lambda a: gg.tensor(a),
)

if torch is not None:
    TORCH = Backend(
        tanh=torch.tanh,
        sigmoid=torch.sigmoid,
        exp=torch.exp,
        clip=torch.clamp,
        sum=lambda x, axis: x.sum() if axis is None else x.sum(dim=axis),
        constant=torch.from_numpy,
    )


def apply(step, args, shape, be):
    """One node of the program in backend ``be``."""
    if step.op == "add":
        return args[0] + args[1]
    if step.op == "sub":
        return args[0] - args[1]
    if step.op == "mul":
        return args[0] * args[1]
    if step.op == "div_soft":
        return args[0] / (1.5 + args[1] * args[1])
    (x,) = args
    if step.op == "tanh":
        return be.tanh(x)
    if step.op == "sigmoid":
        return be.sigmoid(x)
    if step.op == "exp_of_clip":
        return be.exp(be.clip(x, CLIP_LO, CLIP_HI))
    if step.op == "square":
        return x * x
    if step.op == "sum_broadcast":
        kept = tuple(1 if i == step.axis else n for i, n in enumerate(shape))
        return x + be.sum(x, step.axis).reshape(kept)
    raise AssertionError(step.op)


def run_nodes(program, xs, be):
    """Every node's value, inputs first."""
    nodes = list(xs)
    for step, shape in zip(program.steps, program.node_shapes[len(xs) :], strict=True):
        nodes.append(apply(step, [nodes[i] for i in step.args], shape, be))
    return nodes


def run(program, xs, be):
    """The program's scalar output: sum over output nodes of (node * weight).sum()."""
    nodes = run_nodes(program, xs, be)
    terms = [
        (nodes[i] * be.constant(w)).sum()
        for i, w in zip(program.outputs, program.weights(), strict=True)
    ]
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def well_conditioned(program):
    """All intermediates finite and moderate, so central differences are accurate."""
    nodes = run_nodes(program, program.inputs(), NUMPY)
    return all(np.all(np.abs(v) < VALUE_BOUND) for v in nodes)


def finite_difference_gradients(program):
    """Central differences of the NumPy program, one input entry at a time."""
    arrays = program.inputs()
    grads = []
    for i, a in enumerate(arrays):
        g = np.zeros_like(a)
        for j in np.ndindex(a.shape):
            plus = [x.copy() for x in arrays]
            minus = [x.copy() for x in arrays]
            plus[i][j] += EPS
            minus[i][j] -= EPS
            g[j] = (run(program, plus, NUMPY) - run(program, minus, NUMPY)) / (2 * EPS)
        grads.append(g)
    return grads


def gg_inputs(program):
    return [gg.tensor(a, requires_grad=True) for a in program.inputs()]


def describe(program):
    return f"steps={program.steps} shapes={program.node_shapes} outputs={program.outputs}"


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------


@SETTINGS
@given(programs())
def test_grad_matches_finite_differences(program):
    """For random DAGs with shared subexpressions, gg.grad of the scalar output equals
    central finite differences of the same program run in NumPy, and the forward value
    equals NumPy's."""
    assume(well_conditioned(program))
    xs = gg_inputs(program)
    out = run(program, xs, GPUGRAD)
    np.testing.assert_allclose(
        out.numpy(),
        run(program, program.inputs(), NUMPY),
        rtol=1e-10,
        atol=1e-10,
        err_msg=describe(program),
    )
    grads = gg.grad(out, xs)
    for i, (got, want) in enumerate(zip(grads, finite_difference_gradients(program), strict=True)):
        assert got.shape == want.shape
        np.testing.assert_allclose(
            got.numpy(), want, rtol=FD_TOL, atol=FD_TOL, err_msg=f"input {i}: {describe(program)}"
        )


@SETTINGS
@given(programs())
def test_backward_accumulates_into_grad_like_finite_differences(program):
    """out.backward() leaves on each input a .grad equal to central finite differences:
    the contributions of every path through shared nodes are summed."""
    assume(well_conditioned(program))
    xs = gg_inputs(program)
    run(program, xs, GPUGRAD).backward()
    for i, (x, want) in enumerate(zip(xs, finite_difference_gradients(program), strict=True)):
        assert x.grad is not None, f"input {i} got no .grad: {describe(program)}"
        np.testing.assert_allclose(
            x.grad.numpy(),
            want,
            rtol=FD_TOL,
            atol=FD_TOL,
            err_msg=f"input {i}: {describe(program)}",
        )


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
@SETTINGS
@given(programs())
def test_grad_matches_torch(program):
    """The same random DAG run in PyTorch gives the same output and gradients, up to
    rounding."""
    assume(well_conditioned(program))
    txs = [torch.tensor(a, requires_grad=True) for a in program.inputs()]
    t_out = run(program, txs, TORCH)
    t_grads = torch.autograd.grad(t_out, txs)

    xs = gg_inputs(program)
    out = run(program, xs, GPUGRAD)
    np.testing.assert_allclose(
        out.numpy(), t_out.detach().numpy(), rtol=TORCH_RTOL, atol=1e-12, err_msg=describe(program)
    )
    for i, (got, want) in enumerate(zip(gg.grad(out, xs), t_grads, strict=True)):
        want = want.numpy()
        scale = max(1.0, float(np.abs(want).max(initial=0.0)))
        np.testing.assert_allclose(
            got.numpy(),
            want,
            rtol=TORCH_RTOL,
            atol=1e-12 * scale,
            err_msg=f"input {i}: {describe(program)}",
        )


@SETTINGS
@given(programs())
def test_gradcheck_accepts_correct_scalar_functions(program):
    """gg.gradcheck returns True for any function built from contract ops (here, a
    random DAG with a scalar output) on float64 inputs."""
    assume(well_conditioned(program))
    assert gg.gradcheck(lambda *xs: run(program, xs, GPUGRAD), gg_inputs(program)) is True


@SETTINGS
@given(programs())
def test_gradcheck_accepts_correct_tensor_valued_functions(program):
    """gg.gradcheck also returns True when the function's output is a tensor rather than
    a scalar (here the last node plus the weighted sums of the other output nodes, so
    every input is used)."""
    assume(well_conditioned(program))

    def fn(*xs):
        nodes = run_nodes(program, xs, GPUGRAD)
        *others, last = program.outputs
        out = nodes[last]
        for i, w in zip(others, program.weights()[:-1], strict=True):
            out = out + (nodes[i] * gg.tensor(w)).sum()
        return out

    assert gg.gradcheck(fn, gg_inputs(program)) is True


def test_gradcheck_rejects_a_wrong_vjp():
    """gradcheck is not vacuous: an op whose VJP is wrong (forward 2x, VJP 3 * grad)
    makes it raise gg.GradcheckError, while the same op with the right VJP passes.
    The ops are declared through the op registry, the layer every op is defined with."""
    from gpugrad.ops import define
    from gpugrad.ops.infer import unary_same

    def make_double(name, factor):
        return define(name, infer=unary_same, forward=lambda xp, x: 2.0 * x,
                      vjp=lambda ctx, grad: (grad * factor,))

    right = make_double("test_properties::double_right_vjp", 2.0)
    wrong = make_double("test_properties::double_wrong_vjp", 3.0)
    x = gg.tensor(np.linspace(-1.0, 1.0, 5), requires_grad=True)

    assert gg.gradcheck(lambda t: right(t), [x]) is True
    with pytest.raises(gg.GradcheckError):
        gg.gradcheck(lambda t: wrong(t), [x])


def test_gradcheck_checks_float32_inputs_as_float64_copies():
    # Tensors are float32 by default: gradcheck takes them and works in float64, where
    # finite differences are accurate; the caller's tensor is left as it was.
    x = gg.randn(2, 3, requires_grad=True)
    assert gg.gradcheck(lambda t: (t * t.sigmoid()).sum(axis=1), [x]) is True
    assert x.dtype == np.float32 and x.grad is None
    double_right = gg.custom_op("test_properties::double_for_float32")(lambda x: 2.0 * x)
    double_right.register_vjp(lambda ctx, grad: (grad * 3.0,))  # wrong: still caught
    with pytest.raises(gg.GradcheckError):
        gg.gradcheck(double_right, [x])


@pytest.mark.parametrize("inputs", [
    [gg.randn(3)],
    [np.linspace(-1.0, 1.0, 3)],
    [gg.tensor([1.0, 2.0], dtype="float64"), np.ones(2)],
], ids=["a tensor without requires_grad", "a numpy array", "float64 inputs, none requiring grad"])
def test_gradcheck_refuses_to_check_nothing_when_no_input_requires_grad(inputs):
    """gradcheck is not vacuous either way round: with no input requiring grad there is
    nothing to compare, and a returned True would prove nothing."""
    with pytest.raises(ValueError, match="no input requires grad") as excinfo:
        gg.gradcheck(lambda *xs: sum(x * 2.0 for x in xs), inputs)
    assert isinstance(excinfo.value, gg.GpugradError)
    assert "requires_grad=True" in str(excinfo.value) and "float64" in str(excinfo.value)


def test_gradcheck_checks_second_derivatives_through_gg_grad():
    """A function that differentiates (gg.grad with create_graph=True) is checked like
    any other: its finite differences run with gradients on, so the second derivative
    of x sigmoid(x) is checked, and a VJP that is wrong only in its own derivative (it
    detaches) is caught."""
    x = gg.tensor([0.3, -0.7, 1.2], dtype="float64", requires_grad=True)

    def first_derivative(op):
        return lambda t: gg.grad(op(t).sum(), [t], create_graph=True)[0]

    assert gg.gradcheck(first_derivative(lambda t: t * t.sigmoid()), [x]) is True
    swish = gg.custom_op("test_properties::swish_detached_vjp", replace=True)(
        lambda a: a / (1 + np.exp(-a)))

    @swish.register_vjp
    def _(ctx, grad):  # right values, but built from a host copy: no second derivative
        s = 1 / (1 + np.exp(-ctx.inputs[0].numpy()))
        return (grad * gg.tensor(s * (1 + ctx.inputs[0].numpy() * (1 - s))),)

    assert gg.gradcheck(swish, [x]) is True
    with pytest.raises(gg.GradcheckError, match="analytical"):
        gg.gradcheck(first_derivative(swish), [x])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gradcheck_moves_a_tensor_passed_twice_everywhere_it_is_passed(dtype):
    # f(x, x) = x * x: its gradient is 2x; moving one argument alone would measure x.
    x = gg.tensor([0.5, -1.5, 2.0], dtype=dtype, requires_grad=True)
    assert gg.gradcheck(lambda a, b: a * b, [x, x]) is True
    half = gg.custom_op("test_properties::square_half_vjp", replace=True)(lambda a, b: a * b)
    half.register_vjp(lambda ctx, grad: (grad * ctx.inputs[1], grad * 0.0))  # forgets b
    with pytest.raises(gg.GradcheckError):
        gg.gradcheck(half, [x, x])
