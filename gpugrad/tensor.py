"""Tensor: the user's handle on an array on some device, and on the graph that made it.

A Tensor holds a backend array (`_data`), its dtype and device, whether it requires
grad, its `.grad`, and the node that produced it (None for a leaf that no recorded op
has used yet). Every operator and method is one call into the op registry's dispatch.
"""

import math
import sys
import weakref

import numpy as np

from . import dtypes
from .errors import DeviceError, DTypeError, GpugradError, GraphError, ShapeError
from .node import format_site, next_seq, user_site


def array_of(data):
    """`data` as an array that can be written into. NumPy's ufuncs give a 0-d result as
    a NumPy scalar (np.float32), which has no memory to update in place: an optimiser's
    step would rebind it (a detach() of the parameter would not follow) and a compiled
    step's write into it would fail. So a tensor that may be updated in place, or whose
    array is shared, holds a 0-d array instead (the same value)."""
    return np.asarray(data) if isinstance(data, np.generic) else data


def trainable_array(data, backend):
    """`data` as an array a parameter can be updated in: array_of's, and a copy of a view
    whose elements share memory (a broadcast_to's), which an optimiser's step could not
    write into half way through its parameters (NumPy's and array-api-strict's: read-only)
    or would write into wrongly (CuPy's: each element the last one written)."""
    data = array_of(data)
    if not backend.updatable(data):  # a copy of its own: NumPy's and CuPy's C-ordered
        copy = getattr(data, "copy", None)
        data = copy() if copy is not None else backend.astype(data, backend.dtype_of(data))
    return data


class Tensor:
    """An n-dimensional array that records the ops applied to it, for gradients."""

    # _version: 0, or the creation number current when the values were last changed in
    # place (an optimiser's step, `w -= ...`): a recorded op that saved this tensor
    # before then can no longer differentiate with it (registry.run_vjp checks).
    # _base: the tensor whose array this one may share (a view op's input, a detach()'s
    # source), whose in-place changes are this one's too; None for most.
    # _made_by: what made a tensor without recording it (the op, set by the op dispatch
    # only then, or a compiled plan; unset on leaves), so that .graph can say why there
    # is no graph.
    __slots__ = ("_data", "_dtype", "_device", "_requires_grad", "_node", "_grad",
                 "_version", "_base", "_made_by", "__weakref__")
    __array_ufunc__ = None  # ndarray + Tensor goes to Tensor.__radd__, not to NumPy

    def __init__(self, data, dtype=None, device=None, requires_grad=False):
        from .creation import tensor

        made = tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)
        self._data, self._dtype, self._device = made._data, made._dtype, made._device
        self._requires_grad, self._node, self._grad = made._requires_grad, None, None
        self._version = 0
        self._base = None

    @staticmethod
    def _wrap(data, dtype, device, requires_grad, node=None):
        """The engine's constructor: no checks, no copies."""
        t = object.__new__(Tensor)
        t._data = data
        t._dtype = dtype
        t._device = device
        t._requires_grad = requires_grad
        t._node = node
        t._grad = None
        t._version = 0
        t._base = None
        return t

    @property
    def grad(self):
        """The gradient backward() accumulated here (a Tensor), or None."""
        g = self._grad
        if _state.capture is not None:  # inside gg.compile's trace (None is read too)
            _state.capture.read_grad(self, g)
        return g

    @grad.setter
    def grad(self, value):
        if value is not None:
            _check_grad_fits(self, value)
        if _state.capture is not None:  # inside gg.compile's trace: a .grad the plan sets
            _state.capture.grad_assigned(self, value)
        self._grad = value

    def _mark_modified(self):
        """Say that this tensor's values were just changed in place (see _version), and
        so those of the tensors it shares its array with through _base (the source of a
        detach() or nn.Parameter(w), a view's input): a graph that saved one of them
        refuses to differentiate with the new values."""
        version = next_seq()
        t = self
        while t is not None:
            t._version = version
            t = t._base

    def _mark_replaced(self):
        """Say that this tensor was given new values in a new array (an eager x += 1):
        the tensors it shared an array with keep theirs, and it shares none any more."""
        self._version = next_seq()
        self._base = None

    # --- what it is ----------------------------------------------------------------------------
    @property
    def shape(self):
        return self._data.shape  # a tuple on every backend

    @property
    def dtype(self):
        return self._dtype

    @property
    def device(self):
        return self._device

    @property
    def ndim(self):
        return len(self._data.shape)

    @property
    def size(self):
        n = 1
        for d in self._data.shape:
            n *= d
        return n

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        value = bool(value)
        if value == self._requires_grad:
            return
        if value and self._dtype.kind != "f":
            raise DTypeError(f"only floating-point tensors can require gradients, this one "
                             f"is {self._dtype}")
        if not self.is_leaf:
            hint = ("; inside gg.compile's function detach() is an op, not a leaf: pass the "
                    "tensor as an argument that requires grad, or take gg.grad(loss, [x]) "
                    "with respect to it directly" if _state.capture is not None
                    else "; use .detach() to get a leaf")
            raise RuntimeError("requires_grad can only be changed on leaf tensors" + hint)
        self._requires_grad = value
        if value:  # a tensor to train is updated in place (optimisers, compiled steps)
            self._data = trainable_array(self._data, self._device.backend)
        # Graphs already recorded keep the leaf as it was then; the next op makes a new
        # leaf node that knows the new setting.
        self._node = None

    def requires_grad_(self, value=True):
        self.requires_grad = value
        return self

    @property
    def is_leaf(self):
        return self._node is None or self._node.op.is_leaf

    def retain_grad(self):
        """Keep this intermediate tensor's gradient in .grad at the next backward passes
        (added up over them, as a leaf's), as PyTorch's retain_grad; a leaf keeps it
        anyway. Its node then holds a weak reference to it, as a leaf's node does."""
        if not self._requires_grad:
            raise GraphError(f"retain_grad() of a tensor that does not require grad: it "
                             f"has no gradient to keep (at {format_site(user_site())})")
        if _state.capture is not None:
            from .compiler.capture import CompileError

            raise CompileError("retain_grad() inside gg.compile: a plan hands back only "
                               "what the function returns; return gg.grad(loss, [t]) "
                               f"instead (at {format_site(user_site())})")
        if not self.is_leaf:
            self._node.ref = weakref.ref(self)

    @property
    def node(self):
        """The graph node that produced this tensor (None for an unused leaf)."""
        return self._node

    @property
    def graph(self):
        """The recorded graph that produced this tensor, as a gg.Graph. Ops are recorded
        where an input requires grad (or under gg.trace); a tensor an op made without
        that has no graph, and asking for one is a GraphError that says how to get one."""
        from .graph import Graph

        made_by = getattr(self, "_made_by", None) \
            if self._node is None and not self._requires_grad else None  # (a leaf: itself)
        if isinstance(made_by, str):  # a compiled plan's result
            raise _annotate(".graph", GraphError(
                f"no graph was recorded for this tensor: {made_by} returned it, and a "
                "plan records nothing; its .graph and .traced_graph draw the plan"))
        if made_by is not None:
            raise _annotate(".graph", GraphError(
                f"no graph was recorded for this tensor: {made_by.display_name} made it, "
                "and ops are recorded only where a gradient can flow (an input requires "
                "grad, the op has a gradient and a float result, gg.no_grad() is off); "
                "gg.trace(fn, *inputs) records any computation"))
        return Graph.from_outputs([self])

    # --- leaving the graph or the device ----------------------------------------------------------
    def numpy(self):
        """A host numpy.ndarray copy of the values, from any device."""
        if _state.capture is not None:
            _state.capture.host_read(self)
        return self._device.backend.to_host(self._data)

    def item(self):
        if self.size != 1:
            raise _annotate("item()", ShapeError(
                f"needs a tensor of one element, this one has shape {self.shape}"))
        return self.numpy().reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self):
        """The same values, cut from the graph (a leaf that does not require grad)."""
        if _state.capture is not None:  # gg.compile's trace: recorded, see ops.conversion
            return _apply(_conv.detach, (self,), _NO)
        self._data = array_of(self._data)  # (one array to share, see array_of)
        t = Tensor._wrap(self._data, self._dtype, self._device, False)
        t._base = self  # the same array: self's in-place changes are t's
        return t

    def to(self, target=None, dtype=None, *, device=None):
        """A copy on another device and/or as another dtype (differentiable). `target`
        is a device ("cpu", "cuda:0") or a dtype; device= (PyTorch's keyword) a device."""
        from .backends import device as as_device

        if target is not None and not _is_device_name(target):
            if dtype is not None:
                raise _annotate(".to()", TypeError(
                    f"two dtypes given, {target!r} and {dtype!r}: give one"))
            target, dtype = None, target  # a dtype (or its name) in the first place
            if isinstance(dtype, str):
                _device_or_dtype(dtype)
        if device is not None:
            if target is not None:
                raise _annotate(".to()", TypeError(
                    "give the device once: positionally or as device="))
            target = device
        out = self
        if dtype is not None:
            out = out.astype(dtype)
        if target is not None:
            dest = as_device(target)
            if dest is not out._device:
                out = _apply(_conv.to_device, (out,), {"device": dest, "source": out._device})
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self, index=0):
        return self.to(f"cuda:{index}")

    def astype(self, dtype):
        dtype = dtypes.as_dtype(dtype)
        if dtype is self._dtype:
            return self
        return _apply(_conv.cast, (self,), {"dtype": dtype})

    def float(self):
        return self.astype(dtypes.float32)

    def double(self):
        return self.astype(dtypes.float64)

    def long(self):
        return self.astype(dtypes.int64)

    # --- gradients --------------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph=None, create_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's .grad that requires grad.

        grad: the gradient of some scalar with respect to self (needed unless self has
        one element); retain_graph: keep saved values for another backward (defaults to
        create_graph); create_graph: record the backward itself, for higher derivatives.
        """
        from .scheduler import backward

        backward([self], None if grad is None else [grad], retain_graph=retain_graph,
                 create_graph=create_graph)

    # --- arithmetic -------------------------------------------------------------------------------
    def __add__(self, other):
        return _apply(_ew.add, (self, other), _NO)

    def __radd__(self, other):
        return _apply(_ew.add, (other, self), _NO)

    def __sub__(self, other):
        return _apply(_ew.sub, (self, other), _NO)

    def __rsub__(self, other):
        return _apply(_ew.sub, (other, self), _NO)

    def __mul__(self, other):
        return _apply(_ew.mul, (self, other), _NO)

    def __rmul__(self, other):
        return _apply(_ew.mul, (other, self), _NO)

    def __truediv__(self, other):
        return _apply(_ew.div, (self, other), _NO)

    def __rtruediv__(self, other):
        return _apply(_ew.div, (other, self), _NO)

    def __pow__(self, other):
        return _apply(_ew.pow, (self, other), _NO)

    def __rpow__(self, other):
        return _apply(_ew.pow, (other, self), _NO)

    def __floordiv__(self, other):
        return _apply(_ew.floor_divide, (self, other), _NO)

    def __rfloordiv__(self, other):
        return _apply(_ew.floor_divide, (other, self), _NO)

    def __mod__(self, other):
        return _apply(_ew.remainder, (self, other), _NO)

    def __rmod__(self, other):
        return _apply(_ew.remainder, (other, self), _NO)

    def __matmul__(self, other):
        return _apply(_linalg.matmul, (self, other), _NO)

    def __rmatmul__(self, other):
        return _apply(_linalg.matmul, (other, self), _NO)

    def __neg__(self):
        return _apply(_ew.neg, (self,), _NO)

    def __pos__(self):
        return self

    def __abs__(self):
        return _apply(_ew.abs, (self,), _NO)

    # --- in-place updates: x += y keeps the object (the parameter a module holds) -------
    def _update_in_place(self, op, other):
        """Replace this tensor's values by op(self, other), keeping the object. Where the
        op is recorded (an input requires grad), the tensor takes the result's node, as
        in PyTorch: `acc = gg.zeros(2); acc += w * 3` carries w's gradient (copying the
        values alone dropped it)."""
        self._refuse_leaf_update()
        result = _apply(op, (self, other), _NO)
        if result.shape != self.shape:
            raise _annotate(f"{op.display_name} in place", ShapeError(
                f"an in-place update cannot change the shape {self.shape} to "
                f"{result.shape}"))
        if result._dtype is not self._dtype:
            result = self._result_in_own_dtype(result, op)
        return self._become(result)

    def __setitem__(self, key, value):
        """x[key] = value: the values at those positions replaced (value broadcast, in
        x's dtype), as an in-place update — the tensor keeps its object and takes the
        new values (into a view of another tensor, x[0][1] = v, it is refused: see
        _refuse_write_through)."""
        self._refuse_leaf_update()
        self._refuse_write_through()
        self._become(_shape.assign_index(self, key, value))

    def _refuse_write_through(self):
        """x[0][1] = v, or v written into x.detach() or x.T: NumPy and PyTorch write into
        x's memory, shared by the view; here the view takes new values of its own, and x
        would silently stay as it was. So refused where the arrays do share memory (not
        for a copy: x[[0, 1]], x[mask]) and something still holds x (or the tensor it is
        a view of in turn): a view of a temporary, gg.arange(6).reshape(2, 3), has no one
        to differ for. (Inside gg.compile's trace the trace holds every tensor: the plan
        does as the eager code does.)"""
        if _state.capture is not None:
            return
        base = self._base
        while base is not None:
            # references: the view's _base, `base` here, and getrefcount's argument
            if sys.getrefcount(base) > 3 and _may_share(self._device.backend.xp, self._data,
                                                        base._data):
                raise GraphError(
                    "item assignment into a view (made by indexing, a reshape, a transpose, "
                    "detach(), ...) of another tensor: NumPy and PyTorch write through to "
                    "that tensor, gpugrad's view would take new values of its own; index "
                    "the tensor itself (x[0, 1] = v, not x[0][1] = v), or write into a "
                    ".clone()")
            base = base._base

    def _become(self, result):
        """Take result's values (and, where recorded, its history) as this tensor's own."""
        self._save_apart(result._node)
        if _state.capture is not None:  # gg.compile's trace: the update is part of the plan
            if self._loses_gradient(result):
                self._requires_grad = False  # as in eager mode (see _take_history)
            _state.capture.assign(self, result)
            return self
        self._data = result._data
        self._take_history(result)
        self._mark_replaced()
        return self

    def _refuse_leaf_update(self):
        """A leaf that requires grad is updated under no_grad only: its gradient would be
        of a value it no longer holds (PyTorch refuses it too)."""
        from .mode import is_grad_enabled

        if self._requires_grad and self.is_leaf and is_grad_enabled():
            raise GraphError(
                "an in-place update of a leaf tensor that requires grad while the graph is "
                "recorded; do it under gg.no_grad(), e.g. `with gg.no_grad(): w -= lr * "
                f"w.grad` (at {format_site(user_site())})")

    def _save_apart(self, node):
        """The op just recorded (node) may have saved this tensor for its VJP (acc *= w
        keeps acc for w's gradient): it keeps a handle of its own on the value it read,
        since this tensor is about to hold the new one."""
        saved = node.saved if node is not None else None
        if saved is not None and any(t is self for t in saved):
            alias = Tensor._wrap(self._data, self._dtype, self._device, self._requires_grad,
                                 self._node)
            alias._version, alias._base = self._version, self._base
            node.saved = tuple(alias if t is self else t for t in saved)

    def _take_history(self, result):
        """After the update, this tensor is the op's result for autograd: where the op
        was recorded for gradients, or traced (gg.trace) for a tensor without them. An
        update under no_grad leaves a tensor that requires grad its history (its new
        values, the old graph), as in PyTorch. An update through an op without a
        gradient (y //= 2) leaves it none, as y = y // 2 does: the old history would give
        the replaced values' gradient to the new ones."""
        if self._loses_gradient(result):
            self._node, self._requires_grad = result._node, False
            return
        if result._node is None:
            return
        if result._requires_grad or (_state.tracing and not self._requires_grad):
            self._node, self._requires_grad = result._node, result._requires_grad

    def _loses_gradient(self, result):
        """Whether an update to result, recorded, leaves this tensor without a gradient:
        result came from an op that has none (y //= 2)."""
        return self._requires_grad and not result._requires_grad and _state.grad_enabled

    def _result_in_own_dtype(self, result, op):
        """The result in this tensor's dtype, where it keeps its kind (float64 into a
        float32 tensor); a float result into an int tensor is refused, as PyTorch and
        NumPy refuse it (x *= 2.5 truncated x silently)."""
        if not np.can_cast(result._dtype, self._dtype, casting="same_kind"):
            raise _annotate(f"{op.display_name} in place", DTypeError(
                f"the {result._dtype} result cannot be stored in the {self._dtype} tensor "
                f"without losing its kind; write x = x "
                f"{_SYMBOLS.get(op.name, op.display_name)} y for a new {result._dtype} "
                "tensor"))
        if result._requires_grad or _state.tracing:
            return result.astype(self._dtype)  # recorded: the gradient flows back through
        return Tensor._wrap(self._device.backend.astype(result._data, self._dtype),
                            self._dtype, self._device, False)

    def __iadd__(self, other):
        return self._update_in_place(_ew.add, other)

    def __isub__(self, other):
        return self._update_in_place(_ew.sub, other)

    def __imul__(self, other):
        return self._update_in_place(_ew.mul, other)

    def __itruediv__(self, other):
        return self._update_in_place(_ew.div, other)

    def __ifloordiv__(self, other):
        return self._update_in_place(_ew.floor_divide, other)

    def __imod__(self, other):
        return self._update_in_place(_ew.remainder, other)

    # --- comparisons and logic (no gradient) ------------------------------------------------------
    def __eq__(self, other):
        if _incomparable(other):
            return NotImplemented  # Python's answer then: False (`t in [None, t2]` works)
        return _apply(_ew.eq, (self, other), _NO)

    def __ne__(self, other):
        if _incomparable(other):
            return NotImplemented  # True
        return _apply(_ew.ne, (self, other), _NO)

    def __lt__(self, other):
        return _apply(_ew.lt, (self, other), _NO)

    def __le__(self, other):
        return _apply(_ew.le, (self, other), _NO)

    def __gt__(self, other):
        return _apply(_ew.gt, (self, other), _NO)

    def __ge__(self, other):
        return _apply(_ew.ge, (self, other), _NO)

    def __and__(self, other):
        return _apply(_ew.logical_and, (self, other), _NO)

    def __rand__(self, other):  # True & mask
        return _apply(_ew.logical_and, (other, self), _NO)

    def __or__(self, other):
        return _apply(_ew.logical_or, (self, other), _NO)

    def __ror__(self, other):
        return _apply(_ew.logical_or, (other, self), _NO)

    def __xor__(self, other):
        return _apply(_ew.logical_xor, (self, other), _NO)

    def __rxor__(self, other):
        return _apply(_ew.logical_xor, (other, self), _NO)

    def __invert__(self):
        return _apply(_ew.logical_not, (self,), _NO)

    __hash__ = object.__hash__  # identity, as for any mutable handle

    # --- functions --------------------------------------------------------------------------------
    def exp(self):
        return _apply(_ew.exp, (self,), _NO)

    def log(self):
        return _apply(_ew.log, (self,), _NO)

    def tanh(self):
        return _apply(_ew.tanh, (self,), _NO)

    def sigmoid(self):
        return _apply(_ew.sigmoid, (self,), _NO)

    def relu(self):
        return _apply(_ew.relu, (self,), _NO)

    def abs(self):
        return _apply(_ew.abs, (self,), _NO)

    def sqrt(self):
        return _apply(_ew.sqrt, (self,), _NO)

    def erf(self):
        return _apply(_ew.erf, (self,), _NO)

    def sign(self):
        return _apply(_ew.sign, (self,), _NO)

    def clip(self, lo=None, hi=None, *, min=None, max=None):  # noqa: A002
        return _ew.clip_values(self, lo, hi, min=min, max=max)

    clamp = clip

    # --- PyTorch's spellings of the operators and of nn.functional -----------------------
    def pow(self, exponent):
        return self ** exponent

    def neg(self):
        return -self

    def matmul(self, other):
        return self @ other

    def square(self):
        return self * self

    def softmax(self, axis=-1, *, dim=None):
        from .nn.functional import softmax

        return softmax(self, axis, dim=dim)

    def log_softmax(self, axis=-1, *, dim=None):
        from .nn.functional import log_softmax

        return log_softmax(self, axis, dim=dim)

    def masked_fill(self, mask, value):
        """value where the boolean `mask` (broadcast against self) is True, else self;
        the gradient flows to self where the mask is False. The result keeps self's
        dtype, as PyTorch's (2.5 into an int tensor is 2): where alone would promote."""
        from .functions import where

        out = where(mask, value, self)
        return out if out.dtype == self.dtype else out.astype(self.dtype)

    def clone(self):
        """A copy of the values, which gradients flow through (a new array: changing
        either in place leaves the other as it was)."""
        return _apply(_conv.clone, (self,), _NO)

    # --- reductions (axis=, keepdims=, or dim=, keepdim= for PyTorch habits) --------------
    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _reduce(_red.sum, self, axis, keepdims, dim, keepdim)

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _reduce(_red.mean, self, axis, keepdims, dim, keepdim)

    def max(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        _refuse_second_tensor("max", "maximum", axis)
        return _reduce(_red.max, self, axis, keepdims, dim, keepdim)

    def min(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        _refuse_second_tensor("min", "minimum", axis)
        return _reduce(_red.min, self, axis, keepdims, dim, keepdim)

    def var(self, axis=None, *, ddof=None, keepdims=False, dim=None, correction=None,
            unbiased=None, keepdim=None):
        """The mean squared deviation from the mean over `axis`, its sum divided by n - ddof
        rather than n. ddof defaults to 0, as NumPy's var does; PyTorch's var divides by
        n - 1 unless told otherwise: give ddof=1 (or PyTorch's correction=1) for that
        estimate. unbiased=True / False (PyTorch's older word) is ddof 1 / 0."""
        return _variance("var", self, axis, dim, keepdims, keepdim,
                         (ddof, correction, unbiased))

    def std(self, axis=None, *, ddof=None, keepdims=False, dim=None, correction=None,
            unbiased=None, keepdim=None):
        """The square root of var(...), with the same arguments (ddof 0 by default)."""
        return _root(_variance("std", self, axis, dim, keepdims, keepdim,
                               (ddof, correction, unbiased)))

    def argmax(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Index of the largest value (of the flattened tensor when axis is None)."""
        return _reduce(_red.argmax, self, axis, keepdims, dim, keepdim)

    def argmin(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _reduce(_red.argmin, self, axis, keepdims, dim, keepdim)

    def any(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Whether any element (over `axis`) is non-zero: a bool tensor, without gradient,
        as a comparison's."""
        return _reduce(_red.any, self, axis, keepdims, dim, keepdim)

    def all(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Whether every element (over `axis`) is non-zero: a bool tensor, without
        gradient; True over no elements, as NumPy's and PyTorch's."""
        return _reduce(_red.all, self, axis, keepdims, dim, keepdim)

    # --- shape ------------------------------------------------------------------------------------
    def reshape(self, *sizes, shape=None):
        """To a shape: separate ints, one tuple, or shape= (PyTorch's and NumPy's keyword)."""
        shape = _args_or_keyword("reshape", sizes, "shape", shape)
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        # Also to the same shape: a new tensor (a view), as PyTorch's, so that gg.grad
        # with respect to it is not that of self.
        return _apply(_shape.reshape, (self,), {"shape": shape})

    view = reshape

    def flatten(self):
        return self.reshape(-1)

    def unsqueeze(self, dim=None, *, axis=None):
        """A new axis of size 1 at position `dim` (negative: from the end), as PyTorch's;
        axis= is NumPy's word for it (np.expand_dims)."""
        dim = _axis_or_dim("unsqueeze", axis, dim)
        if dim is None:
            raise _annotate("unsqueeze", TypeError(
                "missing the position of the new axis: give dim (or axis=)"))
        ndim = self.ndim + 1
        if not -ndim <= dim < ndim:
            raise _annotate("unsqueeze", ShapeError(
                f"dim {dim} is out of range for a new axis of a tensor of shape "
                f"{self.shape} (expected -{ndim} <= dim < {ndim})"))
        dim = dim % ndim
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None, *, axis=None):
        """Without the axes of size 1 (all, or `dim`, an int or a tuple; axis= as NumPy
        says it); as PyTorch's, an axis of another size named in `dim` is kept."""
        dim = _axis_or_dim("squeeze", axis, dim)
        if dim is None:
            axes = set(range(self.ndim))
        else:
            try:
                axes = {_normalize_axis(d, self.ndim) for d in
                        (dim if isinstance(dim, (tuple, list)) else (dim,))}
            except GpugradError as exc:
                raise _annotate("squeeze", exc) from None
        return self.reshape(tuple(n for i, n in enumerate(self.shape)
                                  if not (i in axes and n == 1)))

    def dim(self):
        """The number of axes (PyTorch's spelling of .ndim)."""
        return self.ndim

    def numel(self):
        """The number of elements (PyTorch's spelling of .size)."""
        return self.size

    def transpose(self, *order, axes=None, dim0=None, dim1=None):
        """No axes (or None) reverses them (NumPy's and .T); two axes as separate ints, or
        PyTorch's dim0= and dim1=, swap them, as PyTorch's transpose(dim0, dim1) does;
        otherwise a full permutation of the axes (separate ints, one tuple, or axes= as
        np.transpose takes it) as in NumPy.

        So a matrix's transpose(0, 1) is its transpose, as a PyTorch user means it, never
        the identity permutation NumPy would read there (nobody asks for that); a
        permutation of three or more axes, and a tuple, read as in NumPy."""
        if dim0 is not None or dim1 is not None:
            return self.swapaxes(*_two_dims(order, axes, dim0, dim1))
        axes = _args_or_keyword("transpose", order, "axes", axes)
        if len(axes) == 1 and axes[0] is None:  # np.transpose(a, None): reversed
            axes = ()
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        elif len(axes) == 2 and all(isinstance(a, (int, np.integer)) for a in axes):
            return self.swapaxes(int(axes[0]), int(axes[1]))
        if not axes:
            axes = tuple(range(self.ndim - 1, -1, -1))
        return self.permute(axes)

    def permute(self, *order, dims=None):
        """The axes in the order `dims`: a full permutation (separate ints, one tuple, or
        dims=; negative ones count from the end), as PyTorch's permute."""
        dims = _args_or_keyword("permute", order, "dims", dims)
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        ndim = self.ndim
        # Anything out of range is left for the op's shape rule to reject clearly.
        dims = tuple(int(d) % ndim if isinstance(d, (int, np.integer)) and -ndim <= d < ndim
                     else d for d in dims)
        return _apply(_shape.transpose, (self,), {"axes": dims})

    def t(self):
        """A matrix's transpose (a vector or a number as it is), as PyTorch's t()."""
        if self.ndim > 2:
            raise _annotate("t", ShapeError(
                f"t() transposes tensors of at most 2 dimensions, not shape {self.shape}; "
                "use transpose(dim0, dim1) or permute(...)"))
        return self.transpose() if self.ndim == 2 else self.reshape(self.shape)

    def swapaxes(self, axis1, axis2):
        """Swap two axes (what transpose(axis1, axis2) does too)."""
        perm = list(range(self.ndim))
        i, j = _shape.normalize_axis_for(self, axis1), _shape.normalize_axis_for(self, axis2)
        perm[i], perm[j] = perm[j], perm[i]
        return _apply(_shape.transpose, (self,), {"axes": tuple(perm)})

    @property
    def T(self):
        return self.transpose()

    @property
    def mT(self):  # noqa: N802  (NumPy's and PyTorch's name)
        """The last two axes swapped: a stack of matrices, each transposed."""
        if self.ndim < 2:
            raise _annotate("mT", ShapeError(f"needs at least 2 axes, got shape {self.shape}"))
        return self.swapaxes(-2, -1)

    def broadcast_to(self, shape):
        return _apply(_shape.broadcast_to, (self,), {"shape": tuple(shape)})

    def __getitem__(self, key):
        return _shape.index(self, key)

    def __len__(self):
        if not self._data.shape:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if not self._data.shape:  # (checked here, not at the first next())
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    def __contains__(self, value):
        """`value in t`: whether any element equals value, over all axes, as NumPy's and
        PyTorch's `in` (iterating would compare rows, whose truth is ambiguous)."""
        found = self == value  # (None or a string: Python's False, no element equal)
        return isinstance(found, Tensor) and bool(found.any())

    # --- copies: a copy is a new leaf, never a second handle on the same node ---------
    def __copy__(self):
        return Tensor._wrap(self._data, self._dtype, self._device, self._requires_grad)

    def __deepcopy__(self, memo):
        backend = self._device.backend
        out = Tensor._wrap(backend.astype(self._data, self._dtype), self._dtype, self._device,
                           self._requires_grad)
        if self.grad is not None:
            out.grad = self.grad.__deepcopy__(memo)
        return out

    def __reduce__(self):
        # Values through a host copy; the graph is not part of a tensor's state.
        from .creation import tensor

        return tensor, (self.numpy(), self._dtype.name, str(self._device),
                        self._requires_grad)

    # --- Python conversions -----------------------------------------------------------------------
    def __bool__(self):
        if self.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is "
                             "ambiguous; use .any() or .all()")
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self._dtype.kind not in "iu":
            raise TypeError("only integer tensors can be used as an index")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        # Host arrays only: a device tensor must be copied explicitly with .numpy().
        if _state.capture is not None:  # np.asarray(t) inside gg.compile: as .numpy()
            _state.capture.host_read(self)
        if self._device.type != "cpu":
            raise TypeError(f"a tensor on {self._device} cannot become a NumPy array "
                            "implicitly; call .numpy() to copy it to the host")
        if copy is False:  # no copy asked: a read-only view, so the graph stays intact
            view = np.asarray(self._data, dtype=dtype).view()
            view.flags.writeable = False
            return view
        return np.array(self._data, dtype=dtype, copy=True)

    def __format__(self, spec):
        if spec and self.size == 1:
            return format(self.item(), spec)
        return str(self)

    def __repr__(self):
        values = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        extras = []
        if self._device.type != "cpu":
            extras.append(f"device='{self._device}'")
        if self._dtype not in (dtypes.float32, dtypes.int64, dtypes.bool_):
            extras.append(f"dtype={self._dtype.name}")
        if self._requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([values] + extras) + ")"


def _incomparable(other):
    """What `==` cannot take as a tensor: None, a string. The comparison then answers as
    Python's does for unrelated objects (False for ==), as PyTorch's."""
    return other is None or isinstance(other, (str, bytes))


def _is_device_name(target):
    from .backends import Device

    if isinstance(target, Device):
        return True
    return isinstance(target, str) and target.split(":")[0].strip().lower() in (
        "cpu", "cuda", "array_api_strict")


def _check_grad_fits(t, g):
    """A .grad assigned by hand is a Tensor of t's shape, dtype and device, as the
    optimisers and the backward's accumulation take it to be (PyTorch checks the same)."""
    if not isinstance(g, Tensor):
        raise TypeError(f".grad must be a Tensor or None, not {type(g).__name__}")
    if g.shape != t.shape:
        raise _annotate(".grad", ShapeError(
            f"the assigned gradient has shape {g.shape}, the tensor {t.shape}"))
    if g._dtype is not t._dtype:
        raise _annotate(".grad", DTypeError(
            f"the assigned gradient is {g._dtype}, the tensor {t._dtype}"))
    if g._device is not t._device:
        raise _annotate(".grad", DeviceError(
            f"the assigned gradient is on {g._device}, the tensor on {t._device}"))


def _reduce(op, x, axis, keepdims, dim, keepdim):
    axis = _axis_or_dim(op, axis, dim)
    if axis is not None and not x._data.shape:
        # A 0-d tensor: axis 0 (or -1), as PyTorch allows, reduces its one element, as
        # axis=None does; the kernels (NumPy's mean, max, ...) know no axis 0 there.
        try:
            _red.normalize_axes(axis, 0)
        except GpugradError as exc:
            raise _annotate(op, exc) from None
        axis = None
    return _apply(op, (x,), {"axis": axis, "keepdims": _keepdims(keepdims, keepdim)})


def _refuse_second_tensor(name, elementwise, axis):
    """PyTorch's x.max(y) and torch.max(x, y) are the elementwise maximum of two tensors;
    here the argument is an axis: where a tensor of values comes, say what to call."""
    if isinstance(axis, Tensor) and (axis.ndim or axis.dtype.kind not in "iu"):
        raise _annotate(name, TypeError(
            f"the {name} of two tensors, elementwise, is gg.{elementwise}(x, y); {name}'s "
            f"argument is an axis (an int or a tuple of ints), got a {axis.dtype} tensor of "
            f"shape {axis.shape}"))


def _axis_or_dim(op, axis, dim):
    """The axes a reduction `op` takes: axis=, or PyTorch's dim= (a list as a tuple)."""
    if dim is not None:
        if axis is not None:
            raise _annotate(op, TypeError("give axis= or dim=, not both"))
        axis = dim
    return tuple(axis) if isinstance(axis, list) else axis


def _may_share(xp, a, b):
    """Whether two arrays of namespace xp may share memory (their bounds overlap, as
    NumPy's and CuPy's may_share_memory tell); True where the namespace cannot tell."""
    check = getattr(xp, "may_share_memory", None)
    return True if check is None else bool(check(a, b))


def _args_or_keyword(op, args, name, value):
    """What a method taking *args was given: those args, or the keyword `name`= in their
    place (PyTorch's shape= and dims=, np.transpose's axes=), as a one-tuple that the
    method reads as it reads one tuple given positionally."""
    if value is None:
        return args
    if args:
        raise _annotate(op, TypeError(f"give the {name} as arguments or as {name}=, not both"))
    return (value,)


def _two_dims(args, axes, dim0, dim1):
    """transpose's two axes from PyTorch's dim0= and dim1=, bound as Python binds the
    arguments of transpose(dim0, dim1): transpose(0, dim1=1) is transpose(0, 1)."""
    dims = [dim0, dim1]
    if axes is not None or len(args) > 2 or any(d is not None for d in dims[:len(args)]):
        raise _annotate("transpose", TypeError(
            "dim0 and dim1 name the two axes to swap: give each once, positionally or "
            "as a keyword, and no axes= beside them"))
    dims[:len(args)] = args
    if any(d is None for d in dims):
        raise _annotate("transpose", TypeError(
            "dim0 and dim1 name the two axes to swap: give both"))
    return dims


def _variance(name, x, axis, dim, keepdims, keepdim, ddofs):
    """sum((x - mean)^2) / max(n - ddof, 0) over the axes, from the ops that have
    gradients already (of every order). Centred first, not E[x^2] - E[x]^2, which
    cancels to noise where the mean is large against the spread. The arguments are
    checked here, so that an error names `name` (var or std), not the mean inside."""
    ddof = _ddof(name, *ddofs)
    axis = _axis_or_dim(name, axis, dim)
    try:
        reduced = _red.normalize_axes(axis, x.ndim)
    except GpugradError as exc:
        raise _annotate(name, exc) from None
    half = x.dtype == np.float16  # its sums of squares pass 65,504 soon: in float32,
    if half:                      # as PyTorch's and NumPy's var compute them
        x = x.astype(np.float32)
    mean = _reduce(_red.mean, x, axis, True, None, None)
    centred = x - mean
    squares = _reduce(_red.sum, centred * centred, axis, keepdims, None, keepdim)
    n = math.prod(x.shape[a] for a in reduced) if x.ndim else 1
    # n - ddof <= 0: inf (or NaN for an empty sum), as NumPy and PyTorch give
    variance = squares / max(n - ddof, 0)
    return variance.astype(np.float16) if half else variance


def _root(variance):
    """std from var: sqrt, except that where the variance is 0 (all values equal) the
    gradient is 0, as PyTorch's std's, not sqrt's infinite slope times the zero
    deviations (NaN). The root is taken of 1 there, and the 0 selected after it."""
    flat = variance == 0
    return _ew.where(flat, 0.0, _ew.where(flat, 1.0, variance).sqrt())


def _ddof(name, ddof, correction, unbiased):
    """The one ddof that ddof=, correction= (PyTorch) or unbiased= (PyTorch's older
    boolean) says; 0 when none is given."""
    given = [(key, value) for key, value in (("ddof", ddof), ("correction", correction),
                                             ("unbiased", unbiased)) if value is not None]
    if len(given) > 1:
        raise _annotate(name, TypeError(
            f"give one of ddof=, correction= and unbiased=, got "
            f"{' and '.join(key + '=' for key, _ in given)}"))
    if not given:
        return 0
    key, value = given[0]
    if key == "unbiased":
        return int(bool(value))
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                         np.floating)) or value < 0:
        raise _annotate(name, TypeError(f"{key} must be a number >= 0, got {value!r}"))
    return value


def _keepdims(keepdims, keepdim):
    """keepdims=, or PyTorch's keepdim=. Only keepdims=True beside keepdim=False can be
    seen to disagree: keepdims=False is also what not giving it looks like."""
    if keepdim is None:
        return bool(keepdims)
    if keepdims and not keepdim:
        raise TypeError("give keepdims= or keepdim=, not both with different values")
    return bool(keepdim)


from .mode import state as _state  # noqa: E402
from .ops import conversion as _conv  # noqa: E402  (the ops need Tensor defined first)
from .ops import elementwise as _ew  # noqa: E402
from .ops import linalg as _linalg  # noqa: E402
from .ops import reduction as _red  # noqa: E402
from .ops import shape as _shape  # noqa: E402
from .ops.infer import normalize_axis as _normalize_axis  # noqa: E402
from .ops.registry import NO_ATTRS as _NO  # noqa: E402
from .ops.registry import _annotate  # noqa: E402
from .ops.registry import apply as _apply  # noqa: E402


def _device_or_dtype(name):
    """A name given to .to() that is not a device must be a dtype: else say both."""
    try:
        dtypes.as_dtype(name)
    except DTypeError:
        raise DeviceError(f".to({name!r}): neither a device (cpu, cuda, cuda:N, "
                          "array_api_strict) nor a dtype (float32, float64, int64, ...)"
                          ) from None


# Operators of the in-place updates, for their error messages.
_SYMBOLS = {"gpugrad::add": "+", "gpugrad::sub": "-", "gpugrad::mul": "*",
            "gpugrad::div": "/", "gpugrad::floor_divide": "//", "gpugrad::remainder": "%"}
