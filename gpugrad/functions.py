"""Functions on tensors in the gg namespace (gg.maximum, gg.where, gg.exp, ...)."""

from collections.abc import Iterable

from .ops import elementwise as _ew
from .ops import linalg as _linalg
from .ops import shape as _shape
from .tensor import Tensor


def maximum(a, b):
    """Elementwise maximum; the gradient goes to the larger input (split on ties)."""
    return _ew.maximum(a, b)


def minimum(a, b):
    """Elementwise minimum; the gradient goes to the smaller input (split on ties)."""
    return _ew.minimum(a, b)


def logaddexp(a, b):
    """log(exp(a) + exp(b)) without overflow (logaddexp(0, x) is softplus)."""
    return _ew.logaddexp(a, b)


def where(cond, a, b):
    """a where cond is True, else b (cond: a bool tensor; a, b: tensors or numbers)."""
    return _ew.where(cond, a, b)


def concat(tensors, axis=0, *, dim=None):
    """Join tensors along an existing axis (axis=, or dim= for PyTorch habits)."""
    return _shape.concat(*_tensors(tensors), axis=_axis_or_dim(axis, dim))


concatenate = cat = concat


def stack(tensors, axis=0, *, dim=None):
    """Join tensors of one shape along a new axis (axis=, or dim= for PyTorch habits)."""
    return _shape.stack(*_tensors(tensors), axis=_axis_or_dim(axis, dim))


def _axis_or_dim(axis, dim):
    """axis=, or PyTorch's dim=. Only a non-zero axis can be seen to disagree with dim:
    axis=0 is also what not giving it looks like."""
    if dim is None:
        return axis
    if axis not in (0, dim):
        raise TypeError("give axis= or dim=, not both")
    return dim


def _tensors(tensors):
    if isinstance(tensors, Tensor):
        raise TypeError("concat/stack take a list of tensors, not one tensor")
    return list(tensors)


def matmul(a, b):
    return _linalg.matmul(a, b)


def exp(x):
    return _ew.exp(x)


def log(x):
    return _ew.log(x)


def tanh(x):
    return _ew.tanh(x)


def sigmoid(x):
    return _ew.sigmoid(x)


def erf(x):
    """The error function, 2/sqrt(pi) times the integral of exp(-t^2) from 0 to x."""
    return _ew.erf(x)


def relu(x):
    return _ew.relu(x)


def sqrt(x):
    return _ew.sqrt(x)


def abs(x):  # noqa: A001
    return _ew.abs(x)


def clip(x, lo=None, hi=None, *, min=None, max=None):  # noqa: A002
    return _ew.clip_values(x, lo, hi, min=min, max=max)


clamp = clip  # PyTorch's name


def argmax(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    return x.argmax(axis, keepdims, dim=dim, keepdim=keepdim)


def argmin(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    return x.argmin(axis, keepdims, dim=dim, keepdim=keepdim)


def any(x, axis=None, keepdims=False, *, dim=None, keepdim=None):  # noqa: A001
    return x.any(axis, keepdims, dim=dim, keepdim=keepdim)


def all(x, axis=None, keepdims=False, *, dim=None, keepdim=None):  # noqa: A001
    return x.all(axis, keepdims, dim=dim, keepdim=keepdim)


def sum(x, axis=None, keepdims=False, *, dim=None, keepdim=None):  # noqa: A001
    return x.sum(axis, keepdims, dim=dim, keepdim=keepdim)


def mean(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    return x.mean(axis, keepdims, dim=dim, keepdim=keepdim)


def var(x, axis=None, *, ddof=None, keepdims=False, dim=None, correction=None, unbiased=None,
        keepdim=None):
    """x.var(...): ddof 0 by default, as NumPy's (see Tensor.var)."""
    return x.var(axis, ddof=ddof, keepdims=keepdims, dim=dim, correction=correction,
                 unbiased=unbiased, keepdim=keepdim)


def std(x, axis=None, *, ddof=None, keepdims=False, dim=None, correction=None, unbiased=None,
        keepdim=None):
    """x.std(...): ddof 0 by default, as NumPy's (see Tensor.var)."""
    return x.std(axis, ddof=ddof, keepdims=keepdims, dim=dim, correction=correction,
                 unbiased=unbiased, keepdim=keepdim)


def max(x, axis=None, keepdims=False, *, dim=None, keepdim=None):  # noqa: A001
    return x.max(axis, keepdims, dim=dim, keepdim=keepdim)


def min(x, axis=None, keepdims=False, *, dim=None, keepdim=None):  # noqa: A001
    return x.min(axis, keepdims, dim=dim, keepdim=keepdim)


def reshape(x, shape):
    return x.reshape(shape)


def transpose(x, *order, axes=None, dim0=None, dim1=None):
    """np.transpose(x, axes) (axes any sequence, positional or axes=) and
    torch.transpose(x, dim0, dim1) alike: x.transpose(...)."""
    if len(order) == 1 and isinstance(order[0], Iterable):
        order = (tuple(order[0]),)
    return x.transpose(*order, axes=None if axes is None else tuple(axes), dim0=dim0,
                       dim1=dim1)


def broadcast_to(x, shape):
    return x.broadcast_to(shape)
