"""The interface every backend implements, and what the generic ones share.

A backend owns one array library (its namespace `xp`) on one device. Op code sees only
`xp` and the arrays; the engine talks to the backend for everything else: moving data
across the host boundary (always explicit), dtypes, fills and random numbers.
"""

import numpy as np


class Backend:
    """One array library on one device."""

    name = "?"
    xp = None
    context = None  # a context manager the engine enters around kernels, if any

    def __init__(self, device):
        self.device = device

    # --- the host boundary: the only places data crosses it ---------------------------
    def from_host(self, array, dtype):
        """A backend array holding a host NumPy array's values, as `dtype`."""
        raise NotImplementedError

    def to_host(self, array):
        """A host NumPy copy of a backend array."""
        raise NotImplementedError

    # --- dtypes --------------------------------------------------------------------------
    def native_dtype(self, dtype):
        """This library's dtype object for a NumPy dtype."""
        return dtype

    def dtype_of(self, array):
        """The NumPy dtype of a backend array."""
        return array.dtype

    def astype(self, array, dtype):
        return self.xp.astype(array, self.native_dtype(dtype))

    def updatable(self, array):
        """Whether an in-place update of a backend array changes each of its elements on
        its own: not for a read-only array, or a view whose elements share memory (a
        broadcast's: a zero stride along an axis of more than one element)."""
        if not getattr(getattr(array, "flags", None), "writeable", True):
            return False
        strides = getattr(array, "strides", None) or ()
        return all(s or n <= 1 for s, n in zip(strides, array.shape, strict=False))

    # --- fills ---------------------------------------------------------------------------
    def full(self, shape, value, dtype):
        return self.xp.full(shape, value, dtype=self.native_dtype(dtype))

    def arange(self, start, stop, step, dtype):
        return self.xp.arange(start, stop, step, dtype=self.native_dtype(dtype))

    # --- random numbers --------------------------------------------------------------------
    def seed(self, seed):
        raise NotImplementedError

    def normal(self, shape, dtype):
        raise NotImplementedError

    def uniform(self, shape, dtype):
        raise NotImplementedError

    def synchronize(self):
        """Wait until queued work on the device is done (for honest timings)."""

    def describe(self):
        return {"backend": self.name, "device": str(self.device)}


class HostRandomMixin:
    """Random numbers drawn on the host with NumPy's generator (CPU-side backends)."""

    _rng = None

    def seed(self, seed):
        self._rng = np.random.default_rng(seed)

    def _generator(self):
        if self._rng is None:
            self._rng = np.random.default_rng()
        return self._rng

    def normal(self, shape, dtype):
        return self.from_host(self._generator().standard_normal(shape), dtype)

    def uniform(self, shape, dtype):
        return self.from_host(self._generator().random(shape), dtype)
