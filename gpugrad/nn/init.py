"""Weight initialisers: Kaiming (He) for ReLU networks, Xavier (Glorot) for tanh and
sigmoid ones. Uniform draws, made on the device, reproducible under gg.manual_seed."""

import math

from ..creation import rand


def _uniform(shape, bound, dtype, device):
    return rand(*shape, dtype=dtype, device=device) * (2 * bound) - bound


RELU_GAIN = math.sqrt(2.0)


def kaiming_uniform(shape, dtype=None, device=None, gain=RELU_GAIN):
    """U(-b, b) with b = gain * sqrt(3 / fan_in): standard deviation gain / sqrt(fan_in)."""
    fan_in = shape[1] if len(shape) > 1 else shape[0]
    return _uniform(shape, gain * math.sqrt(3.0 / fan_in), dtype, device)


def xavier_uniform(shape, dtype=None, device=None, gain=1.0):
    """U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_out, fan_in = (shape[0], shape[1]) if len(shape) > 1 else (shape[0], shape[0])
    return _uniform(shape, gain * math.sqrt(6.0 / (fan_in + fan_out)), dtype, device)


INITIALISERS = {"kaiming": kaiming_uniform, "he": kaiming_uniform, "xavier": xavier_uniform,
                "glorot": xavier_uniform}
