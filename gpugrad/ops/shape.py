"""Ops that move elements around: reshape, transpose, broadcast_to, indexing and its
scatter-add adjoint, concat and stack."""

from .. import dtypes
from ..errors import DeviceError, DTypeError, GpugradError, OutOfBoundsError, ShapeError
from ..mode import state
from ..tensor import Tensor
from .infer import broadcast_shapes, normalize_axis
from .registry import _annotate, _is_host_array, apply, define

# --- reshape -----------------------------------------------------------------------------------


def resolve_shape(shape, size):
    """A concrete shape from one that may hold a single -1, checked against `size`."""
    shape = tuple(int(d) for d in shape)
    unknown = [i for i, d in enumerate(shape) if d == -1]
    if len(unknown) > 1 or any(d < -1 for d in shape):
        raise ShapeError(f"bad target shape {shape}: at most one -1 and no other negatives")
    known = 1
    for d in shape:
        if d != -1:
            known *= d
    if unknown:
        if known == 0 or size % known:
            raise ShapeError(f"cannot reshape {size} elements into {shape}")
        shape = shape[:unknown[0]] + (size // known,) + shape[unknown[0] + 1:]
    elif known != size:
        raise ShapeError(f"cannot reshape {size} elements into {shape} ({known} elements)")
    return shape


def _size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _reshape_infer(x, shape):
    return resolve_shape(shape, _size(x.shape)), x.dtype


reshape = define("gpugrad::reshape", infer=_reshape_infer, returns_view=True,
                 forward=lambda xp, x, shape: xp.reshape(x, shape),
                 vjp=lambda ctx, g: (reshaped(g, ctx.input_specs[0].shape),))


def reshaped(t, shape):
    """t in `shape`, t itself where it has it: for VJPs, which need no node for nothing.
    (A user's t.reshape(t.shape) is a new tensor, as in PyTorch: gg.grad with respect to
    it is the gradient of that tensor, not of t.)"""
    return t if t.shape == tuple(shape) else apply(reshape, (t,), {"shape": tuple(shape)})


# --- transpose ---------------------------------------------------------------------------------
def _transpose_infer(x, axes):
    ndim = len(x.shape)
    if not all(isinstance(a, int) and -ndim <= a < ndim for a in axes) or \
            sorted(a % ndim for a in axes) != list(range(ndim)):
        raise ShapeError(f"axes {tuple(axes)} are not a permutation of the "
                         f"{ndim} axes of a tensor of shape {tuple(x.shape)}")
    return tuple(x.shape[a] for a in axes), x.dtype


def _transpose_vjp(ctx, g):
    axes = [a % len(g.shape) for a in ctx.attrs["axes"]]
    inverse = [0] * len(axes)
    for i, a in enumerate(axes):
        inverse[a] = i
    return (g.transpose(tuple(inverse)),)


transpose = define("gpugrad::transpose", infer=_transpose_infer, returns_view=True,
                   forward=lambda xp, x, axes: xp.permute_dims(x, axes), vjp=_transpose_vjp)


def normalize_axis_for(x, axis):
    """One axis of tensor x in [0, ndim); errors name the op and the user's line."""
    try:
        return normalize_axis(axis, x.ndim)
    except GpugradError as exc:
        raise _annotate(transpose, exc) from None


# --- broadcast_to ------------------------------------------------------------------------------
def _broadcast_infer(x, shape):
    shape = tuple(shape)
    if len(shape) < len(x.shape) or broadcast_shapes(x.shape, shape) != shape:
        raise ShapeError(f"cannot broadcast shape {tuple(x.shape)} to {shape}")
    return shape, x.dtype


# The engine sums the gradient back to the input's shape: the VJP is the identity.
broadcast_to = define("gpugrad::broadcast_to", infer=_broadcast_infer, returns_view=True,
                      forward=lambda xp, x, shape: xp.broadcast_to(x, shape),
                      vjp=lambda ctx, g: (g,))


# --- indexing ------------------------------------------------------------------------------------
# An index is split in two: a template of ints, slices, None, Ellipsis and SLOT markers
# (the op's attrs: fixed for the op, like a reshape's shape), and the index arrays that
# fill the slots, in order, as the op's inputs. As inputs, the arrays are values of the
# graph like any other: a compiled plan reads each call's indices (attrs are constants
# of a plan), and an index tensor changed in place after the op is caught as such.
class _Slot:
    """Where an index array stands in an index template."""

    __slots__ = ()

    def __repr__(self):
        return "array"

    def __reduce__(self):  # copies (a deepcopy of attrs) are the marker itself
        return "SLOT"


SLOT = _Slot()


def _is_array(item):
    return hasattr(item, "shape") and not isinstance(item, (int, float))


def _filled(index, arrays):
    """The template `index` with its slots replaced by `arrays` (or their specs)."""
    if not arrays:
        return index
    rest = iter(arrays)
    return tuple(next(rest) if i is SLOT else i for i in index)


# x[True] (a Python bool, a NumPy one, a 0-d bool tensor): NumPy reads it as a new axis
# of size 1 or 0, which nothing here needs; said plainly rather than half-supported.
_ZERO_D_BOOL = ("a 0-d boolean index (x[True]) is not supported; index with None for a "
                "new axis, or with a boolean mask of the axes' shape")


def normalize_index(x, index):
    """(template, index tensors) of x[index]: the template holds ints, slices, None,
    Ellipsis and a SLOT for each integer index tensor, on x's device (bool masks
    become their nonzero positions). Tensors must live on x's device; lists become
    index tensors there; NumPy arrays only index CPU tensors."""
    if not isinstance(index, tuple):
        index = (index,)
    device = x._device
    out, tensors = [], []
    taken = []  # how many of x's axes each index item stands for (Ellipsis: all the rest)
    masks = []  # (position in the index, shape) of each boolean mask
    for item in index:
        if _is_host_array(item) and item.ndim == 0:  # a NumPy scalar: a Python number
            item = item.item()
        if isinstance(item, Tensor) or isinstance(item, list) or _is_host_array(item):
            array, dtype = _index_array(item, device)
        elif isinstance(item, bool):
            raise DTypeError(_ZERO_D_BOOL)
        elif not (item is None or item is Ellipsis or isinstance(item, (int, slice))):
            raise DTypeError(f"unsupported index {item!r} of type {type(item).__name__}; "
                             "use ints, slices, None, ..., or integer/bool tensors")
        else:
            out.append(item)
            taken.append(item if item is Ellipsis else 0 if item is None else 1)
            continue
        if dtype.kind == "b":
            if not array.shape:
                raise DTypeError(_ZERO_D_BOOL)
            masks.append((len(taken), tuple(array.shape)))
            taken.append(len(array.shape))
        else:
            taken.append(1)
        picked = _index_tensors(item, array, dtype, device)
        out.extend([SLOT] * len(picked))
        tensors.extend(picked)
    if masks:
        _check_masks(tuple(x.shape), taken, masks)
    consumed = sum(1 for i in out if i is not None and i is not Ellipsis)
    if consumed < len(x.shape) and not any(i is Ellipsis for i in out) and not tensors:
        out.append(Ellipsis)  # explicit, as the array API requires
    return tuple(out), tuple(tensors)


def _index_array(item, device):
    """(backend array, dtype) of a tensor, list or NumPy array used as an index."""
    if isinstance(item, Tensor):
        if item._device is not device:
            raise DeviceError(f"index tensor on {item._device} for a tensor on {device}")
        return item._data, item._dtype
    if not isinstance(item, list) and device.type != "cpu":
        raise DeviceError(f"a NumPy array cannot index a tensor on {device}; make "
                          "it a tensor there with gg.tensor(index, device=...)")
    backend = device.backend
    array = backend.from_host(item, None)  # a list: the user's literal index
    dtype = backend.dtype_of(array)
    if dtype.kind == "f" and array.size == 0:  # [] picks nothing, as in NumPy
        array, dtype = backend.astype(array, dtypes.int64), dtypes.int64
    return array, dtype


def _index_tensors(item, array, dtype, device):
    """The integer index tensors an index item stands for: an integer tensor itself
    (so that the graph reads it), a list's or NumPy array's values as a new tensor,
    and a boolean mask's nonzero positions, one tensor per axis."""
    if dtype.kind not in "iub":
        raise DTypeError(f"index arrays must be integers or bools, got {dtype}")
    if dtype.kind != "b":
        return [item] if isinstance(item, Tensor) else [Tensor._wrap(array, dtype, device,
                                                                     False)]
    if isinstance(item, Tensor) and state.capture is not None:
        # How many elements a mask picks is known only from its values, when the plan
        # runs; a plan's shapes are fixed when it is made (a list or NumPy mask is the
        # function's own constant: its positions are fixed too, and are planned).
        from ..compiler.capture import CompileError

        raise CompileError("indexing by a boolean mask tensor inside gg.compile: the "
                           "result's shape depends on the mask's values, which a plan "
                           "cannot know ahead; use gg.where(mask, x, 0) (same shape as "
                           "x) or integer index tensors")
    backend = device.backend
    return [Tensor._wrap(p, backend.dtype_of(p), device, False)
            for p in backend.xp.nonzero(array)]


def _check_masks(shape, taken, masks):
    """Refuse a boolean mask whose shape is not that of the axes it stands for: its
    nonzero positions would otherwise pick quietly from the wrong elements (NumPy and
    PyTorch raise an IndexError too)."""
    named = sum(t for t in taken if t is not Ellipsis)
    starts, dim = [], 0
    for t in taken:
        starts.append(dim)
        dim += max(len(shape) - named, 0) if t is Ellipsis else t
    for position, mask_shape in masks:
        start = starts[position]
        axes = shape[start:start + len(mask_shape)]
        if axes != mask_shape:
            raise OutOfBoundsError(
                f"boolean mask of shape {mask_shape} does not match the indexed shape "
                f"{axes} from axis {start} of a tensor of shape {shape}")


_ADVANCED = object()  # where an advanced (array or, beside arrays, int) index stood


def indexed_shape(shape, index):
    """The shape x[index] has, for x of `shape` and a normalized index, by NumPy's rules
    (computed from shapes alone: index arrays' values are the kernel's business)."""
    consumed = sum(1 for i in index if i is not None and i is not Ellipsis)
    if consumed > len(shape):
        raise ShapeError(f"too many indices ({consumed}) for shape {tuple(shape)}")
    if sum(1 for i in index if i is Ellipsis) > 1:
        raise ShapeError("an index can only have a single ellipsis ('...')")
    items = []
    for i in index:
        items.extend([slice(None)] * (len(shape) - consumed) if i is Ellipsis else [i])
    items.extend([slice(None)] * (len(shape) - sum(1 for i in items if i is not None)))
    arrays = any(_is_array(i) for i in items)
    out, advanced, dim = [], [], 0
    for item in items:
        if item is None:
            out.append(1)
            continue
        size = shape[dim]
        dim += 1
        if isinstance(item, slice):
            out.append(len(range(*item.indices(size))))
        elif _is_array(item):
            advanced.append(tuple(item.shape))
            out.append(_ADVANCED)
        else:
            if not -size <= item < size:
                raise OutOfBoundsError(f"index {item} is out of bounds for axis {dim - 1} with "
                                 f"size {size}")
            if arrays:  # beside index arrays, an int is one more (0-d) advanced index
                advanced.append(())
                out.append(_ADVANCED)
    if not advanced:
        return tuple(out)
    try:
        picked = broadcast_shapes(*advanced)
    except ShapeError:
        listed = ", ".join(str(a) for a in advanced)
        raise ShapeError(f"index arrays of shapes {listed} cannot be broadcast") from None
    rest = [v for v in out if v is not _ADVANCED]
    # Adjacent advanced indices put their result where they stand; apart, in front.
    # Adjacent as written: a '...' between two (even one that stands for no axis) or a
    # None parts them, as in NumPy.
    written = [k for k, i in enumerate(index)
               if _is_array(i) or (arrays and i is not None and i is not Ellipsis
                                   and not isinstance(i, slice))]
    adjacent = written == list(range(written[0], written[0] + len(written)))
    at = out.index(_ADVANCED) if adjacent else 0
    return tuple(rest[:at]) + tuple(picked) + tuple(rest[at:])


def _getitem_infer(x, *arrays, index):
    return indexed_shape(x.shape, _filled(index, arrays)), x.dtype


def _getitem_generic(xp, x, *arrays, index):
    index = _filled(index, arrays)
    # The standard allows integer arrays only next to integers; one 1-D array picking
    # along the first axis (x[rows]) is `take`.
    if len(index) == 1 and _is_array(index[0]) and len(x.shape) > 1 \
            and len(index[0].shape) == 1:
        return xp.take(x, index[0], axis=0)
    return x[index]


def _getitem_ndarray(xp, x, *arrays, index):
    return x[_filled(index, arrays) if arrays else index]


def _getitem_vjp(ctx, g):
    arrays = ctx.inputs[1:]
    grad = scatter_add(g, *arrays, index=ctx.attrs["index"],
                       shape=ctx.input_specs[0].shape)
    return (grad,) + (None,) * len(arrays)


# Its inputs: x, then the index arrays; the VJP reads only the arrays.
_INDEX_ARRAYS = tuple(range(1, 256))

getitem = define("gpugrad::getitem", infer=_getitem_infer, forward=_getitem_generic,
                 returns_view=True, saves=_INDEX_ARRAYS,
                 kernels={"numpy": _getitem_ndarray, "cupy": _getitem_ndarray},
                 vjp=_getitem_vjp)


def index(x, key):
    """x[key] with the key normalized; errors name the op and the user's line."""
    try:
        key, arrays = normalize_index(x, key)
    except GpugradError as exc:
        raise _annotate(getitem, exc) from None
    if not arrays:  # ints and slices: the common case, one argument
        return apply(getitem, (x,), {"index": key})
    return apply(getitem, (x, *arrays), {"index": key})


# scatter_add(g, *arrays, index, shape): zeros of `shape` with g added at x[index]
# (index: a template, its slots filled by arrays), repeated positions adding up. It is
# getitem's adjoint (and getitem is its own).
def _scatter_generic(xp, g, *arrays, index, shape):
    out = xp.zeros(shape, dtype=g.dtype)
    if not arrays:
        if any(i is None for i in index):  # setitem takes no new axes: drop them from g
            index = tuple(i for i in index if i is not None)
            g = xp.reshape(g, indexed_shape(shape, index))
        out[index] = g
        return out
    # The standard has no scatter: find each picked element's flat position by indexing
    # an arange, and sum g into place with a one-hot matrix (fine for small arrays, which
    # is what this reference kernel is for).
    size = _size(shape)
    positions = xp.reshape(_getitem_generic(xp, xp.reshape(xp.arange(size), shape),
                                            *arrays, index=index), (-1,))
    onehot = xp.astype(positions[:, None] == xp.arange(size)[None, :], g.dtype)
    return xp.reshape(xp.reshape(g, (1, -1)) @ onehot, shape)


def _scatter_ufunc_at(xp, g, *arrays, index, shape):
    # NumPy and CuPy: ufunc.at adds repeated positions up; plain assignment is faster
    # when the index has no arrays (no repeats possible).
    out = xp.zeros(shape, dtype=g.dtype)
    if arrays:
        xp.add.at(out, _filled(index, arrays), g)
    else:
        out[index] = g
    return out


def _scatter_infer(g, *arrays, index, shape):
    expected = indexed_shape(shape, _filled(index, arrays))
    if tuple(g.shape) != tuple(expected):
        raise ShapeError(f"values of shape {tuple(g.shape)} do not fit the {expected} "
                         f"positions the index picks from shape {tuple(shape)}")
    return tuple(shape), g.dtype


def _scatter_vjp(ctx, g):
    arrays = ctx.inputs[1:]
    return (apply(getitem, (g, *arrays), {"index": ctx.attrs["index"]}),) + \
        (None,) * len(arrays)


scatter_add = define("gpugrad::scatter_add", infer=_scatter_infer, forward=_scatter_generic,
                     saves=_INDEX_ARRAYS,
                     kernels={"numpy": _scatter_ufunc_at, "cupy": _scatter_ufunc_at},
                     vjp=_scatter_vjp)


# setitem(x, values, *arrays, index): a copy of x with `values` (broadcast) written at
# x[index] — what `x[index] = values` gives the tensor (Tensor.__setitem__). Gradients:
# x's where it was not overwritten, the values' at the positions they went to. Where an
# index array names a position twice, which of its values lands there is NumPy's (and
# PyTorch's) business, as is the gradient's.
def _landing_shape(values_shape):
    """The values' shape without leading axes of size 1, which NumPy (and PyTorch) drop
    when writing: y[1] = [[1, 2, 3]] fills a row of three."""
    shape = tuple(values_shape)
    while shape and shape[0] == 1:
        shape = shape[1:]
    return shape


def _setitem_infer(x, values, *arrays, index):
    picked = indexed_shape(x.shape, _filled(index, arrays))
    try:
        fits = broadcast_shapes(_landing_shape(values.shape), picked) == tuple(picked)
    except ShapeError:
        fits = False
    if not fits:
        raise ShapeError(f"values of shape {tuple(values.shape)} cannot be broadcast to "
                         f"the {tuple(picked)} positions x[index] picks from shape "
                         f"{tuple(x.shape)}")
    return tuple(x.shape), x.dtype


def _setitem_ndarray(xp, x, values, *arrays, index):
    out = xp.array(x, copy=True)  # (x.copy() of a 0-d NumPy result is a scalar, read-only)
    out[_filled(index, arrays) if arrays else index] = values.reshape(
        _landing_shape(values.shape))
    return out


def _setitem_generic(xp, x, values, *arrays, index):
    # The standard writes through basic indices only (no new axes): the values go in
    # shaped as they land; with integer index arrays, each position takes the last
    # value aimed at it, as NumPy's assignment does (the reference kernel, for small
    # arrays: a one-hot matrix of which value goes where).
    shape = tuple(x.shape)
    values = xp.broadcast_to(xp.reshape(values, _landing_shape(values.shape)),
                             indexed_shape(shape, _filled(index, arrays)))
    if arrays:
        size = _size(shape)
        positions = xp.reshape(_getitem_generic(xp, xp.reshape(xp.arange(size), shape),
                                                *arrays, index=index), (-1,))
        count = positions.shape[0]
        aims = positions[:, None] == xp.arange(size)[None, :]  # value i goes to position j
        order = xp.reshape(xp.arange(1, count + 1), (-1, 1))
        last = xp.max(xp.where(aims, order, 0), axis=0) - 1  # the last value aimed, or -1
        hit = last >= 0
        placed = xp.take(xp.reshape(values, (-1,)), xp.where(hit, last, 0))
        return xp.where(xp.reshape(hit, shape), xp.reshape(placed, shape), x)
    index = tuple(i for i in index if i is not None)
    out = xp.asarray(x, copy=True)
    out[index] = xp.reshape(values, indexed_shape(shape, index))
    return out


def _setitem_vjp(ctx, g):
    arrays = ctx.inputs[2:]
    index = ctx.attrs["index"]
    need_x, need_values = ctx.needs_input_grad[:2]
    grad_x = grad_values = None
    if need_x:  # what was overwritten had no say in the result
        zero = Tensor._wrap(g.device.backend.full((), 0, g.dtype), g.dtype, g.device, False)
        grad_x = apply(setitem, (g, zero, *arrays), {"index": index})
    if need_values:  # (summed back to the values' own shape by the engine)
        grad_values = apply(getitem, (g, *arrays), {"index": index})
        dropped = len(ctx.input_specs[1].shape) - len(grad_values.shape)
        if dropped > 0:  # the leading axes of size 1 the values came with
            grad_values = grad_values.reshape((1,) * dropped + grad_values.shape)
    return (grad_x, grad_values) + (None,) * len(arrays)


setitem = define("gpugrad::setitem", infer=_setitem_infer, forward=_setitem_generic,
                 saves=tuple(range(2, 256)),
                 kernels={"numpy": _setitem_ndarray, "cupy": _setitem_ndarray},
                 vjp=_setitem_vjp)


def assign_index(x, key, values):
    """The tensor x[key] = values makes: values in x's dtype (as NumPy and PyTorch cast
    them), on x's device."""
    mask = _lone_mask(x, key)
    if mask is not None and state.capture is not None:
        filled = _one_value(x, values)
        if filled is not None:
            return _masked_fill(x, mask, filled)
    try:
        key, arrays = normalize_index(x, key)
    except GpugradError as exc:
        raise _annotate(setitem, exc) from None
    if not isinstance(values, Tensor):
        from ..creation import tensor

        values = tensor(values, dtype=x.dtype, device=x.device)
    elif values.dtype is not x.dtype:
        values = values.astype(x.dtype)
    return apply(setitem, (x, values, *arrays), {"index": key})


def _lone_mask(x, key):
    """The boolean mask tensor that is the whole key (x[mask] = v), standing for x's
    leading axes, or None."""
    if isinstance(key, tuple) and len(key) == 1:
        key = key[0]
    if (isinstance(key, Tensor) and key.dtype.kind == "b" and key.shape
            and key._device is x._device and tuple(x.shape[:key.ndim]) == key.shape):
        return key
    return None


def _one_value(x, values):
    """values as one 0-d tensor of x's dtype, where it is one value that no gradient
    flows into (a number, or a tensor of one element that does not require grad), or
    None."""
    if not isinstance(values, Tensor):
        if not isinstance(values, (bool, int, float)):
            return None
        from ..creation import tensor

        values = tensor(values, dtype=x.dtype, device=x.device)
    if values._requires_grad or _landing_shape(values.shape) or values._device is not x._device:
        return None
    if values.dtype is not x.dtype:
        values = values.astype(x.dtype)
    return values.reshape(())


def _masked_fill(x, mask, value):
    """x[mask] = value inside gg.compile's trace: where(mask, value, x), the same values
    and gradient for x, in a shape that does not depend on how many elements the mask
    picks (as x[mask] itself, of a shape only the mask's values say, would)."""
    if mask.ndim < x.ndim:  # a mask of the leading axes: the rest broadcast
        mask = mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim))
    return x.masked_fill(mask, value)


# --- concat and stack -----------------------------------------------------------------------------
def _concat_infer(*xs, axis=0):
    if not xs:
        raise ShapeError("needs at least one tensor")
    ndim = len(xs[0].shape)
    if ndim == 0:
        raise ShapeError("cannot concatenate 0-d tensors; use stack")
    ax = normalize_axis(axis, ndim)
    first = xs[0].shape
    total = 0
    for x in xs:
        differs = len(x.shape) != ndim or any(
            d != e for i, (d, e) in enumerate(zip(x.shape, first, strict=True)) if i != ax)
        if differs:
            listed = ", ".join(str(tuple(t.shape)) for t in xs)
            raise ShapeError(f"shapes {listed} differ outside axis {axis}")
        total += x.shape[ax]
    return first[:ax] + (total,) + first[ax + 1:], xs[0].dtype


def _concat_vjp(ctx, g):
    ax = normalize_axis(ctx.attrs.get("axis", 0), len(g.shape))
    grads, start = [], 0
    for spec, need in zip(ctx.input_specs, ctx.needs_input_grad, strict=True):
        stop = start + spec.shape[ax]
        grads.append(g[(slice(None),) * ax + (slice(start, stop),)] if need else None)
        start = stop
    return tuple(grads)


concat = define("gpugrad::concat", infer=_concat_infer,
                forward=lambda xp, *xs, axis=0: xp.concat(xs, axis=axis),
                vjp=_concat_vjp, promote="common")


def _stack_infer(*xs, axis=0):
    if not xs:
        raise ShapeError("needs at least one tensor")
    first = tuple(xs[0].shape)
    if any(tuple(x.shape) != first for x in xs):
        listed = ", ".join(str(tuple(t.shape)) for t in xs)
        raise ShapeError(f"all tensors must have the same shape, got {listed}")
    ax = normalize_axis(axis, len(first) + 1)
    return first[:ax] + (len(xs),) + first[ax:], xs[0].dtype


def _stack_vjp(ctx, g):
    ax = normalize_axis(ctx.attrs.get("axis", 0), len(g.shape))
    return tuple(g[(slice(None),) * ax + (i,)] if need else None
                 for i, need in enumerate(ctx.needs_input_grad))


stack = define("gpugrad::stack", infer=_stack_infer,
               forward=lambda xp, *xs, axis=0: xp.stack(xs, axis=axis),
               vjp=_stack_vjp, promote="common")
