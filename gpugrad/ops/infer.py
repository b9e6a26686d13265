"""Shape and dtype rules shared by the op definitions. They raise ShapeError/DTypeError
with the facts (shapes, dtypes); dispatch adds the op's name and the user's line."""

import operator

from .. import dtypes
from ..errors import DTypeError, ShapeError


def broadcast_shapes(*shapes):
    """NumPy broadcasting of shapes, in plain Python (np.broadcast_shapes is slower)."""
    first = shapes[0]
    if all(s == first for s in shapes):
        return first
    ndim = max(len(s) for s in shapes)
    out = [1] * ndim
    for s in shapes:
        offset = ndim - len(s)
        for i, d in enumerate(s):
            cur = out[offset + i]
            if d != cur:
                if cur == 1:
                    out[offset + i] = d
                elif d != 1:
                    listed = " and ".join(str(tuple(x)) for x in shapes)
                    raise ShapeError(f"shapes {listed} cannot be broadcast together")
    return tuple(out)


def elementwise(*specs, **_):
    if len(specs) == 2:  # the common case, kept short: it runs on every binary op
        sa, sb = specs[0].shape, specs[1].shape
        return (sa if sa == sb else broadcast_shapes(sa, sb)), specs[0].dtype
    return broadcast_shapes(*[s.shape for s in specs]), specs[0].dtype


def unary_same(x, **_):
    return x.shape, x.dtype


def comparison(*specs, **_):
    return elementwise(*specs)[0], dtypes.bool_


def numeric(*specs, **_):
    """Elementwise, for arithmetic that bools do not have (-, **, relu, clip...)."""
    for s in specs:
        if s.dtype == dtypes.bool_:
            raise DTypeError("not defined for bool tensors; cast first, e.g. x.astype('int64')")
    return elementwise(*specs)


def require_bool(spec, what):
    if spec.dtype != dtypes.bool_:
        raise DTypeError(f"{what} must be a bool tensor, got {spec.dtype}")


def normalize_axes(axis, ndim):
    """A sorted tuple of non-negative axes from None, an int or a sequence of ints."""
    if axis is None:
        return tuple(range(ndim))
    if not isinstance(axis, (tuple, list)):
        axis = (axis,)
    out = []
    for a in axis:
        try:
            a = operator.index(a)  # ints, NumPy ints; not floats
        except TypeError:
            raise ShapeError(f"axis must be an int or a tuple of ints, got {axis!r}") from None
        if not -max(ndim, 1) <= a < max(ndim, 1):  # a 0-d tensor takes 0 and -1 (PyTorch)
            raise ShapeError(f"axis {a} is out of range for a tensor of {ndim} dimension(s)")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ShapeError(f"repeated axis in {axis!r}")
    return tuple(sorted(out))


def normalize_axis(axis, ndim):
    """One axis in [0, ndim)."""
    if not isinstance(axis, int) or not -ndim <= axis < ndim:
        raise ShapeError(f"axis {axis!r} is out of range for {ndim} dimension(s)")
    return axis % ndim


def reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)
