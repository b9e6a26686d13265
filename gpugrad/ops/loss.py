"""Loss ops that need their own gradient for numerical reasons.

binary_cross_entropy on probabilities: its logs are clamped at -100 (as in PyTorch) so
that probabilities of exactly 0 or 1 — what a float32 sigmoid returns past |z| ~ 17 —
give a finite loss, and its gradient is PyTorch's (p - t) / max(p (1 - p), 1e-12),
finite there too (the composite of log and clip would give 0/0 = NaN).
"""

from . import elementwise as ew
from .infer import elementwise
from .registry import define

_EPS = 1e-12


def _log_clamped(xp, x):
    safe = xp.where(x > 0, x, 1)  # log(0) never evaluated: no inf, no warning
    return xp.maximum(xp.where(x > 0, xp.log(safe), -100), -100)


def _bce_forward(xp, p, t):
    return -(t * _log_clamped(xp, p) + (1 - t) * _log_clamped(xp, 1 - p))


def _log_clamped_op(x):
    return ew.where(x > 0, ew.where(x > 0, x, 1.0).log(), -100.0).clip(-100.0)


def _bce_vjp(ctx, g):
    p, t = ctx.inputs
    need_p, need_t = ctx.needs_input_grad
    gp = g * (p - t) / ew.maximum(p * (1 - p), _EPS) if need_p else None
    gt = g * (_log_clamped_op(1 - p) - _log_clamped_op(p)) if need_t else None
    return gp, gt


binary_cross_entropy = define("gpugrad::binary_cross_entropy", infer=elementwise,
                              forward=_bce_forward, vjp=_bce_vjp, saves=(0, 1),
                              promote="float")
