"""Loss ops that need their own gradient for numerical reasons, or that are worth one
node instead of ten.

binary_cross_entropy on probabilities: its logs are clamped at -100 (as in PyTorch) so
that probabilities of exactly 0 or 1 — what a float32 sigmoid returns past |z| ~ 17 —
give a finite loss, and its gradient is PyTorch's (p - t) / max(p (1 - p), 1e-12),
finite there too (the composite of log and clip would give 0/0 = NaN).
"""

import numpy as np

from ..errors import DTypeError, OutOfBoundsError, ShapeError
from . import elementwise as ew
from .infer import elementwise
from .reduction import extremum
from .registry import OpDef, define, plan_only

_EPS = 1e-12


def _log_clamped(xp, x):
    safe = xp.where(x > 0, x, 1)  # log(0) never evaluated: no inf, no warning
    return xp.maximum(xp.where(x > 0, xp.log(safe), -100), -100)


def _log1m_clamped(xp, p):
    # log(1 - p) as log1p(-p) (as PyTorch): 1 - p would round away the digits of a
    # small p (float32: p = 1e-6 gives a loss 1% off, p = 3e-8 one twice too large).
    safe = xp.where(p < 1, p, 0)
    return xp.maximum(xp.where(p < 1, xp.log1p(-safe), -100), -100)


def _bce_forward(xp, p, t):
    return -(t * _log_clamped(xp, p) + (1 - t) * _log1m_clamped(xp, p))


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


def check_probabilities(xp, p, *rest):
    """p (the first input) holds probabilities, in [0, 1]. F.binary_cross_entropy checks
    on the host, as PyTorch does: outside [0, 1] the loss is silently wrong (negative,
    say), and a NaN would vanish into the clamped log (a loss of 100)."""
    outside = ~((p >= 0) & (p <= 1))
    if p.size and bool(xp.any(outside)):
        count = int(xp.sum(outside))
        raise ValueError(f"binary_cross_entropy: probabilities must be in [0, 1]; {count} of "
                         f"{p.size} are not, e.g. {float(p[outside][0])} (use "
                         "binary_cross_entropy_with_logits on scores)")


binary_cross_entropy.plan_check = check_probabilities


# --- softmax cross-entropy with class indices, per sample ------------------------------
# loss_i = -(1 - s) log p[i, y_i] - s mean_c log p[i, c], p = softmax(logits_i), s the
# label smoothing. Its gradient is the lecture's g_i (softmax - target distribution).
def _cross_entropy_infer(logits, target, label_smoothing=0.0):
    if len(logits.shape) != 2:
        raise ShapeError(f"expected logits of shape (N, C), got {tuple(logits.shape)}")
    if target.dtype.kind not in "iu":
        raise DTypeError(f"class indices must be integers, got {target.dtype}")
    if tuple(target.shape) != (logits.shape[0],):
        raise ShapeError(f"class indices of shape {tuple(target.shape)} for a batch of "
                         f"{logits.shape[0]}")
    return (logits.shape[0],), logits.dtype


def _row_max(xp, logits):
    """For the kernels of NumPy and CuPy arrays (_softmax_parts): on NumPy, the fast path
    for short rows (see ops.reduction.extremum)."""
    if isinstance(logits, np.ndarray):
        return extremum(logits, "max", -1, True)
    return logits.max(axis=-1, keepdims=True)


def _log_softmax(xp, logits):
    shifted = logits - xp.max(logits, axis=-1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))


def _cross_entropy_forward(xp, logits, target, label_smoothing=0.0):
    log_p = _log_softmax(xp, logits)
    loss = -xp.reshape(xp.take_along_axis(log_p, xp.reshape(target, (-1, 1)), axis=-1),
                       (-1,))
    if label_smoothing:
        loss = (1 - label_smoothing) * loss - label_smoothing * xp.mean(log_p, axis=-1)
    return loss


def _softmax_parts(xp, logits):
    """NumPy and CuPy: the logits shifted by their row maximum, exp of them, and its row
    sums: log-softmax is shifted - log(sums), softmax exp / sums (the log taken per
    row, not per element)."""
    shifted = logits - _row_max(xp, logits)
    e = xp.exp(shifted)
    return shifted, e, e.sum(axis=-1, keepdims=True)


def _picked_loss(xp, shifted, total, target):
    # Integer-array indexing picks each row's target in one C call (take_along_axis
    # builds its index in Python); -(s - log t) is log t - s exactly.
    return xp.log(total[:, 0]) - shifted[xp.arange(shifted.shape[0]), target]


def _softmax_minus_target(xp, e, total, g, target):
    # Softmax, minus one at each row's target, times g: in place on e.
    e /= total
    e[xp.arange(e.shape[0]), target] -= 1
    e *= g.reshape(-1, 1)
    return e


def _cross_entropy_ndarray(xp, logits, target, label_smoothing=0.0):
    if label_smoothing:
        return _cross_entropy_forward(xp, logits, target, label_smoothing)
    shifted, _, total = _softmax_parts(xp, logits)
    return _picked_loss(xp, shifted, total, target)


def _cross_entropy_vjp(ctx, g):
    logits, target = ctx.inputs
    return cross_entropy_backward(g, logits, target, **ctx.attrs), None


cross_entropy = define("gpugrad::cross_entropy", infer=_cross_entropy_infer,
                       forward=_cross_entropy_forward, vjp=_cross_entropy_vjp,
                       saves=(0, 1), promote="float", promote_args=(0,),
                       kernels={"numpy": _cross_entropy_ndarray,
                                "cupy": _cross_entropy_ndarray})


# Its backward as one op: g_i (softmax(logits_i) - q_i), q the target distribution;
# differentiable in turn, for second derivatives of the loss.
def _ce_backward_infer(g, logits, target, label_smoothing=0.0):
    return tuple(logits.shape), logits.dtype


def _target_distribution(xp, logits, target, label_smoothing):
    classes = logits.shape[-1]
    hits = xp.astype(xp.arange(classes)[None, :] == xp.reshape(target, (-1, 1)),
                     logits.dtype)
    if label_smoothing:
        return hits * (1 - label_smoothing) + label_smoothing / classes
    return hits


def _ce_backward_forward(xp, g, logits, target, label_smoothing=0.0):
    p = xp.exp(_log_softmax(xp, logits))
    q = _target_distribution(xp, logits, target, label_smoothing)
    return xp.reshape(g, (-1, 1)) * (p - q)


def _ce_backward_ndarray(xp, g, logits, target, label_smoothing=0.0):
    if label_smoothing:
        return _ce_backward_forward(xp, g, logits, target, label_smoothing)
    _, e, total = _softmax_parts(xp, logits)
    return _softmax_minus_target(xp, e, total, g, target)


def _ce_backward_vjp(ctx, u):
    from ..nn.functional import softmax

    g, logits, target = ctx.inputs
    need_g, need_logits, _ = ctx.needs_input_grad
    grad_g = grad_logits = None
    if need_g:  # d/dg_i of g_i (p_i - q_i) . u_i = (p_i - q_i) . u_i
        from ..creation import ones_like

        unit = cross_entropy_backward(ones_like(g), logits, target, **ctx.attrs)
        grad_g = (u * unit).sum(axis=-1)
    if need_logits:  # the softmax Jacobian applied to g_i u_i
        p = softmax(logits)
        v = u * g.reshape(-1, 1)
        grad_logits = p * (v - (p * v).sum(axis=-1, keepdims=True))
    return grad_g, grad_logits, None


cross_entropy_backward = define(
    "gpugrad::cross_entropy_backward", infer=_ce_backward_infer,
    forward=_ce_backward_forward, vjp=_ce_backward_vjp, saves=(0, 1, 2),
    promote="float", promote_args=(0, 1),
    kernels={"numpy": _ce_backward_ndarray, "cupy": _ce_backward_ndarray})


# Both at once, for gg.compile: a plan whose backward seeds cross_entropy_backward with
# a gradient known before the forward runs (a constant, as for a mean loss) computes
# the softmax once for both (see compiler.passes.share_softmax). On NumPy: the same
# operations in the same order as the two ops apart, so the results are bit for bit
# theirs; on CuPy: the fused kernels of kernels/softmax_xent.cu.
def _ce_with_grad_ndarray(xp, g, logits, target, label_smoothing=0.0):
    if label_smoothing:
        return _ce_with_grad_forward(xp, g, logits, target, label_smoothing)
    shifted, e, total = _softmax_parts(xp, logits)
    loss = _picked_loss(xp, shifted, total, target)
    return loss, _softmax_minus_target(xp, e, total, g, target)


def _ce_with_grad_forward(xp, g, logits, target, label_smoothing=0.0):
    return (_cross_entropy_forward(xp, logits, target, label_smoothing),
            _ce_backward_forward(xp, g, logits, target, label_smoothing))


def _ce_with_grad_fused(xp, g, logits, target, label_smoothing=0.0):
    # CuPy: kernels/softmax_xent.cu, one block per row for the loss and the row's
    # log-sum-exp, then one elementwise kernel for the gradient from them (the
    # dispatchers run their generic reference on any other arrays).
    from ..backends import fused

    loss, lse = fused.softmax_xent_forward(logits, target, label_smoothing=label_smoothing)
    return loss, fused.softmax_xent_backward(g, logits, target, lse,
                                             label_smoothing=label_smoothing)


cross_entropy_with_grad = OpDef(
    "gpugrad::cross_entropy_with_grad", infer=plan_only("gpugrad::cross_entropy_with_grad"),
    forward=_ce_with_grad_forward,
    kernels={"numpy": _ce_with_grad_ndarray, "cupy": _ce_with_grad_fused},
    doc="(cross_entropy, cross_entropy_backward) sharing one softmax.")


def class_indices_outside(xp, target, classes):
    """What is wrong with class indices `target` for `classes` classes (outside [0,
    classes)), in words, or None: one read of the array on the host."""
    if not target.size:
        return None
    unsigned = _as_unsigned(target)
    if unsigned is not None:  # one reduction: a negative index reads as a huge one
        inside = int(unsigned.max()) < classes
    else:
        inside = not bool(xp.any((target < 0) | (target >= classes)))
    if inside:
        return None
    return (f"class indices must be in [0, {classes}) for {classes} classes; got values "
            f"from {int(xp.min(target))} to {int(xp.max(target))}")


def _as_unsigned(target):
    """The integer array read as unsigned (NumPy, CuPy), or None where arrays have no
    views (the standard's strict arrays). The check runs at every compiled step: the
    three ufuncs and np.any it replaces took 9 µs on 32 labels, this one max 1 µs."""
    if not hasattr(target, "view") or target.dtype.kind not in "iu":
        return None
    # (the unsigned dtype looked up, where making it from its name each run cost a third
    # of the check)
    return target.view(ew.UNSIGNED[target.dtype.itemsize])


def _check_class_indices(xp, *arrays, label_smoothing=0.0):
    """The class indices (the last input) are in [0, C) for logits (the one before) of
    C classes: F.cross_entropy checks it on the host, which a compiled plan skips."""
    wrong = class_indices_outside(xp, arrays[-1], arrays[-2].shape[-1])
    if wrong:
        raise OutOfBoundsError(f"cross_entropy: {wrong}")


for _op in (cross_entropy, cross_entropy_backward, cross_entropy_with_grad):
    _op.plan_check = _check_class_indices


# Class indices as a value a compiled plan checks on every run (F.nll_loss, which picks
# by indexing, inserts it inside gg.compile's trace only): eager mode checks on the host.
def _checked_infer(target, *, classes):
    return tuple(target.shape), target.dtype


def _check_range(xp, target, *, classes):
    wrong = class_indices_outside(xp, target, classes)
    if wrong:
        raise OutOfBoundsError(f"nll_loss: {wrong}")


checked_class_indices = define(
    "gpugrad::checked_class_indices", infer=_checked_infer,
    forward=lambda xp, target, *, classes: target, returns_view=True,
    doc="The class indices themselves; compiled plans on NumPy check their range.")
checked_class_indices.plan_check = _check_range
