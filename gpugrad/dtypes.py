"""Dtype parsing and promotion, following PyTorch's habits on top of NumPy dtypes.

gpugrad names dtypes with NumPy dtype objects on every backend; a backend maps them to
its own dtype objects where they differ (array-api-strict).
"""

import numpy as np

from .errors import DTypeError

bool_ = np.dtype(np.bool_)
int8, int16, int32, int64 = (np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64))
uint8 = np.dtype(np.uint8)
float16, float32, float64 = (np.dtype(t) for t in (np.float16, np.float32, np.float64))

DEFAULT_FLOAT = float32
DEFAULT_INT = int64
SUPPORTED = (bool_, int8, int16, int32, int64, uint8, float16, float32, float64)


def as_dtype(dtype):
    """A NumPy dtype from a dtype, a type or a name ("float64"); None stays None."""
    if dtype is None:
        return None
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise DTypeError(f"not a dtype: {dtype!r}") from exc
    if dt not in SUPPORTED:
        names = ", ".join(d.name for d in SUPPORTED)
        raise DTypeError(f"dtype {dt.name} is not supported; use one of {names}")
    return dt


def _promote_pair(a, b):
    # PyTorch: a float dtype wins over any integer or bool one (int64 + float32 -> float32);
    # within one kind the wider dtype wins.
    if a is b:
        return a
    fa, fb = a.kind == "f", b.kind == "f"
    if fa and not fb:
        return a
    if fb and not fa:
        return b
    return np.result_type(a, b)


_PROMOTIONS = {}


def promote(a, b):
    """The dtype an op on tensors of dtypes a and b computes in (cached: it is hot)."""
    key = (a, b)
    out = _PROMOTIONS.get(key)
    if out is None:
        out = _PROMOTIONS[key] = _promote_pair(a, b)
    return out


def to_float(dtype):
    """The float dtype a float-valued op (exp, division, ...) computes integers in."""
    return dtype if dtype.kind == "f" else DEFAULT_FLOAT


def scalar_dtype(value, other):
    """The dtype a Python scalar takes next to a tensor of dtype `other` (weak scalars)."""
    if value.__class__ is float and other.kind == "f":
        return other
    if isinstance(value, bool):
        return other
    if isinstance(value, int):
        return other if other.kind != "b" else DEFAULT_INT
    if isinstance(value, float):
        return other if other.kind == "f" else DEFAULT_FLOAT
    raise DTypeError(f"unsupported scalar {value!r} of type {type(value).__name__}")


def host_dtype(array, from_python):
    """The dtype gg.tensor gives data converted on the host by NumPy.

    Python floats become float32 and ints int64; a NumPy array keeps its dtype.
    """
    dt = array.dtype
    if from_python and dt == float64:
        return DEFAULT_FLOAT
    if from_python and (dt == np.uint64 or dt.kind == "O" and _holds_int(array)):
        # NumPy's uint64 (or objects) for ints past int64: not a dtype the user chose
        raise DTypeError("a Python int does not fit int64 (from -2**63 to 2**63 - 1); "
                         "pass dtype='float64' for such numbers")
    if dt.kind in "OUSV" or dt.kind == "c":
        raise DTypeError(f"cannot make a tensor of dtype {dt}")
    return as_dtype(dt)


def _holds_int(array):
    """Whether an object array NumPy made from Python data holds an int past int64 (NumPy
    keeps those as objects); its first elements say."""
    return any(isinstance(v, int) and not -2**63 <= v < 2**63
               for v in array.reshape(-1)[:64])


def python_number(value):
    """A NumPy scalar (or 0-d NumPy array) as the Python number it holds, which then
    takes a tensor's dtype as a Python number does (np.float64(0.5) must not widen a
    float32 result); anything else as it is."""
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        return value.item()
    return value
