"""gg.info(): which backend gpugrad runs on, and why."""

import platform
import sys

import networkx
import numpy

from . import __version__
from .backends import cuda_status, default_device, default_reason


def info():
    """A dict describing the default device, the reason it was chosen, CUDA's status and
    the versions of what gpugrad runs on."""
    try:
        dev = default_device()
        details = dev.backend.describe()
        reason = default_reason()
    except Exception as exc:  # an unusable GPUGRAD_DEVICE is reported, not raised, here
        dev, details, reason = None, {}, f"no usable default device: {exc}"
    cuda = cuda_status()
    return {
        "gpugrad": __version__,
        "default_device": str(dev) if dev is not None else None,
        "backend": details.get("backend"),
        "reason": reason,
        "cuda_available": cuda["available"],
        "cuda": cuda["reason"],
        "cuda_devices": cuda["device_count"],
        "numpy": numpy.__version__,
        "networkx": networkx.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        **{k: v for k, v in details.items() if k not in ("backend", "device")},
    }
