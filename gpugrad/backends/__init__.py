"""Devices and the backends behind them; choosing the default device, and saying why.

A `Device` names where a tensor's data lives ("cpu", "cuda:0", or the test-only
"array_api_strict") and carries the backend that runs kernels there. Devices are interned:
one object per name, so the engine compares them with `is`.
"""

import os
import threading

import numpy as np

from ..errors import DeviceError

_TYPES = ("cpu", "cuda", "array_api_strict")


class Device:
    """Where tensors live. Compare with `==` to another Device or to its name."""

    __slots__ = ("type", "index", "_backend", "_hash")

    def __init__(self, type_, index):
        self.type = type_
        self.index = index
        self._backend = None
        self._hash = hash(str(self))  # devices key hot caches: hash once

    @property
    def backend(self):
        backend = self._backend
        if backend is None:
            backend = _make_backend(self)
            if _seed is not None:
                backend.seed(_seed)
            self._backend = backend
        return backend

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device({str(self)!r})"

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = device(other)
            except (DeviceError, ValueError):
                return False
        return self is other

    def __hash__(self):
        return self._hash


_devices = {}
_lock = threading.Lock()


def _parse(name):
    name = name.strip().lower()
    kind, _, index = name.partition(":")
    if kind not in _TYPES:
        raise DeviceError(f"unknown device {name!r}; expected one of 'cpu', 'cuda', "
                          "'cuda:N' or 'array_api_strict'")
    if kind != "cuda":
        if index:
            raise DeviceError(f"device {kind!r} takes no index (got {name!r})")
        return kind, None
    if not index:
        return kind, 0
    if not index.isdigit():
        raise DeviceError(f"bad CUDA device index in {name!r}")
    return kind, int(index)


def device(spec=None):
    """The Device for a name ("cpu", "cuda", "cuda:1"), a Device, or None (the default)."""
    if spec is None:
        return default_device()
    if isinstance(spec, Device):
        return spec
    if not isinstance(spec, str):
        raise DeviceError(f"a device is a name like 'cpu' or 'cuda:0', not {spec!r}")
    found = _devices.get(spec)
    if found is not None:
        return found
    key = _parse(spec)
    with _lock:
        dev = _devices.get(key)
        if dev is None:
            dev = _devices[key] = Device(*key)
        _devices[spec] = dev
    return dev


def _make_backend(dev):
    if dev.type == "cpu":
        from .numpy_backend import NumpyBackend

        return NumpyBackend(dev)
    if dev.type == "array_api_strict":
        from .strict_backend import StrictBackend

        try:
            return StrictBackend(dev)
        except ImportError as exc:
            raise DeviceError("the 'array_api_strict' device needs the array-api-strict "
                              "package (pip install array-api-strict)") from exc
    status = cuda_status()
    if not status["available"]:
        raise DeviceError(f"CUDA device {dev} is not usable: {status['reason']}")
    if dev.index >= status["device_count"]:
        raise DeviceError(f"CUDA device {dev} does not exist: "
                          f"{status['device_count']} device(s) found")
    from .cupy_backend import CupyBackend

    return CupyBackend(dev)


# --- CUDA availability -----------------------------------------------------------------
_cuda = None


def cuda_status():
    """{'available', 'reason', 'device_count'}; probed once, lazily, never raising."""
    global _cuda
    if _cuda is None:
        from .cupy_backend import probe

        ok, reason, count = probe()
        _cuda = {"available": ok, "reason": reason, "device_count": count}
    return _cuda


# --- the default device -----------------------------------------------------------------
_default = None
_default_reason = None


def _auto():
    """The device `auto` picks, and why: CUDA where usable, else the CPU."""
    status = cuda_status()
    if status["available"]:
        return device("cuda:0"), f"auto: {status['reason']}"
    return device("cpu"), f"auto: NumPy on the CPU, because {status['reason']}"


def _resolve_default():
    choice = os.environ.get("GPUGRAD_DEVICE", "auto").strip().lower() or "auto"
    if choice == "auto":
        return _auto()
    try:
        dev = device(choice)
    except DeviceError as exc:
        raise DeviceError(f"GPUGRAD_DEVICE={choice!r} is not a device: {exc}") from None
    try:
        _check_usable(dev)  # a CUDA device that cannot be used says so now, with the reason
    except DeviceError as exc:
        raise DeviceError(f"GPUGRAD_DEVICE={choice}: {exc} (unset it, or set "
                          "GPUGRAD_DEVICE=auto to fall back to the CPU)") from None
    return dev, f"GPUGRAD_DEVICE={choice}"


def _check_usable(dev):
    """Raise DeviceError now if `dev` cannot be used (its backend cannot start)."""
    return dev.backend


def default_device():
    """The device new tensors go to; chosen on first use (GPUGRAD_DEVICE, else auto)."""
    global _default, _default_reason
    if _default is None:
        _default, _default_reason = _resolve_default()
    return _default


def set_default_device(spec):
    """Make `spec` ("cpu", "cuda", ...) the device new tensors go to; "auto" chooses as
    GPUGRAD_DEVICE=auto does (CUDA where usable, else the CPU)."""
    global _default, _default_reason
    if isinstance(spec, str) and spec.strip().lower() == "auto":
        _default, _default_reason = _auto()
        return
    dev = device(spec)
    _check_usable(dev)  # fail here, not at the first tensor, if the device is unusable
    _default, _default_reason = dev, f"set_default_device({str(dev)!r})"


def default_reason():
    default_device()
    return _default_reason


def transfer(array, source, dest):
    """Copy a backend array from one device to another: the explicit crossing that
    Tensor.to() makes (through the host, or GPU to GPU directly)."""
    if source is dest:
        return array
    if source.type == "cuda" and dest.type == "cuda":
        return dest.backend.copy_from_peer(array)
    host = source.backend.to_host(array)
    return dest.backend.from_host(host, host.dtype)


# --- random state ---------------------------------------------------------------------------
_seed = None
_host_rng = None


def host_generator():
    """The NumPy generator for host-side randomness (e.g. shuffling), seeded by
    gg.manual_seed."""
    global _host_rng
    if _host_rng is None:
        _host_rng = np.random.default_rng(_seed)
    return _host_rng


def seed_all(seed):
    """Seed the random generator of every device, now and for devices used later."""
    global _seed, _host_rng
    _seed = int(seed)
    _host_rng = np.random.default_rng(_seed)
    for dev in set(_devices.values()):
        if dev._backend is not None:
            dev._backend.seed(_seed)
