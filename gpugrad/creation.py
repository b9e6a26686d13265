"""Making tensors: from data (lists, NumPy arrays, device arrays), fills, ranges, random.

This is where host data becomes device data, explicitly: the user asked for a tensor on
a device from values they hold.
"""

import math

import numpy as np

from . import dtypes
from .backends import default_device, transfer
from .backends import device as as_device
from .errors import DTypeError, ShapeError
from .mode import state as _state
from .spec import whole_number
from .tensor import Tensor, array_of


def _finish(data, dtype, dev, requires_grad):
    if requires_grad and dtype.kind != "f":
        raise DTypeError(f"only floating-point tensors can require gradients, not {dtype} "
                         "(pass dtype='float32' or use float values)")
    t = Tensor._wrap(array_of(data), dtype, dev, bool(requires_grad))
    if _state.capture is not None:  # made inside gg.compile's trace: new at every call
        _state.capture.made(t)
    return t


def _device_array(data):
    """(device, dtype) of an array that already lives on a gpugrad device, else None."""
    module = type(data).__module__.split(".")[0]
    if module == "cupy":
        return as_device(f"cuda:{data.device.id}")
    if module == "array_api_strict":
        return as_device("array_api_strict")
    return None


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new leaf tensor holding a copy of `data`.

    Python floats (and lists of them) become float32, Python ints int64, bools bool; a
    NumPy array keeps its dtype; `dtype=` (a NumPy dtype or its name) overrides.
    """
    dtype = dtypes.as_dtype(dtype)
    dev = as_device(device) if device is not None else None
    if isinstance(data, Tensor):
        src = data.to(dev) if dev is not None else data
        if src is data:
            src = Tensor._wrap(data._device.backend.astype(data._data, data._dtype),
                               data._dtype, data._device, False)
        out = src.detach().astype(dtype) if dtype is not None else src.detach()
        return _finish(out._data, out._dtype, out._device, requires_grad)
    home = _device_array(data)
    if home is not None:
        dev = dev or home
        dt = dtype or home.backend.dtype_of(data)
        arr = transfer(home.backend.astype(data, dt), home, dev)
        return _finish(arr, dt, dev, requires_grad)
    from_python = not isinstance(data, np.ndarray) and not isinstance(data, np.generic)
    try:
        host = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise _annotate("tensor", DTypeError(
            f"cannot make a tensor from {type(data).__name__}: {exc}")) from None
    try:
        dt = dtype or dtypes.host_dtype(host, from_python)
    except DTypeError as exc:  # strings, complex numbers, None: named as a ragged list is
        raise _annotate("tensor", DTypeError(
            f"{exc} (from a {type(data).__name__})")) from None
    dev = dev or default_device()
    return _finish(dev.backend.from_host(host, dt), dt, dev, requires_grad)


def _annotate(name, exc):
    """exc naming `name` and the user's line, as an op's error does."""
    from .ops.registry import _annotate as annotate  # (the ops import this module)

    return annotate(name, exc)


def _shape(shape, keyword=None):
    """The shape from zeros(2, 3), zeros((2, 3)) or zeros(shape=(2, 3))."""
    if keyword is not None:
        if shape:
            raise TypeError("give the shape as arguments or as shape=, not both")
        shape = keyword if isinstance(keyword, (tuple, list)) else (keyword,)
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    out = tuple(whole_number(d, "a size in a shape") for d in shape)
    if any(d < 0 for d in out):
        raise _annotate("shape", ShapeError(f"a shape cannot have negative sizes, got {out}"))
    return out


def full(shape, fill_value, dtype=None, device=None, requires_grad=False):
    """A tensor of `shape` filled with `fill_value` (float32 unless dtype says)."""
    shape = _shape(shape if isinstance(shape, (tuple, list)) else (shape,))
    fill_value = _range_number(fill_value)  # (a 0-d tensor too, as PyTorch's full takes)
    if dtype is None:
        dtype = dtypes.scalar_dtype(fill_value, dtypes.bool_) \
            if not isinstance(fill_value, float) else dtypes.DEFAULT_FLOAT
    dtype = dtypes.as_dtype(dtype)
    _check_fits("full", fill_value, dtype)
    dev = as_device(device)
    return _finish(dev.backend.full(shape, fill_value, dtype), dtype, dev, requires_grad)


def _check_fits(name, value, dtype):
    """A fill value an integer dtype cannot hold is refused, as PyTorch refuses it: NumPy
    would fill with an arbitrary integer for NaN or inf (and warn, naming its own line),
    or raise a bare OverflowError for an int out of range."""
    if dtype.kind not in "iu" or isinstance(value, bool):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise _annotate(name, DTypeError(f"{value} cannot be stored in {dtype}"))
    info = np.iinfo(dtype)
    if not info.min <= value <= info.max:
        raise _annotate(name, DTypeError(
            f"{value} is out of the range of {dtype} ([{info.min}, {info.max}])"))


def zeros(*dims, shape=None, dtype=None, device=None, requires_grad=False):
    return full(_shape(dims, shape), 0.0, dtype=dtype, device=device, requires_grad=requires_grad)


def ones(*dims, shape=None, dtype=None, device=None, requires_grad=False):
    return full(_shape(dims, shape), 1.0, dtype=dtype, device=device, requires_grad=requires_grad)


def zeros_like(t, dtype=None, requires_grad=False, *, device=None):
    """Zeros of t's shape, in t's dtype and on t's device unless dtype= or device= say."""
    return full(t.shape, 0, dtype=dtype or t.dtype, device=device or t.device,
                requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False, *, device=None):
    return full(t.shape, 1, dtype=dtype or t.dtype, device=device or t.device,
                requires_grad=requires_grad)


def full_like(t, fill_value, dtype=None, requires_grad=False, *, device=None):
    return full(t.shape, fill_value, dtype=dtype or t.dtype, device=device or t.device,
                requires_grad=requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    """The (n, m) identity matrix (m = n by default), float32 unless dtype says."""
    n = whole_number(n, "eye's n")
    m = n if m is None else whole_number(m, "eye's m")
    dtype = dtypes.as_dtype(dtype) or dtypes.DEFAULT_FLOAT
    rows, cols = arange(n, device=device), arange(m, device=device)
    ones_on_diagonal = (rows.reshape(n, 1) == cols.reshape(1, m)).astype(dtype)
    return ones_on_diagonal.detach().requires_grad_(requires_grad)


def linspace(start, stop, num=50, dtype=None, device=None, requires_grad=False, *,
             steps=None):
    """num (or PyTorch's steps=) evenly spaced values from start to stop, both included:
    NumPy's numbers (the last one exactly stop), float32 unless dtype says."""
    num = whole_number(num if steps is None else steps, "linspace's number of values")
    return tensor(np.linspace(start, stop, num), dtype=dtype or dtypes.DEFAULT_FLOAT,
                  device=device, requires_grad=requires_grad)


def randint(low, high=None, size=(), dtype=None, device=None):
    """Integers drawn uniformly from [low, high) (from [0, low) without high), int64
    unless dtype says, from the device's generator (gg.manual_seed repeats them; inside
    gg.compile every run draws anew)."""
    if isinstance(high, (tuple, list)):  # PyTorch's randint(high, size)
        low, high, size = 0, low, high
    elif high is None:  # NumPy's randint(high, size=...)
        low, high = 0, low
    low, high = whole_number(low, "randint's low"), whole_number(high, "randint's high")
    if high <= low:
        raise ValueError(f"randint draws from [low, high): got low={low}, high={high}")
    dtype = dtypes.as_dtype(dtype) or dtypes.int64
    shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
    # A float64 in [0, 1) times the span, truncated: uniform on the integers (the bias
    # is below 2**-40 for spans up to 2**12), and drawn by every backend's uniform.
    span = rand(*shape, dtype="float64", device=device) * (high - low)
    return (span.astype("int64") + low).astype(dtype)


def arange(start, stop=None, step=1, dtype=None, device=None, requires_grad=False):
    """Evenly spaced values in [start, stop): int64 for ints, float32 otherwise. The
    bounds and step may be NumPy scalars or one-element tensors."""
    start, stop, step = (_range_number(v) for v in (start, stop, step))
    if stop is None:
        start, stop = 0, start
    if step == 0:  # (NumPy's ZeroDivisionError)
        raise _annotate("arange", ValueError("step must not be zero"))
    ints = all(isinstance(v, int) for v in (start, stop, step))
    dtype = dtypes.as_dtype(dtype) or (dtypes.int64 if ints else dtypes.DEFAULT_FLOAT)
    dev = as_device(device)
    # NumPy's arange in float64 (int64 for ints), then cast once: in float32 it adds a
    # step rounded to float32 again and again (arange(1, 0, -0.1) reached 0.6999999 for
    # 0.7), and into an int dtype it truncates the step first (arange(0, 3, 0.5,
    # dtype=int64) was six zeros; PyTorch refuses that step).
    exact = dtypes.int64 if ints else dtypes.float64
    data = dev.backend.arange(start, stop, step, exact)
    if dtype is not exact:
        data = dev.backend.astype(data, dtype)
    return _finish(data, dtype, dev, requires_grad)


def _range_number(value):
    """A bound or step of arange as the Python number it holds (a NumPy scalar, a tensor
    of one element: gg.arange(n) where n = x.shape[0] or a 0-d tensor)."""
    if isinstance(value, Tensor):
        return value.item()
    return dtypes.python_number(value)


def _float_dtype(name, dtype):
    """dtype (default float32) for random draws, which only a float dtype holds."""
    dtype = dtypes.as_dtype(dtype) or dtypes.DEFAULT_FLOAT
    if dtype.kind != "f":
        raise DTypeError(f"{name} draws floats: dtype {dtype} cannot hold them (draw, "
                         "then .astype(...))")
    return dtype


def randn(*dims, shape=None, dtype=None, device=None, requires_grad=False):
    """Standard normal samples (float32 unless dtype says), drawn on the device."""
    dtype = _float_dtype("randn", dtype)
    dev = as_device(device)
    return _random(dev, lambda: dev.backend.normal(_shape(dims, shape), dtype), dtype,
                   requires_grad)


def rand(*dims, shape=None, dtype=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1) (float32 unless dtype says), drawn on the device."""
    dtype = _float_dtype("rand", dtype)
    dev = as_device(device)
    return _random(dev, lambda: dev.backend.uniform(_shape(dims, shape), dtype), dtype,
                   requires_grad)


def _random(dev, draw, dtype, requires_grad):
    """A tensor of fresh random numbers; inside gg.compile's trace, the draw is recorded
    so that every run of the plan draws anew (a dropout mask is never frozen)."""
    from .mode import state

    out = _finish(draw(), dtype, dev, requires_grad)
    if state.capture is not None:
        state.capture.random(out, draw)
    return out


def manual_seed(seed):
    """Seed every device's random generator: the same seed gives the same numbers."""
    from .backends import seed_all
    from .mode import state

    seed_all(seed)
    if state.capture is not None:  # gg.compile's trace: every run seeds again, here
        state.capture.host_call(lambda: seed_all(seed))
