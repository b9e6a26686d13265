"""The CuPy backend: NVIDIA GPUs.

CuPy is imported only when a CUDA device is asked for or probed, so `import gpugrad`
never depends on it. A machine can have CuPy installed and still no usable GPU (no
driver, no device): `probe()` finds out and says why, and the caller falls back.
"""

import numpy as np

from .base import Backend

# Array-API names that CuPy releases spell the NumPy 1 way; filled in where missing so the
# generic kernels, written against the array API, run unchanged.
_ALIASES = {"concat": "concatenate", "permute_dims": "transpose", "pow": "power"}


def _namespace(cupy):
    import types

    # Named "cupy", as the module it stands for: kernels tell the namespaces apart by
    # name (xp.__name__ == "cupy"), and gg.array_namespace says "numpy, cupy, ...".
    ns = types.ModuleType(cupy.__name__)
    ns.__dict__.update({k: v for k, v in vars(cupy).items() if not k.startswith("__")})
    for standard, old in _ALIASES.items():
        if not hasattr(cupy, standard):
            setattr(ns, standard, getattr(cupy, old))
    if not hasattr(cupy, "matrix_transpose"):
        ns.matrix_transpose = lambda x, /: cupy.swapaxes(x, -1, -2)
    if not hasattr(cupy, "astype"):
        ns.astype = lambda x, dtype, /, *, copy=True: x.astype(dtype, copy=copy)
    return ns


def probe():
    """(usable, reason, device_count) for CUDA through CuPy; never raises."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken install failing at import
        return False, f"CuPy is not importable ({type(exc).__name__}: {exc})", 0
    try:
        count = cupy.cuda.runtime.getDeviceCount()
        if count < 1:
            return False, "CuPy imports but reports no CUDA device", 0
        # A real allocation and kernel: an installed driver without a device, or a
        # mismatched CUDA runtime, only fails here.
        cupy.arange(4, dtype=cupy.float32).sum().item()
    except Exception as exc:
        return False, f"CuPy {cupy.__version__} imports but no GPU is usable " \
                      f"({type(exc).__name__}: {exc})", 0
    return True, f"CuPy {cupy.__version__} with {count} CUDA device(s)", count


class CupyBackend(Backend):
    name = "cupy"

    def __init__(self, device):
        super().__init__(device)
        import cupy

        self._cupy = cupy
        self.xp = _namespace(cupy)
        self._cuda_device = cupy.cuda.Device(device.index or 0)
        # Kernels for a device other than the first run inside its context; the first
        # (the usual case) pays nothing for it.
        self.context = self._cuda_device if device.index else None
        self._rng = None

    def from_host(self, array, dtype):
        with self._cuda_device:
            return self._cupy.asarray(np.asarray(array, dtype=dtype))

    def to_host(self, array):
        return self._cupy.asnumpy(array)

    def copy_from_peer(self, array):
        with self._cuda_device:
            return self._cupy.array(array, copy=True)

    def astype(self, array, dtype):
        return array.astype(dtype)

    def full(self, shape, value, dtype):
        with self._cuda_device:
            return self._cupy.full(shape, value, dtype=dtype)

    def arange(self, start, stop, step, dtype):
        with self._cuda_device:
            return self._cupy.arange(start, stop, step, dtype=dtype)

    def seed(self, seed):
        with self._cuda_device:
            self._rng = self._cupy.random.default_rng(seed)

    def _generator(self):
        if self._rng is None:
            with self._cuda_device:
                self._rng = self._cupy.random.default_rng()
        return self._rng

    def normal(self, shape, dtype):
        # CuPy's generator draws float32/float64 directly on the device.
        draw_dtype = dtype if dtype in (np.float32, np.float64) else np.float64
        with self._cuda_device:
            out = self._generator().standard_normal(shape, dtype=draw_dtype)
            return out if draw_dtype == dtype else out.astype(dtype)

    def uniform(self, shape, dtype):
        draw_dtype = dtype if dtype in (np.float32, np.float64) else np.float64
        with self._cuda_device:
            out = self._generator().random(shape, dtype=draw_dtype)
            return out if draw_dtype == dtype else out.astype(dtype)

    def synchronize(self):
        self._cuda_device.synchronize()

    def describe(self):
        props = self._cupy.cuda.runtime.getDeviceProperties(self._cuda_device.id)
        name = props["name"]
        return {"backend": "cupy", "device": str(self.device), "cupy": self._cupy.__version__,
                "gpu": name.decode() if isinstance(name, bytes) else name}
