"""gg.cuda: is a CUDA GPU usable here, and how many."""

from .backends import cuda_status, device


def is_available():
    """True when CuPy imports and a CUDA device answers; never raises."""
    return cuda_status()["available"]


def device_count():
    return cuda_status()["device_count"]


def reason():
    """Why CUDA is or is not usable, in words."""
    return cuda_status()["reason"]


def synchronize(index=0):
    """Wait for queued GPU work (for honest timings); a no-op without a GPU."""
    if is_available():
        device(f"cuda:{index}").backend.synchronize()
