"""The array-api-strict backend, for tests.

array-api-strict is the reference implementation of the Python array API standard. Like
CuPy, it refuses NumPy arrays mixed into its operations, and it has nothing beyond the
standard, so the generic kernels running here prove they are portable and that no host
array leaks into device code. It is a separate device, "array_api_strict".
"""

import numpy as np

from .base import Backend, HostRandomMixin


def _import():
    import array_api_strict

    return array_api_strict


class StrictBackend(HostRandomMixin, Backend):
    name = "array_api_strict"

    def __init__(self, device):
        super().__init__(device)
        self.xp = _import()
        names = ("bool", "int8", "int16", "int32", "int64", "uint8",
                 "float16", "float32", "float64")
        pairs = [(np.dtype(n if n != "bool" else np.bool_), getattr(self.xp, n)) for n in names
                 if hasattr(self.xp, n)]
        self._to_native = dict(pairs)
        self._to_numpy = {native: np_dt for np_dt, native in pairs}

    def native_dtype(self, dtype):
        return self._to_native[dtype]

    def dtype_of(self, array):
        return self._to_numpy[array.dtype]

    def updatable(self, array):
        # (its arrays keep their NumPy array, and with it the memory they share, apart)
        return super().updatable(getattr(array, "_array", array))

    def from_host(self, array, dtype):
        return self.xp.asarray(np.array(array, dtype=dtype, copy=True))

    def to_host(self, array):
        return np.array(np.from_dlpack(array), copy=True)

    def describe(self):
        return {"backend": self.name, "device": "array_api_strict",
                "array_api_strict": getattr(self.xp, "__version__", "?")}
