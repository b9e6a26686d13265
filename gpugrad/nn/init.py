"""Weight initialisers: Kaiming (He) for ReLU networks, Xavier (Glorot) for tanh and
sigmoid ones. Uniform draws, made on the device, reproducible under gg.manual_seed."""

import math

from ..creation import rand


def _uniform(shape, bound, dtype, device):
    return rand(*shape, dtype=dtype, device=device) * (2 * bound) - bound


def fans(shape):
    """(fan_in, fan_out) of a weight of `shape`, as PyTorch counts them: (out, in) for a
    matrix, and times the receptive field (the sizes after the first two) for a
    convolution's (out, in, *kernel), whose bound was otherwise kernel-size times too
    wide. A vector has no fans: torch refuses it too."""
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a weight of 2 or more dimensions, got "
                         f"shape {shape}")
    field = math.prod(shape[2:])
    return shape[1] * field, shape[0] * field


def _bound_over(fan, scale):
    """sqrt(scale / fan); a weight with no elements (a fan of 0) gets any bound."""
    return math.sqrt(scale / fan) if fan else 0.0


RELU_GAIN = math.sqrt(2.0)


def kaiming_uniform(shape, dtype=None, device=None, gain=RELU_GAIN):
    """U(-b, b) with b = gain * sqrt(3 / fan_in): standard deviation gain / sqrt(fan_in)."""
    fan_in, _ = fans(shape)
    return _uniform(shape, gain * _bound_over(fan_in, 3.0), dtype, device)


def xavier_uniform(shape, dtype=None, device=None, gain=1.0):
    """U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    return _uniform(shape, gain * _bound_over(fan_in + fan_out, 6.0), dtype, device)


INITIALISERS = {"kaiming": kaiming_uniform, "he": kaiming_uniform, "xavier": xavier_uniform,
                "glorot": xavier_uniform}
