"""Reductions over axes: sum, mean, max, min, argmax/argmin, any/all (with keepdims)."""

import warnings

import numpy as np

from .. import dtypes
from ..errors import ShapeError
from .infer import normalize_axes, reduced_shape
from .registry import define


def _reduce_infer(kind):
    needs_elements = kind in ("max", "min")

    def infer(x, axis=None, keepdims=False):
        axes = normalize_axes(axis, len(x.shape))
        if needs_elements:
            _refuse_empty(x.shape, axes)
        shape = reduced_shape(x.shape, axes, keepdims)
        return shape, x.dtype

    return infer


def _refuse_empty(shape, axes):
    """A max/min (or arg-) over no elements has no value (no identity, unlike a sum's
    0): refused before the kernel, which would raise NumPy's own ValueError."""
    empty = [a for a in axes if shape[a] == 0]
    if empty:
        raise ShapeError(f"axis {empty[0]} of a tensor of shape {tuple(shape)} is empty: "
                         "there is no element to reduce, and no identity to give instead")


def _kept(ctx, g):
    """The output gradient with the reduced axes kept as size 1, and those axes."""
    spec = ctx.input_specs[0]
    axes = normalize_axes(ctx.attrs.get("axis"), len(spec.shape))
    # Reduced leading axes need no reshape: broadcasting puts g back where it belongs.
    if not ctx.attrs.get("keepdims", False) and axes != tuple(range(len(axes))):
        g = reshaped(g, reduced_shape(spec.shape, axes, True))
    return g, axes, spec.shape


def _sum_vjp(ctx, g):
    g, _, shape = _kept(ctx, g)
    return (broadcast_to(g, shape=shape),)


def _mean_vjp(ctx, g):
    g, axes, shape = _kept(ctx, g)
    count = 1
    for a in axes:
        count *= shape[a]
    return (broadcast_to(per_count(g, count), shape=shape),)


def per_count(t, count):
    """t / count, also where count is past t's dtype's range (float16's 65,504, which a
    constant of t's dtype would make inf, and every quotient 0): then t * (1 / count)."""
    if t.dtype.kind == "f" and count > np.finfo(t.dtype).max:
        return t * (1.0 / count)
    return t / count


def _extremum_vjp(ctx, g):
    # The gradient goes to the elements equal to the extremum, split evenly among ties.
    (x,) = ctx.inputs
    g, axes, shape = _kept(ctx, g)
    out = ctx.output
    if not ctx.attrs.get("keepdims", False):
        out = reshaped(out, g.shape)
    hits = (x == out).astype(x.dtype)
    return (hits * (g / hits.sum(axis=axes, keepdims=True)),)


def _reduction(name, forward, vjp, ndarray=None, numpy=None, **kw):
    # NumPy and CuPy: the array's own method (or `ndarray`) is the same reduction
    # without the module function's argument handling (a few µs on small arrays).
    kernel = ndarray or _method(name)
    return define(f"gpugrad::{name}", infer=_reduce_infer(name), forward=forward, vjp=vjp,
                  kernels={"numpy": numpy or kernel, "cupy": kernel}, **kw)


SHORT_ROW = 32  # measured: up to 32 elements a row, from 32 rows, the transposed copy wins


def extremum(x, name, axis, keepdims):
    """x.max / x.min (name) along axis, for NumPy arrays. NumPy reduces a short last axis
    of a C-ordered matrix row by row, a few elements per call of its inner loop: the
    logits of a 10-class softmax take 29 µs at 256 rows, 380 µs at 4,096. From a
    transposed copy the same reduction runs along the first axis, over whole rows at a
    time (SIMD): 6x faster at 256x10, 13x at 2,048x10, 1.5x at 32x10. A maximum is
    exact in any order, NaN included: the same bits."""
    if (axis in (-1, 1, (1,), (-1,)) and x.ndim == 2 and x.shape[1] <= SHORT_ROW
            and x.shape[0] >= SHORT_ROW and x.flags.c_contiguous):
        out = getattr(x.T.copy(), name)(axis=0)
        return out[:, None] if keepdims else out
    return getattr(x, name)(axis=axis, keepdims=keepdims)


def _extremum_ndarray(name):
    def kernel(xp, x, axis=None, keepdims=False):
        return extremum(x, name, axis, keepdims)

    return kernel


def _method(name):
    def kernel(xp, x, axis=None, keepdims=False):
        return getattr(x, name)(axis=axis, keepdims=keepdims)

    return kernel


def _mean_ndarray(xp, x, axis=None, keepdims=False):
    # The whole array's mean of float32/64 values as its sum over its size: what
    # ndarray.mean computes (the same bits), without its argument handling, which takes
    # 3 µs on a small array (a loss over a batch).
    if axis is None and x.dtype.kind == "f" and x.dtype.itemsize >= 4:
        total = _sum_numpy(xp, x, None, keepdims) if xp is np else x.sum(keepdims=keepdims)
        return total / x.size
    if x.size == 0:  # NaN over no elements, as in PyTorch: quietly (see _empty_mean)
        return _empty_mean(x, axis, keepdims)
    return x.mean(axis=axis, keepdims=keepdims)


def _sum_numpy(xp, x, axis=None, keepdims=False):
    # np.add.reduce, which ndarray.sum calls (the same bits and dtypes), called from
    # gpugrad's own line: an overflow, or inf - inf, in a sum is then as quiet as in an
    # elementwise op (ndarray.sum's line is NumPy's, past gpugrad's warning filter).
    return np.add.reduce(x, axis, None, None, keepdims)


def _empty_mean(x, axis, keepdims):
    """ndarray.mean of an empty array, without the RuntimeWarnings NumPy raises from its
    own lines ("Mean of empty slice"), which the filter on gpugrad's lines cannot reach:
    the values (NaN) speak for themselves, as for a 0 / 0 anywhere else."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return x.mean(axis=axis, keepdims=keepdims)


def _sum_plan_kernel(backend_name, attrs):
    # ndarray.sum is np.add.reduce behind a Python wrapper (the same bits, the same
    # dtypes: small integers and booleans summed as int64): called directly, a third
    # less per call on a small array (a bias gradient).
    if backend_name != "numpy":
        return None
    axis, keepdims = attrs.get("axis"), attrs.get("keepdims", False)
    reduce = np.add.reduce

    def plan_sum(x):
        return reduce(x, axis, None, None, keepdims)

    return plan_sum


sum = _reduction(  # noqa: A001
    "sum", lambda xp, x, axis=None, keepdims=False: xp.sum(x, axis=axis, keepdims=keepdims),
    _sum_vjp, numpy=_sum_numpy, promote="accumulate", plan_kernel=_sum_plan_kernel)
mean = _reduction(
    "mean", lambda xp, x, axis=None, keepdims=False: xp.mean(x, axis=axis, keepdims=keepdims),
    _mean_vjp, ndarray=_mean_ndarray, promote="float")
max = _reduction(  # noqa: A001
    "max", lambda xp, x, axis=None, keepdims=False: xp.max(x, axis=axis, keepdims=keepdims),
    _extremum_vjp, numpy=_extremum_ndarray("max"), saves=(0,), save_output=True)
min = _reduction(  # noqa: A001
    "min", lambda xp, x, axis=None, keepdims=False: xp.min(x, axis=axis, keepdims=keepdims),
    _extremum_vjp, numpy=_extremum_ndarray("min"), saves=(0,), save_output=True)


def _arg_infer(x, axis=None, keepdims=False):
    if axis is None:
        _refuse_empty(x.shape, range(len(x.shape)))
        return ((1,) * len(x.shape) if keepdims else ()), dtypes.int64
    axes = normalize_axes(axis, len(x.shape))
    if len(axes) != 1:
        raise ShapeError(f"argmax/argmin take one axis or None, got {axis!r}")
    _refuse_empty(x.shape, axes)
    return reduced_shape(x.shape, axes, keepdims), dtypes.int64


def _arg_forward(reduce):
    def forward(xp, x, axis=None, keepdims=False):
        if axis is None:  # over the flattened tensor, as in NumPy
            out = reduce(xp)(xp.reshape(x, (-1,)), axis=0)
            return xp.reshape(out, (1,) * len(x.shape)) if keepdims else out
        return reduce(xp)(x, axis=axis, keepdims=keepdims)

    return forward


# Positions, not values: no gradient.
argmax = define("gpugrad::argmax", infer=_arg_infer,
                forward=_arg_forward(lambda xp: xp.argmax))
argmin = define("gpugrad::argmin", infer=_arg_infer,
                forward=_arg_forward(lambda xp: xp.argmin))


def _truth_infer(x, axis=None, keepdims=False):
    return reduced_shape(x.shape, normalize_axes(axis, len(x.shape)), keepdims), dtypes.bool_


def _truth_reduction(name):
    # Truth values, not amounts: no gradient, as the comparisons. Over no elements any
    # is False and all True (their identities), so nothing is refused as for max.
    return define(f"gpugrad::{name}", infer=_truth_infer,
                  forward=lambda xp, x, axis=None, keepdims=False: getattr(xp, name)(
                      x, axis=axis, keepdims=keepdims),
                  kernels={"numpy": _method(name), "cupy": _method(name)})


any = _truth_reduction("any")  # noqa: A001
all = _truth_reduction("all")  # noqa: A001

from .shape import broadcast_to, reshaped  # noqa: E402  (shape ops use reductions in their VJPs too)
