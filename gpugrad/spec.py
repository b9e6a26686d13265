"""Spec: what is known of a tensor without its values (shape, dtype, device); and
array_namespace, the array library an array belongs to."""

import operator
from typing import NamedTuple


class Spec(NamedTuple):
    shape: tuple
    dtype: object
    device: object = None


def array_namespace(*arrays):
    """The array namespace (numpy, cupy, array_api_strict) of backend arrays, as ops'
    kernels see it: write kernels against it and they run on every backend."""
    from .backends import device as as_device

    if not arrays:
        raise TypeError("array_namespace needs at least one array")
    modules = {type(a).__module__.split(".")[0] for a in arrays}
    if len(modules) > 1:
        kinds = ", ".join(sorted({f"{type(a).__module__}.{type(a).__name__}" for a in arrays}))
        raise TypeError(f"arrays of different libraries ({kinds}) have no common "
                        "namespace; a kernel gets arrays of one device")
    module = modules.pop()
    if module == "numpy":
        return as_device("cpu").backend.xp
    if module == "cupy":
        return as_device(f"cuda:{arrays[0].device.id}").backend.xp
    if module == "array_api_strict":
        return as_device("array_api_strict").backend.xp
    raise TypeError(f"not an array gpugrad knows: {type(arrays[0]).__name__}")


def whole_number(value, what):
    """A size given as an int (or a NumPy int), as an int: int(2.5) would cut it to 2
    without a word. Floats (3.0 too) and bools are refused, as PyTorch refuses them."""
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise TypeError(f"{what} must be an integer, got {value!r} ({type(value).__name__})")
    return operator.index(value)
