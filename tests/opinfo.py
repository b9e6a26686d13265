"""The op table the per-op tests are generated from: for every built-in op, sample
calls and an independent NumPy reference (float64).

Each OpInfo says how to call the op through the public API (`call`, on tensors) and what
NumPy computes for the same inputs (`reference`, on arrays). Inputs are described by
`Arg`s: a shape and a value range, so the same sample runs on every device.
"""

import math
from dataclasses import dataclass, field

import numpy as np

import gpugrad as gg
from gpugrad.ops import conversion, loss
from gpugrad.ops import elementwise as ew
from gpugrad.ops.shape import normalize_index


@dataclass(frozen=True)
class Arg:
    """A tensor argument: its shape, and where its values lie."""

    shape: tuple
    low: float = -2.0
    high: float = 2.0
    kind: str = "float"  # float | bool | int (ints in [low, high))

    def make(self, rng):
        if self.kind == "bool":
            return rng.random(self.shape) > 0.5
        if self.kind == "int":
            return rng.integers(int(self.low), int(self.high), self.shape)
        return rng.uniform(self.low, self.high, self.shape)


@dataclass(frozen=True)
class Sample:
    args: tuple
    call: object  # f(*tensors) -> tensor, through the public API
    reference: object  # f(*arrays) -> array, NumPy in float64
    label: str = ""
    strict: bool = True  # the array API standard can express it (array-api-strict runs it)


@dataclass
class OpInfo:
    name: str  # the registry's qualified name
    samples: list = field(default_factory=list)
    grad: bool = True  # differentiable: gradcheck each sample


BROADCASTS = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((4,), (2, 3, 4)), ((), (2, 3))]


def _binary(fn, ref, low=-2.0, high=2.0, low_b=None, high_b=None):
    low_b = low if low_b is None else low_b
    high_b = high if high_b is None else high_b
    samples = [Sample((Arg(a, low, high), Arg(b, low_b, high_b)), fn, ref, f"{a}&{b}")
               for a, b in BROADCASTS]
    samples.append(Sample((Arg((2, 3), low, high),), lambda x: fn(x, 1.5),
                          lambda x: ref(x, 1.5), "tensor&scalar"))
    return samples


def _unary(fn, ref, low=-2.0, high=2.0):
    return [Sample((Arg(s, low, high),), fn, ref, str(s)) for s in [(), (5,), (2, 3, 4)]]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _erf(x):
    """The C library's erf (math.erf), element by element: NumPy has none."""
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _reductions(method, ref):
    cases = [(None, False), (0, False), (1, True), ((0, 2), False), (-1, True)]
    return [Sample((Arg((2, 3, 4)),),
                   lambda x, a=axis, k=keep: getattr(x, method)(axis=a, keepdims=k),
                   lambda x, a=axis, k=keep: ref(x, axis=a, keepdims=k),
                   f"axis={axis},keepdims={keep}") for axis, keep in cases]


def _truth(method, ref):
    """any/all over bools, and over ints (0 is False), where both answers occur; over
    an empty axis too (any False, all True, as their identities)."""
    cases = [(None, False), (0, False), (1, True), ((0, 2), False), (-1, True)]
    samples = [Sample((Arg((2, 3, 4), kind="bool"),),
                      lambda x, a=axis, k=keep: getattr(x, method)(axis=a, keepdims=k),
                      lambda x, a=axis, k=keep: ref(x, axis=a, keepdims=k),
                      f"axis={axis},keepdims={keep}") for axis, keep in cases]
    return samples + [
        Sample((Arg((5, 3), 0, 2, kind="int"),), lambda x: getattr(x, method)(axis=0),
               lambda x: ref(x, axis=0), "ints"),
        Sample((Arg((0, 3), kind="bool"),), lambda x: getattr(x, method)(axis=0),
               lambda x: ref(x, axis=0), "empty"),
    ]


def _scatter_call(index, shape):
    from gpugrad.ops.shape import scatter_add

    def call(g):
        key, arrays = normalize_index(gg.zeros(shape, device=g.device), index)
        return scatter_add(g, *arrays, index=key, shape=shape)

    return call


def _scatter_ref(index, shape):
    def ref(g):
        out = np.zeros(shape)
        np.add.at(out, index, g)
        return out

    return ref


def _setitem_call(index):
    """x with x[index] = values, through Tensor.__setitem__ on a copy (a gradcheck calls
    it again and again on the same inputs)."""
    def call(x, values):
        out = x * 1.0
        out[index] = values
        return out

    return call


def _setitem_ref(index):
    def ref(x, values):
        out = x.copy()
        out[index] = values
        return out

    return ref


def _setitem_samples(cases):
    return [Sample((Arg(x), Arg(v)), _setitem_call(index), _setitem_ref(index), label)
            for label, x, index, v in cases]


def _matmul_t(a, b, ta, tb):
    from gpugrad.ops.linalg import matmul

    return matmul(a, b, transpose_a=ta, transpose_b=tb)


def _linear(*args):
    from gpugrad.ops.linalg import linear

    return linear(*args)


def _bce(p, t):
    from gpugrad.ops.loss import binary_cross_entropy

    return binary_cross_entropy(p, t)


def _ce_reference(x, y, smoothing):
    log_p = x - x.max(-1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(-1, keepdims=True))
    nll = -log_p[np.arange(len(y)), y]
    return (1 - smoothing) * nll - smoothing * log_p.mean(-1)


def _softmax_ref(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _ce_backward(g, x, y, smoothing):
    from gpugrad.ops.loss import cross_entropy_backward

    attrs = {"label_smoothing": smoothing} if smoothing else {}
    return cross_entropy_backward(g, x, y, **attrs)


def _compare(name, fn, ref):
    return OpInfo(name, _binary(fn, ref), grad=False)


OPS = [
    OpInfo("gpugrad::add", _binary(lambda a, b: a + b, np.add)),
    OpInfo("gpugrad::sub", _binary(lambda a, b: a - b, np.subtract)),
    OpInfo("gpugrad::mul", _binary(lambda a, b: a * b, np.multiply)),
    OpInfo("gpugrad::div", _binary(lambda a, b: a / b, np.divide, low_b=0.5, high_b=2.0)),
    OpInfo("gpugrad::pow", _binary(lambda a, b: a ** b, np.power, low=0.5, high=2.0)
           + [Sample((Arg((3,), -2, 2),), lambda x: x ** 2, lambda x: x ** 2, "square"),
              Sample((Arg((3,), -1, 1),), lambda x: 2.0 ** x, lambda x: 2.0 ** x, "rpow")]),
    OpInfo("gpugrad::floor_divide", _binary(lambda a, b: a // b, np.floor_divide,
                                            low_b=0.5, high_b=2.0), grad=False),
    # divisors of both signs, away from 0; gradcheck's steps stay clear of the jumps
    OpInfo("gpugrad::remainder", _binary(lambda a, b: a % b, np.remainder, low_b=0.5,
                                         high_b=2.0)
           + [Sample((Arg((5,), -3, 3), Arg((5,), -2.0, -0.5)), lambda a, b: a % b,
                     np.remainder, "negative divisors"),
              Sample((Arg((4,), 0.6, 2.0),), lambda x: 1.5 % x, lambda x: 1.5 % x, "rmod")]),
    OpInfo("gpugrad::neg", _unary(lambda x: -x, np.negative)),
    OpInfo("gpugrad::exp", _unary(lambda x: x.exp(), np.exp)),
    OpInfo("gpugrad::log", _unary(lambda x: x.log(), np.log, 0.5, 3.0)),
    OpInfo("gpugrad::sqrt", _unary(lambda x: x.sqrt(), np.sqrt, 0.5, 3.0)),
    OpInfo("gpugrad::tanh", _unary(lambda x: x.tanh(), np.tanh)),
    OpInfo("gpugrad::sigmoid", _unary(lambda x: x.sigmoid(), _sigmoid, -6.0, 6.0)),
    OpInfo("gpugrad::erf", _unary(lambda x: x.erf(), _erf)  # both of the kernel's intervals
           + [Sample((Arg((4, 6), -7.0, 7.0),), lambda x: x.erf(), _erf, "far tails")]),
    OpInfo("gpugrad::tanh_backward", _binary(
        lambda g, y: ew.tanh_backward(g, y),
        lambda g, y: g * (1 - y * y), low_b=-0.9, high_b=0.9)),
    OpInfo("gpugrad::sigmoid_backward", _binary(
        lambda g, y: ew.sigmoid_backward(g, y),
        lambda g, y: g * y * (1 - y), low_b=0.1, high_b=0.9)),
    OpInfo("gpugrad::relu_backward", _binary(
        lambda g, y: ew.relu_backward(g, y), lambda g, y: np.where(y > 0, g, 0.0))),
    OpInfo("gpugrad::relu", _unary(lambda x: x.relu(), lambda x: np.maximum(x, 0))),
    OpInfo("gpugrad::abs", _unary(lambda x: x.abs(), np.abs)),
    OpInfo("gpugrad::sign", _unary(lambda x: x.sign(), np.sign), grad=False),
    OpInfo("gpugrad::clip", [
        Sample((Arg((3, 4)),), lambda x: x.clip(-1.0, 0.5), lambda x: np.clip(x, -1, 0.5),
               "both"),
        Sample((Arg((5,)),), lambda x: x.clip(None, 0.0), lambda x: np.minimum(x, 0),
               "hi only"),
        Sample((Arg((5,)),), lambda x: x.clip(0.0), lambda x: np.maximum(x, 0), "lo only"),
    ]),
    OpInfo("gpugrad::logaddexp", _binary(gg.logaddexp, np.logaddexp)
           + [Sample((Arg((4,), -900, 900),), lambda x: gg.logaddexp(0.0, x),
                     lambda x: np.logaddexp(0.0, x), "softplus far out")]),
    OpInfo("gpugrad::binary_cross_entropy", [
        Sample((Arg((3, 4), 0.05, 0.95), Arg((3, 4), 0.0, 1.0)),
               lambda p, t: gg.nn.functional.binary_cross_entropy(p, t, reduction="none"),
               lambda p, t: -(t * np.log(p) + (1 - t) * np.log(1 - p)), "inside (0, 1)"),
        Sample((Arg((4,), 0.05, 0.95), Arg((1,), 0.0, 1.0)),
               lambda p, t: _bce(p, t), lambda p, t: -(t * np.log(p) + (1 - t) * np.log1p(-p)),
               "broadcast target")]),
    OpInfo("gpugrad::cross_entropy", [
        Sample((Arg((5, 4)), Arg((5,), 0, 4, kind="int")),
               lambda x, y: gg.nn.functional.cross_entropy(x, y, reduction="none"),
               lambda x, y: _ce_reference(x, y, 0.0), "indices"),
        Sample((Arg((5, 4), -30, 30), Arg((5,), 0, 4, kind="int")),
               lambda x, y: gg.nn.functional.cross_entropy(x, y, label_smoothing=0.2,
                                                           reduction="none"),
               lambda x, y: _ce_reference(x, y, 0.2), "smoothed, far logits"),
    ]),
    OpInfo("gpugrad::cross_entropy_backward", [
        Sample((Arg((5,)), Arg((5, 4)), Arg((5,), 0, 4, kind="int")),
               lambda g, x, y: _ce_backward(g, x, y, 0.0),
               lambda g, x, y: g[:, None] * (_softmax_ref(x) - np.eye(4)[y]), "indices"),
        Sample((Arg((5,)), Arg((5, 4)), Arg((5,), 0, 4, kind="int")),
               lambda g, x, y: _ce_backward(g, x, y, 0.3),
               lambda g, x, y: g[:, None] * (_softmax_ref(x) - 0.7 * np.eye(4)[y] - 0.075),
               "smoothed"),
    ]),
    OpInfo("gpugrad::maximum", _binary(gg.maximum, np.maximum)),
    OpInfo("gpugrad::minimum", _binary(gg.minimum, np.minimum)),
    OpInfo("gpugrad::where", [
        Sample((Arg((3, 4), kind="bool"), Arg((3, 4)), Arg((3, 4))), gg.where, np.where,
               "same"),
        Sample((Arg((1, 4), kind="bool"), Arg((3, 1)), Arg(())), gg.where, np.where,
               "broadcast"),
        Sample((Arg((3,), kind="bool"), Arg((3,))), lambda c, a: gg.where(c, a, 0.0),
               lambda c, a: np.where(c, a, 0.0), "scalar"),
    ]),
    _compare("gpugrad::eq", lambda a, b: a == b, np.equal),
    _compare("gpugrad::ne", lambda a, b: a != b, np.not_equal),
    _compare("gpugrad::lt", lambda a, b: a < b, np.less),
    _compare("gpugrad::le", lambda a, b: a <= b, np.less_equal),
    _compare("gpugrad::gt", lambda a, b: a > b, np.greater),
    _compare("gpugrad::ge", lambda a, b: a >= b, np.greater_equal),
    OpInfo("gpugrad::logical_and", [Sample((Arg((3, 1), kind="bool"), Arg((4,), kind="bool")),
                                           lambda a, b: a & b, np.logical_and)], grad=False),
    OpInfo("gpugrad::logical_or", [Sample((Arg((3, 1), kind="bool"), Arg((4,), kind="bool")),
                                          lambda a, b: a | b, np.logical_or)], grad=False),
    OpInfo("gpugrad::logical_xor", [Sample((Arg((3, 1), kind="bool"), Arg((4,), kind="bool")),
                                           lambda a, b: a ^ b, np.logical_xor)], grad=False),
    OpInfo("gpugrad::logical_not", [Sample((Arg((3, 4), kind="bool"),), lambda a: ~a,
                                           np.logical_not)], grad=False),
    OpInfo("gpugrad::sum", _reductions("sum", np.sum)),
    OpInfo("gpugrad::mean", _reductions("mean", np.mean)),
    OpInfo("gpugrad::max", _reductions("max", np.max)),
    OpInfo("gpugrad::min", _reductions("min", np.min)),
    OpInfo("gpugrad::argmax", [
        Sample((Arg((2, 3, 4)),), lambda x, a=axis, k=keep: x.argmax(axis=a, keepdims=k),
               lambda x, a=axis, k=keep: np.argmax(x, axis=a, keepdims=k),
               f"axis={axis},keepdims={keep}")
        for axis, keep in [(None, False), (None, True), (1, False), (-1, True)]], grad=False),
    OpInfo("gpugrad::argmin", [
        Sample((Arg((2, 3, 4)),), lambda x: x.argmin(axis=0), lambda x: np.argmin(x, axis=0))],
        grad=False),
    OpInfo("gpugrad::any", _truth("any", np.any), grad=False),
    OpInfo("gpugrad::all", _truth("all", np.all), grad=False),
    OpInfo("gpugrad::reshape", [
        Sample((Arg((2, 3, 4)),), lambda x: x.reshape(4, -1), lambda x: x.reshape(4, -1)),
        Sample((Arg((6,)),), lambda x: x.reshape((3, 1, 2)), lambda x: x.reshape(3, 1, 2)),
    ]),
    OpInfo("gpugrad::transpose", [
        Sample((Arg((2, 3)),), lambda x: x.T, lambda x: x.T, ".T"),
        Sample((Arg((2, 3, 4)),), lambda x: x.transpose(2, 0, 1),
               lambda x: x.transpose(2, 0, 1), "perm"),
        Sample((Arg((2, 3, 4)),), lambda x: x.swapaxes(0, 2),
               lambda x: np.swapaxes(x, 0, 2), "swap"),
    ]),
    OpInfo("gpugrad::broadcast_to", [
        Sample((Arg((3, 1)),), lambda x: x.broadcast_to((2, 3, 4)),
               lambda x: np.broadcast_to(x, (2, 3, 4)))]),
    OpInfo("gpugrad::getitem", [
        Sample((Arg((4, 5)),), lambda x: x[1:3, ::2], lambda x: x[1:3, ::2], "slices"),
        Sample((Arg((4, 5)),), lambda x: x[2], lambda x: x[2], "int"),
        Sample((Arg((4, 5)),), lambda x: x[None, :, -1], lambda x: x[None, :, -1], "none"),
        Sample((Arg((4, 5)),), lambda x: x[[0, 3, 0]], lambda x: x[[0, 3, 0]], "array"),
        Sample((Arg((4, 5)),), lambda x: x[[0, 3, 0], [1, 1, 4]],
               lambda x: x[[0, 3, 0], [1, 1, 4]], "pair"),
        Sample((Arg((4, 5)),), lambda x: x[:, [4, 0, 4]], lambda x: x[:, [4, 0, 4]],
               "slice+array", strict=False),
        Sample((Arg((4, 5)),), lambda x: x[x > 0], lambda x: x[x > 0], "mask"),
    ]),
    OpInfo("gpugrad::scatter_add", [
        Sample((Arg((3, 3)),), _scatter_call((slice(1, 4),), (4, 3)),
               _scatter_ref((slice(1, 4),), (4, 3)), "slice"),
        Sample((Arg((4, 3)),), _scatter_call(([0, 2, 0, 0],), (4, 3)),
               _scatter_ref(([0, 2, 0, 0],), (4, 3)), "repeats"),
    ]),
    OpInfo("gpugrad::setitem", _setitem_samples([
        ("slices", (4, 5), (slice(1, 3), slice(None, None, 2)), (2, 3)),
        ("int+broadcast", (4, 5), 2, (5,)),
        ("0-d value", (4, 5), (slice(None), 1), ()),
        ("none", (4, 5), (None, 1), (5,)),
        ("array", (4, 5), [0, 3], (2, 5)),
        ("pair", (4, 5), ([0, 3, 1], [1, 1, 4]), (3,)),
        ("leading 1s", (4, 5), 1, (1, 1, 5)),  # dropped, as NumPy drops them
    ])),
    OpInfo("gpugrad::concat", [
        Sample((Arg((2, 3)), Arg((4, 3))), lambda a, b: gg.concat([a, b]),
               lambda a, b: np.concatenate([a, b]), "axis0"),
        Sample((Arg((2, 3)), Arg((2, 1)), Arg((2, 2))), lambda *xs: gg.concat(xs, axis=-1),
               lambda *xs: np.concatenate(xs, axis=-1), "axis-1"),
    ]),
    OpInfo("gpugrad::stack", [
        Sample((Arg((2, 3)), Arg((2, 3))), lambda a, b: gg.stack([a, b], axis=1),
               lambda a, b: np.stack([a, b], axis=1)),
    ]),
    OpInfo("gpugrad::matmul", [
        Sample((Arg((3, 4)), Arg((4, 2))), lambda a, b: a @ b, np.matmul, "2d"),
        Sample((Arg((4,)), Arg((4, 2))), lambda a, b: a @ b, np.matmul, "1d@2d"),
        Sample((Arg((3, 4)), Arg((4,))), lambda a, b: a @ b, np.matmul, "2d@1d"),
        Sample((Arg((4,)), Arg((4,))), lambda a, b: a @ b, np.matmul, "1d@1d"),
        Sample((Arg((2, 3, 4)), Arg((4, 5))), lambda a, b: a @ b, np.matmul, "batch"),
        Sample((Arg((2, 1, 3, 4)), Arg((3, 4, 2))), lambda a, b: a @ b, np.matmul,
               "batch broadcast"),
        Sample((Arg((4, 3)), Arg((2, 4))), lambda a, b: _matmul_t(a, b, True, True),
               lambda a, b: a.T @ b.T, "both transposed"),
        Sample((Arg((2, 4, 3)), Arg((4, 5))), lambda a, b: _matmul_t(a, b, True, False),
               lambda a, b: np.swapaxes(a, -1, -2) @ b, "batch transposed a"),
        Sample((Arg((3, 4)), Arg((2, 5, 4))), lambda a, b: _matmul_t(a, b, False, True),
               lambda a, b: a @ np.swapaxes(b, -1, -2), "transposed batch b"),
    ]),
    OpInfo("gpugrad::linear", [
        Sample((Arg((5, 3)), Arg((4, 3)), Arg((4,))), lambda x, w, b: _linear(x, w, b),
               lambda x, w, b: x @ w.T + b, "batch"),
        Sample((Arg((2, 5, 3)), Arg((4, 3)), Arg((4,))), lambda x, w, b: _linear(x, w, b),
               lambda x, w, b: x @ w.T + b, "3-d input"),
        Sample((Arg((5, 3)), Arg((4, 3))), lambda x, w: _linear(x, w),
               lambda x, w: x @ w.T, "no bias"),
    ]),
    OpInfo("gpugrad::cast", [
        Sample((Arg((3,)),), lambda x: x.astype("float32").astype("float64"),
               lambda x: x.astype(np.float32).astype(np.float64), "round trip"),
        Sample((Arg((3,), 0, 5, kind="int"),), lambda x: x.astype("float64"),
               lambda x: x.astype(np.float64), "int to float"),
    ], grad=False),
    OpInfo("gpugrad::clone", [
        Sample((Arg((2, 3)),), lambda x: x.clone(), lambda x: x.copy(), "float"),
        Sample((Arg(()),), lambda x: x.clone(), lambda x: x.copy(), "0-d"),
    ]),
    OpInfo("gpugrad::checked_class_indices", [  # what F.nll_loss records in a trace
        Sample((Arg((4,), 0, 3, kind="int"),),
               lambda y: loss.checked_class_indices(y, classes=3), lambda y: y, "values")],
        grad=False),
    OpInfo("gpugrad::detach", [  # what Tensor.detach records inside gg.compile's trace
        Sample((Arg((2, 3)),), lambda x: conversion.detach(x), lambda x: x, "values")],
        grad=False),
    OpInfo("gpugrad::to_device", [
        Sample((Arg((2, 3)),), lambda x: x.to("array_api_strict" if x.device == "cpu"
                                              else "cpu"), lambda x: x, "across")]),
]
