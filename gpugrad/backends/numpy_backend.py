"""The NumPy backend: the CPU, and the reference every other backend is checked against."""

import warnings

import numpy as np

from .base import Backend, HostRandomMixin

# NumPy reports a log(0), a 0/0 or an overflow as a RuntimeWarning from the line that
# called the ufunc: a line of gpugrad's kernels, not the user's. As in PyTorch and JAX,
# the values (inf, nan) speak for themselves, and gg.detect_anomaly() names the op and the
# user's line. Only those warnings, and only where gpugrad's own code made them.
warnings.filterwarnings(
    "ignore", message=r"(divide by zero|invalid value|overflow|underflow) encountered",
    category=RuntimeWarning, module=r"gpugrad(\.|$)")


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
        # fill(), not np.full: a value that overflows the dtype (1e6 into float16, in
        # x_half * 1e6) then warns from this line, which the filter above quiets, not
        # from NumPy's own numeric.py, which no filter of gpugrad's can tell from yours.
        out = np.empty(shape, dtype=dtype)
        out.fill(value)
        return out

    def describe(self):
        return {"backend": "numpy", "device": "cpu", "numpy": np.__version__}
