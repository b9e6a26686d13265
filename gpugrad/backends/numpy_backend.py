"""The NumPy backend: the CPU, and the reference every other backend is checked against."""

import numpy as np

from .base import Backend, HostRandomMixin


class NumpyBackend(HostRandomMixin, Backend):
    name = "numpy"
    xp = np

    def from_host(self, array, dtype):
        return np.array(array, dtype=dtype, copy=True)

    def to_host(self, array):
        return np.array(array, copy=True)

    def astype(self, array, dtype):
        return array.astype(dtype)

    def full(self, shape, value, dtype):
        return np.full(shape, value, dtype=dtype)

    def describe(self):
        return {"backend": "numpy", "device": "cpu", "numpy": np.__version__}
