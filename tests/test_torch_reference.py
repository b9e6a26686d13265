"""Cross-checks of gpugrad against PyTorch, op by op, in float64.

Every op of the public contract is run on random float64 inputs in gpugrad and in
PyTorch (the reference). For each case we compare:

* the forward value (and its shape and dtype),
* the gradient of ``sum(output * w)`` for fixed random weights ``w`` with respect to
  every input, once through ``gg.grad`` and once through ``.backward()`` / ``.grad``,

to ``rtol=1e-10``. A second table of compositions checks second derivatives: the
gradient is taken with ``create_graph=True`` and then differentiated again through
``(grad * v).sum()``, against PyTorch's double backward.

Expected values come from PyTorch only, never from gpugrad. The whole file is skipped
where PyTorch is not installed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gpugrad as gg  # noqa: E402

RTOL = 1e-10
ATOL = 1e-12


# --------------------------------------------------------------------------------------
# Input samplers: each takes a numpy Generator and returns a float64 array.
# --------------------------------------------------------------------------------------


def normal(*shape):
    """Standard normal entries (any sign, no exact zeros in practice)."""
    return lambda rng: rng.standard_normal(shape)


def positive(*shape):
    """Entries in [0.5, 2): safe for log, sqrt, division and as a base of **."""
    return lambda rng: rng.uniform(0.5, 2.0, size=shape)


def nonzero(*shape):
    """Entries with |x| in [0.3, 2) and a random sign: away from the kinks of relu/abs
    and safe as a denominator."""
    return lambda rng: np.asarray(
        rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.3, 2.0, size=shape)
    )


def fixed(values):
    """Exactly these values."""
    array = np.array(values, dtype=np.float64)
    return lambda rng: array.copy()


@dataclass(frozen=True)
class Case:
    """One op under test.

    ``fn`` builds the output from gpugrad tensors; ``ref`` builds it from torch tensors
    and defaults to ``fn`` where operators and method names coincide.
    """

    id: str
    inputs: tuple
    fn: Callable
    ref: Callable | None = None

    def reference(self, *xs):
        return (self.ref or self.fn)(*xs)

    def arrays(self):
        rng = np.random.default_rng(zlib.crc32(self.id.encode()))
        return [sample(rng) for sample in self.inputs]


def case(id, inputs, fn, ref=None):
    return pytest.param(Case(id, tuple(inputs), fn, ref), id=id)


def T(array):
    """A numpy index array as a torch index tensor."""
    return torch.as_tensor(np.asarray(array))


def positions(n, sl):
    """The positions a (possibly negative-step) slice selects along an axis of length n,
    as a torch index tensor: PyTorch has no negative-step slicing."""
    return T(np.arange(n)[sl].copy())


# --------------------------------------------------------------------------------------
# The op table.
# --------------------------------------------------------------------------------------

BROADCAST_PAIRS = [
    ((3, 4), (3, 4)),
    ((3, 1), (1, 4)),
    ((4,), (2, 3, 4)),
    ((), (2, 3)),
    ((2, 3), ()),
]


def _shape_id(shape):
    return "()" if shape == () else "x".join(map(str, shape))


def _arithmetic_cases():
    ops = [
        ("a+b", lambda a, b: a + b, normal),
        ("a-b", lambda a, b: a - b, normal),
        ("a*b", lambda a, b: a * b, normal),
        ("a/b", lambda a, b: a / b, nonzero),
    ]
    for name, fn, rhs in ops:
        for sa, sb in BROADCAST_PAIRS:
            yield case(f"{name}-{_shape_id(sa)}&{_shape_id(sb)}", [normal(*sa), rhs(*sb)], fn)


SCALAR_CASES = [
    case("x+2.5", [normal(3, 4)], lambda x: x + 2.5),
    case("2.5+x", [normal(3, 4)], lambda x: 2.5 + x),
    case("x-2.5", [normal(3, 4)], lambda x: x - 2.5),
    case("2.5-x", [normal(3, 4)], lambda x: 2.5 - x),
    case("x*2.5", [normal(3, 4)], lambda x: x * 2.5),
    case("2.5*x", [normal(3, 4)], lambda x: 2.5 * x),
    case("x/2.5", [normal(3, 4)], lambda x: x / 2.5),
    case("2.5/x", [nonzero(3, 4)], lambda x: 2.5 / x),
    case("-x", [normal(3, 4)], lambda x: -x),
    case("-x-0d", [normal()], lambda x: -x),
]

POW_CASES = [
    case("x**2-negative-base", [normal(3, 4)], lambda x: x**2),
    case("x**3-int-exponent", [normal(3, 4)], lambda x: x**3),
    case("x**2.0", [normal(3, 4)], lambda x: x**2.0),
    case("x**0.5", [positive(3, 4)], lambda x: x**0.5),
    case("x**-1.5", [positive(3, 4)], lambda x: x**-1.5),
    case("2.0**x", [normal(3, 4)], lambda x: 2.0**x),
    case("0.5**x", [normal(3, 4)], lambda x: 0.5**x),
    case("x**y-same-shape", [positive(3, 4), normal(3, 4)], lambda x, y: x**y),
    case("x**y-3x1&1x4", [positive(3, 1), normal(1, 4)], lambda x, y: x**y),
    case("x**y-2x3&()", [positive(2, 3), normal()], lambda x, y: x**y),
]

MATMUL_CASES = [
    case("matmul-2D@2D", [normal(3, 4), normal(4, 5)], lambda a, b: a @ b),
    case("matmul-1D@2D", [normal(4), normal(4, 5)], lambda a, b: a @ b),
    case("matmul-2D@1D", [normal(3, 4), normal(4)], lambda a, b: a @ b),
    case("matmul-1D@1D", [normal(4), normal(4)], lambda a, b: a @ b),
    case("matmul-3D@2D", [normal(2, 3, 4), normal(4, 5)], lambda a, b: a @ b),
    case("matmul-2D@3D", [normal(3, 4), normal(2, 4, 5)], lambda a, b: a @ b),
    case("matmul-3D@3D", [normal(2, 3, 4), normal(2, 4, 5)], lambda a, b: a @ b),
    case("matmul-3D@3D-batch-broadcast", [normal(1, 3, 4), normal(2, 4, 5)], lambda a, b: a @ b),
    case("matmul-4D@3D-batch-broadcast", [normal(2, 1, 3, 4), normal(3, 4, 2)], lambda a, b: a @ b),
]


def _all_axes(x, axis):
    return tuple(range(x.dim())) if axis is None else axis


def _reduction_cases():
    references = {
        "sum": lambda x, axis, kd: torch.sum(x, dim=_all_axes(x, axis), keepdim=kd),
        "mean": lambda x, axis, kd: torch.mean(x, dim=_all_axes(x, axis), keepdim=kd),
        "max": lambda x, axis, kd: torch.amax(x, dim=_all_axes(x, axis), keepdim=kd),
    }
    for name, ref in references.items():
        for axis in [None, 0, 1, -1, (0, 2), (1, -1)]:
            for keepdims in (False, True):
                yield case(
                    f"{name}(axis={axis},keepdims={keepdims})",
                    [normal(2, 3, 4)],
                    lambda x, name=name, axis=axis, kd=keepdims: getattr(x, name)(
                        axis=axis, keepdims=kd
                    ),
                    lambda x, ref=ref, axis=axis, kd=keepdims: ref(x, axis, kd),
                )
        yield case(
            f"{name}()-2D-default",
            [normal(3, 4)],
            lambda x, name=name: getattr(x, name)(),
            lambda x, ref=ref: ref(x, None, False),
        )
    yield case(
        "sum(dim=1)-alias", [normal(2, 3, 4)], lambda x: x.sum(dim=1), lambda x: x.sum(dim=1)
    )


SHAPE_CASES = [
    case("reshape((6,4))", [normal(2, 3, 4)], lambda x: x.reshape((6, 4))),
    case("reshape(6,4)-varargs", [normal(2, 3, 4)], lambda x: x.reshape(6, 4)),
    case("reshape((4,-1))", [normal(2, 3, 4)], lambda x: x.reshape((4, -1))),
    case("reshape((-1,))", [normal(2, 3, 4)], lambda x: x.reshape((-1,))),
    case("reshape(())-from-(1,1)", [normal(1, 1)], lambda x: x.reshape(())),
    case(
        "transpose(2,0,1)",
        [normal(2, 3, 4)],
        lambda x: x.transpose(2, 0, 1),
        lambda x: x.permute(2, 0, 1),
    ),
    case(
        "transpose((1,2,0))-tuple",
        [normal(2, 3, 4)],
        lambda x: x.transpose((1, 2, 0)),
        lambda x: x.permute(1, 2, 0),
    ),
    case(
        "transpose()-reverses-3D",
        [normal(2, 3, 4)],
        lambda x: x.transpose(),
        lambda x: x.permute(2, 1, 0),
    ),
    case("transpose()-2D", [normal(3, 4)], lambda x: x.transpose(), lambda x: x.permute(1, 0)),
    case("x.T-2D", [normal(3, 4)], lambda x: x.T),
]

ROWS = np.array([0, 2, 2, 1, 2])
COLS = np.array([1, 3, 3, 0, 3])  # (2, 3) appears three times

INDEX_CASES = [
    case("x[1:3]", [normal(4, 5)], lambda x: x[1:3]),
    case("x[:,1:4:2]", [normal(4, 5)], lambda x: x[:, 1:4:2]),
    case("x[1]", [normal(4, 5)], lambda x: x[1]),
    case("x[-1,2]", [normal(4, 5)], lambda x: x[-1, 2]),
    case("x[:,None,1:4]", [normal(4, 5)], lambda x: x[:, None, 1:4]),
    case("x[None]", [normal(4, 5)], lambda x: x[None]),
    case(
        "x[::-1]",
        [normal(4, 5)],
        lambda x: x[::-1],
        lambda x: x[positions(4, slice(None, None, -1))],
    ),
    case(
        "x[::-2,1:]",
        [normal(4, 5)],
        lambda x: x[::-2, 1:],
        lambda x: x[positions(4, slice(None, None, -2))][:, 1:],
    ),
    case(
        "x[3:0:-1,::-1]",
        [normal(4, 5)],
        lambda x: x[3:0:-1, ::-1],
        lambda x: x[positions(4, slice(3, 0, -1))][:, positions(5, slice(None, None, -1))],
    ),
    case(
        "x[1,:,::-1]-3D",
        [normal(2, 3, 4)],
        lambda x: x[1, :, ::-1],
        lambda x: x[1][:, positions(4, slice(None, None, -1))],
    ),
    case(
        "x[[0,2,0,3]]-repeated",
        [normal(4, 5)],
        lambda x: x[np.array([0, 2, 0, 3])],
        lambda x: x[T([0, 2, 0, 3])],
    ),
    case(
        "x[[-1,0,-1]]-negative",
        [normal(4, 5)],
        lambda x: x[np.array([-1, 0, -1])],
        lambda x: x[T([-1, 0, -1])],
    ),
    case(
        "x[:,[4,0,4]]-repeated",
        [normal(4, 5)],
        lambda x: x[:, np.array([4, 0, 4])],
        lambda x: x[:, T([4, 0, 4])],
    ),
    case(
        "x[rows,cols]-repeated-pairs",
        [normal(4, 5)],
        lambda x: x[ROWS, COLS],
        lambda x: x[T(ROWS), T(COLS)],
    ),
]

UNARY_CASES = [
    case("exp", [normal(3, 4)], lambda x: x.exp()),
    case("log", [positive(3, 4)], lambda x: x.log()),
    case("tanh", [normal(3, 4)], lambda x: x.tanh()),
    case("tanh-large", [fixed([-50.0, -20.0, -1.0, 0.0, 1.0, 20.0, 50.0])], lambda x: x.tanh()),
    case("sigmoid", [normal(3, 4)], lambda x: x.sigmoid()),
    case(
        "sigmoid-large", [fixed([-50.0, -30.0, -1.0, 0.0, 1.0, 30.0, 50.0])], lambda x: x.sigmoid()
    ),
    case("relu", [nonzero(3, 4)], lambda x: x.relu()),
    case("abs", [nonzero(3, 4)], lambda x: x.abs()),
    case("sqrt", [positive(3, 4)], lambda x: x.sqrt()),
    case("erf", [normal(3, 4)], lambda x: x.erf()),
    case("erf-far", [fixed([-30.0, -6.5, -2.0, -1e-9, 0.0, 0.7, 1.0, 3.5, 7.0])],
         lambda x: x.erf()),
    case("clip(-0.5,0.5)", [normal(3, 4)], lambda x: x.clip(-0.5, 0.5)),
    case("exp-0d", [normal()], lambda x: x.exp()),
]

MASK = np.array([[True, False, True, True], [False, False, True, False], [True, True, False, True]])
COLUMN_MASK = np.array([[True], [False], [True]])

COMBINE_CASES = [
    case(
        "maximum-3x4&3x4",
        [normal(3, 4), normal(3, 4)],
        lambda a, b: gg.maximum(a, b),
        lambda a, b: torch.maximum(a, b),
    ),
    case(
        "maximum-3x1&1x4",
        [normal(3, 1), normal(1, 4)],
        lambda a, b: gg.maximum(a, b),
        lambda a, b: torch.maximum(a, b),
    ),
    case(
        "minimum-3x4&3x4",
        [normal(3, 4), normal(3, 4)],
        lambda a, b: gg.minimum(a, b),
        lambda a, b: torch.minimum(a, b),
    ),
    case(
        "minimum-()&2x3",
        [normal(), normal(2, 3)],
        lambda a, b: gg.minimum(a, b),
        lambda a, b: torch.minimum(a, b),
    ),
    case(
        "where-3x4",
        [normal(3, 4), normal(3, 4)],
        lambda a, b: gg.where(gg.tensor(MASK), a, b),
        lambda a, b: torch.where(T(MASK), a, b),
    ),
    case(
        "where-broadcast-cond3x1&1x4&()",
        [normal(1, 4), normal()],
        lambda a, b: gg.where(gg.tensor(COLUMN_MASK), a, b),
        lambda a, b: torch.where(T(COLUMN_MASK), a, b),
    ),
    case(
        "concat-axis0",
        [normal(2, 3), normal(4, 3)],
        lambda a, b: gg.concat([a, b], axis=0),
        lambda a, b: torch.cat([a, b], dim=0),
    ),
    case(
        "concat-axis1-three",
        [normal(2, 3), normal(2, 1), normal(2, 2)],
        lambda a, b, c: gg.concat([a, b, c], axis=1),
        lambda a, b, c: torch.cat([a, b, c], dim=1),
    ),
    case(
        "concat-axis-1-3D",
        [normal(2, 3, 1), normal(2, 3, 2)],
        lambda a, b: gg.concat([a, b], axis=-1),
        lambda a, b: torch.cat([a, b], dim=-1),
    ),
    case(
        "concat-same-tensor-twice",
        [normal(2, 3)],
        lambda a: gg.concat([a, a], axis=0),
        lambda a: torch.cat([a, a], dim=0),
    ),
    case(
        "stack-axis0",
        [normal(2, 3), normal(2, 3)],
        lambda a, b: gg.stack([a, b], axis=0),
        lambda a, b: torch.stack([a, b], dim=0),
    ),
    case(
        "stack-axis1-three",
        [normal(2, 3), normal(2, 3), normal(2, 3)],
        lambda a, b, c: gg.stack([a, b, c], axis=1),
        lambda a, b, c: torch.stack([a, b, c], dim=1),
    ),
    case(
        "stack-axis-1",
        [normal(2, 3), normal(2, 3)],
        lambda a, b: gg.stack([a, b], axis=-1),
        lambda a, b: torch.stack([a, b], dim=-1),
    ),
    case(
        "stack-0d",
        [normal(), normal(), normal()],
        lambda a, b, c: gg.stack([a, b, c]),
        lambda a, b, c: torch.stack([a, b, c]),
    ),
]

COMPOSITION_CASES = [
    case("circuit-(x+y)*z", [fixed(-2.0), fixed(5.0), fixed(-4.0)], lambda x, y, z: (x + y) * z),
    case(
        "sigmoid-neuron",
        [fixed([2.0, -3.0, -3.0]), fixed([-1.0, -2.0])],
        lambda w, x: (w[0] * x[0] + w[1] * x[1] + w[2]).sigmoid(),
    ),
    case(
        "staged-(x+sig(y))/(sig(x)+(x+y)**2)",
        [fixed(3.0), fixed(-4.0)],
        lambda x, y: (x + y.sigmoid()) / (x.sigmoid() + (x + y) ** 2),
    ),
    case("shared-x*exp(x)+x", [normal(3, 4)], lambda x: x * x.exp() + x),
    case(
        "mlp-layer-tanh(x@W+b)",
        [normal(5, 3), normal(3, 4), normal(4)],
        lambda x, w, b: (x @ w + b).tanh(),
    ),
]

# PyTorch's spellings: the same code runs on both (methods), or gpugrad's F / nn against
# torch.nn.functional / torch.nn.
F = gg.nn.functional
TF = torch.nn.functional
LABELS = np.array([2, 0, 3])

SPELLING_CASES = [
    case("clone", [normal(3, 4)], lambda x: x.clone() * x),
    case("pow(3)", [normal(3, 4)], lambda x: x.pow(3)),
    case("neg()", [normal(3, 4)], lambda x: x.neg()),
    case("square()", [normal(3, 4)], lambda x: x.square()),
    case("matmul()", [normal(3, 4), normal(4, 2)], lambda a, b: a.matmul(b)),
    case("softmax(dim=1)", [normal(3, 4)], lambda x: x.softmax(dim=1)),
    case("log_softmax(dim=-1)", [normal(3, 4)], lambda x: x.log_softmax(dim=-1)),
    case("permute(2,0,1)", [normal(2, 3, 4)], lambda x: x.permute(2, 0, 1)),
    case("permute(0,1)-identity", [normal(3, 4)], lambda x: x.permute(0, 1)),
    case("permute(-1,0,1)", [normal(2, 3, 4)], lambda x: x.permute(-1, 0, 1)),
    case("t()", [normal(3, 4)], lambda x: x.t()),
    case("t()-vector", [normal(4)], lambda x: x.t()),
    case("masked_fill", [normal(3, 4)], lambda x: x.masked_fill(x > 0.2, 0.5)),
    # var / std divide by n - ddof, ddof 0 by default as NumPy's (PyTorch's default is 1)
    case("var()", [normal(3, 4)], lambda x: x.var(), lambda x: x.var(correction=0)),
    case("var(dim=1,correction=1)", [normal(3, 4)], lambda x: x.var(dim=1, correction=1)),
    case("var(axis=(0,2),ddof=1,keepdims)", [normal(2, 3, 4)],
         lambda x: x.var(axis=(0, 2), ddof=1, keepdims=True),
         lambda x: x.var(dim=(0, 2), correction=1, keepdim=True)),
    case("std(dim=0,unbiased=True)", [normal(5, 3)], lambda x: x.std(dim=0, unbiased=True)),
    case("std()", [normal(3, 4)], lambda x: x.std(), lambda x: x.std(correction=0)),
    case("leaky_relu(0.1)", [nonzero(3, 4)], lambda x: F.leaky_relu(x, 0.1),
         lambda x: TF.leaky_relu(x, 0.1)),
    case("leaky_relu-at-0", [fixed([0.0, -1.0, 2.0])], lambda x: F.leaky_relu(x),
         lambda x: TF.leaky_relu(x)),
    case("silu", [normal(3, 4)], lambda x: F.silu(x), lambda x: TF.silu(x)),
    case("gelu", [normal(3, 4)], lambda x: F.gelu(x), lambda x: TF.gelu(x)),
    case("gelu-tanh", [normal(3, 4)], lambda x: F.gelu(x, approximate="tanh"),
         lambda x: TF.gelu(x, approximate="tanh")),
    case("gelu-far", [fixed([-40.0, -9.0, -3.0, -0.0, 1e-8, 4.0, 40.0])],
         lambda x: F.gelu(x), lambda x: TF.gelu(x)),
    case("GELU(tanh)", [fixed([-40.0, -9.0, -3.0, 0.5, 4.0, 40.0])],
         lambda x: gg.nn.GELU("tanh")(x), lambda x: torch.nn.GELU("tanh")(x)),
    case("linear", [normal(5, 3), normal(4, 3), normal(4)], lambda x, w, b: F.linear(x, w, b),
         lambda x, w, b: TF.linear(x, w, b)),
    case("linear-one-sample-no-bias", [normal(3), normal(4, 3)], lambda x, w: F.linear(x, w),
         lambda x, w: TF.linear(x, w)),
    case("l1_loss", [normal(3, 4), normal(3, 4)], lambda a, b: F.l1_loss(a, b),
         lambda a, b: TF.l1_loss(a, b)),
    case("l1_loss-at-0", [fixed([1.0, 2.0]), fixed([1.0, 0.0])],
         lambda a, b: F.l1_loss(a, b, reduction="sum"),
         lambda a, b: TF.l1_loss(a, b, reduction="sum")),
    case("CrossEntropyLoss(label_smoothing)", [normal(3, 4)],
         lambda x: gg.nn.CrossEntropyLoss(label_smoothing=0.2)(x, gg.tensor(LABELS)),
         lambda x: torch.nn.CrossEntropyLoss(label_smoothing=0.2)(x, T(LABELS))),
    case("NLLLoss(sum)", [normal(3, 4)],
         lambda x: gg.nn.NLLLoss(reduction="sum")(x.log_softmax(dim=1), gg.tensor(LABELS)),
         lambda x: torch.nn.NLLLoss(reduction="sum")(x.log_softmax(dim=1), T(LABELS))),
    case("MSELoss(none)", [normal(3, 4), normal(3, 4)],
         lambda a, b: gg.nn.MSELoss(reduction="none")(a, b),
         lambda a, b: torch.nn.MSELoss(reduction="none")(a, b)),
    case("BCEWithLogitsLoss", [normal(3, 4), positive(3, 4)],
         lambda a, b: gg.nn.BCEWithLogitsLoss()(a, b / 2),
         lambda a, b: torch.nn.BCEWithLogitsLoss()(a, b / 2)),
    case("BCELoss", [normal(3, 4), positive(3, 4)],
         lambda a, b: gg.nn.BCELoss()(a.sigmoid(), b / 2),
         lambda a, b: torch.nn.BCELoss()(a.sigmoid(), b / 2)),
    case("layer_norm-affine", [normal(4, 3, 5), normal(5), normal(5)],
         lambda x, w, b: F.layer_norm(x, (5,), w, b), lambda x, w, b: TF.layer_norm(
             x, (5,), w, b)),
    case("layer_norm-two-axes", [normal(4, 3, 5)], lambda x: F.layer_norm(x, (3, 5)),
         lambda x: TF.layer_norm(x, (3, 5))),
    case("layer_norm-eps", [normal(2, 6)], lambda x: F.layer_norm(x, 6, eps=0.5),
         lambda x: TF.layer_norm(x, (6,), eps=0.5)),
    case("Flatten", [normal(2, 3, 4, 5)], lambda x: gg.nn.Flatten()(x),
         lambda x: torch.nn.Flatten()(x)),
    case("Flatten(0,1)", [normal(2, 3, 4)], lambda x: gg.nn.Flatten(0, 1)(x),
         lambda x: torch.nn.Flatten(0, 1)(x)),
]

CASES = [
    *_arithmetic_cases(),
    *SCALAR_CASES,
    *POW_CASES,
    *MATMUL_CASES,
    *_reduction_cases(),
    *SHAPE_CASES,
    *INDEX_CASES,
    *UNARY_CASES,
    *COMBINE_CASES,
    *COMPOSITION_CASES,
    *SPELLING_CASES,
]


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def assert_matches(actual, expected, what):
    """``actual`` (a gpugrad Tensor) equals ``expected`` (a torch tensor) in shape, dtype
    float64 and value."""
    assert actual is not None, f"{what}: gpugrad gave None"
    got = actual.numpy()
    want = expected.detach().numpy()
    assert got.shape == want.shape, f"{what}: shape {got.shape}, torch has {want.shape}"
    assert got.dtype == np.float64, f"{what}: dtype {got.dtype}, expected float64"
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=what)


def torch_run(c, arrays):
    """The reference: output and gradients of sum(output * w) from PyTorch."""
    xs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = c.reference(*xs)
    weight = np.random.default_rng(zlib.crc32(c.id.encode()) + 1).standard_normal(out.shape)
    grads = torch.autograd.grad((out * torch.from_numpy(weight)).sum(), xs)
    return out, weight, grads


def gg_inputs(arrays):
    return [gg.tensor(a, requires_grad=True) for a in arrays]


# --------------------------------------------------------------------------------------
# First-order tests
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("c", CASES)
def test_forward_matches_torch(c):
    """The forward value of every contract op equals PyTorch's: same shape, float64 kept,
    values to rtol 1e-10."""
    arrays = c.arrays()
    expected, _, _ = torch_run(c, arrays)
    assert_matches(c.fn(*gg_inputs(arrays)), expected, f"{c.id}: forward")


@pytest.mark.parametrize("c", CASES)
def test_grad_matches_torch(c):
    """gg.grad of sum(output * w) with respect to every input equals torch.autograd.grad."""
    arrays = c.arrays()
    _, weight, expected = torch_run(c, arrays)
    xs = gg_inputs(arrays)
    loss = (c.fn(*xs) * gg.tensor(weight)).sum()
    grads = gg.grad(loss, xs)
    assert len(grads) == len(xs)
    for i, (got, want) in enumerate(zip(grads, expected, strict=True)):
        assert_matches(got, want, f"{c.id}: d/d input {i}")


@pytest.mark.parametrize("c", CASES)
def test_backward_fills_grad_like_torch(c):
    """loss.backward() leaves on each input a .grad equal to PyTorch's gradient."""
    arrays = c.arrays()
    _, weight, expected = torch_run(c, arrays)
    xs = gg_inputs(arrays)
    loss = (c.fn(*xs) * gg.tensor(weight)).sum()
    loss.backward()
    for i, (x, want) in enumerate(zip(xs, expected, strict=True)):
        assert_matches(x.grad, want, f"{c.id}: input {i}.grad")


# --------------------------------------------------------------------------------------
# Second-order tests
# --------------------------------------------------------------------------------------

IDX = np.array([0, 2, 0, 1])

SECOND_ORDER_CASES = [
    case("tanh(x*y).sum()", [normal(3, 4), normal(3, 4)], lambda x, y: (x * y).tanh().sum()),
    case(
        "(sigmoid(x)**2*exp(y)).sum()-broadcast",
        [normal(3), normal(2, 3)],
        lambda x, y: (x.sigmoid() ** 2 * y.exp()).sum(),
    ),
    case("relu(x@w).sum()", [normal(4, 3), normal(3, 5)], lambda x, w: (x @ w).relu().sum()),
    case(
        "(tanh(x@w)**2).mean()",
        [normal(4, 3), normal(3, 5)],
        lambda x, w: ((x @ w).tanh() ** 2).mean(),
    ),
    case(
        "(x/(1.5+y*y)).sum()", [normal(2, 3), normal(2, 3)], lambda x, y: (x / (1.5 + y * y)).sum()
    ),
    case("(x**3*y).mean()", [normal(3, 4), normal(4)], lambda x, y: (x**3 * y).mean()),
    case(
        "(log(x)*sqrt(x)+x**y).sum()",
        [positive(3, 4), normal(3, 4)],
        lambda x, y: (x.log() * x.sqrt() + x**y).sum(),
    ),
    case("(var(x,axis=1,ddof=1)*std(x)).sum()", [normal(3, 4)],
         lambda x: (x.var(axis=1, ddof=1) * x.std()).sum(),
         lambda x: (x.var(dim=1, correction=1) * x.std(correction=0)).sum()),
    case("softplus-(1+exp(x)).log().sum()", [normal(3, 4)], lambda x: (1 + x.exp()).log().sum()),
    case("(erf(x*y)*x).sum()", [normal(3, 4), normal(3, 4)],
         lambda x, y: ((x * y).erf() * x).sum()),
    case("(gelu(x)*y).sum()", [normal(3, 4), normal(3, 4)],
         lambda x, y: (F.gelu(x) * y).sum(), lambda x, y: (TF.gelu(x) * y).sum()),
    case("(gelu-tanh(x)**2).sum()", [normal(3, 4)],
         lambda x: (F.gelu(x, approximate="tanh") ** 2).sum(),
         lambda x: (TF.gelu(x, approximate="tanh") ** 2).sum()),
    case(
        "(max(x,axis=1)**2).sum()",
        [normal(3, 4)],
        lambda x: (x.max(axis=1) ** 2).sum(),
        lambda x: (x.amax(dim=1) ** 2).sum(),
    ),
    case(
        "(x[idx]**2*y).sum()-repeated-index",
        [normal(3, 4), normal(4, 4)],
        lambda x, y: (x[IDX] ** 2 * y).sum(),
        lambda x, y: (x[T(IDX)] ** 2 * y).sum(),
    ),
    case(
        "(concat([x*y,tanh(x)])**2).sum()",
        [normal(2, 3), normal(2, 3)],
        lambda x, y: (gg.concat([x * y, x.tanh()], axis=0) ** 2).sum(),
        lambda x, y: (torch.cat([x * y, x.tanh()], dim=0) ** 2).sum(),
    ),
]


@pytest.mark.parametrize("c", SECOND_ORDER_CASES)
def test_double_backward_matches_torch(c):
    """Differentiating the gradient again: with create_graph=True, gg.grad gives the
    gradient g as a differentiable graph, and the gradient of sum_i (g_i * v_i).sum()
    (a Hessian-vector product) equals PyTorch's double backward."""
    arrays = c.arrays()
    rng = np.random.default_rng(zlib.crc32(c.id.encode()) + 2)
    vs = [rng.standard_normal(a.shape) for a in arrays]

    txs = [torch.tensor(a, requires_grad=True) for a in arrays]
    t_out = c.reference(*txs)
    t_grads = torch.autograd.grad(t_out, txs, create_graph=True)
    t_hvp = torch.autograd.grad(
        sum((g * torch.from_numpy(v)).sum() for g, v in zip(t_grads, vs, strict=True)), txs
    )

    xs = gg_inputs(arrays)
    out = c.fn(*xs)
    assert out.shape == ()
    grads = gg.grad(out, xs, create_graph=True)
    for i, (got, want) in enumerate(zip(grads, t_grads, strict=True)):
        assert_matches(got, want, f"{c.id}: first derivative {i}")
    inner = (grads[0] * gg.tensor(vs[0])).sum()
    for g, v in zip(grads[1:], vs[1:], strict=True):
        inner = inner + (g * gg.tensor(v)).sum()
    hvp = gg.grad(inner, xs)
    for i, (got, want) in enumerate(zip(hvp, t_hvp, strict=True)):
        assert_matches(got, want, f"{c.id}: second derivative {i}")


def test_relu_case_has_no_kinks():
    """The relu double-backward case stays away from relu's kink at 0, where the
    derivative is a convention rather than a fact."""
    (c,) = [p.values[0] for p in SECOND_ORDER_CASES if p.id == "relu(x@w).sum()"]
    x, w = c.arrays()
    assert np.abs(x @ w).min() > 1e-3
