"""Helpers over a model's parameters."""

import math

from ..tensor import Tensor


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                    foreach=None, *, eps=1e-6):
    """Scale the gradients in place so that their joint norm is at most max_norm;
    returns the norm before clipping (a float), as torch.nn.utils.clip_grad_norm_, whose
    arguments these are, in its order (a third positional argument is the norm's order,
    as there, not eps).

    norm_type: p of the p-norm of all gradients taken as one vector (float("inf"): the
    largest |g|). error_if_nonfinite: raise, leaving the gradients as they were, when
    that norm is NaN or infinite; otherwise they are scaled by max_norm / norm like
    PyTorch's (to NaN or zeros). foreach: accepted for PyTorch code; gpugrad has one
    implementation."""
    norm_type = _norm_order(norm_type)
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    from ..mode import state

    if state.capture is not None:
        if error_if_nonfinite:
            _refuse_host_check()
        return _clip_recorded(params, max_norm, norm_type, eps)
    total = _joint_norm(grads, norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the norm of order {norm_type} of the "
                           f"gradients is {total}, so they cannot be clipped; the "
                           "gradients are left as they were (error_if_nonfinite=False "
                           "scales them by it anyway, as PyTorch does)")
    scale = max_norm / (total + eps)
    # `not scale >= 1`, not `scale < 1`: a NaN norm scales every gradient to NaN, as in
    # PyTorch and in a compiled plan, where it left the finite ones as they were
    if not scale >= 1.0:
        for p in params:
            if p.grad is not None:
                g = p.grad
                p.grad = Tensor._wrap(g._data * scale, g._dtype, g._device, False)
    return total


def _norm_order(norm_type):
    """p of the norm, as a float: a positive number or inf (p <= 0 is no norm that
    clipping could bring down to max_norm)."""
    if isinstance(norm_type, str):  # torch.linalg's names of the orders
        norm_type = {"inf": math.inf, "fro": 2.0}.get(norm_type, norm_type)
    try:
        p = float(norm_type)
    except (TypeError, ValueError):
        p = math.nan
    if isinstance(norm_type, bool) or not p > 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be a number > 0 or "
                         f"float('inf'), got {norm_type!r}")
    return p


def _accumulable(g):
    """g's array in a dtype whose squares do not overflow where the norm does not:
    half precision goes to float32 (as PyTorch accumulates it), since 256 ** 2 is
    already inf in float16 and the gradients would all have been scaled to zero."""
    data = g._data
    if g._dtype.itemsize < 4:
        data = g.device.backend.astype(data, "float32")
    return data


def _joint_norm(grads, p):
    """The p-norm of all gradients as one vector, on the host, in float64 from each
    gradient's own sum (the namespace's functions: strict arrays have no .sum())."""
    xp = grads[0].device.backend.xp
    if p == math.inf:
        return max((float(xp.max(xp.abs(_accumulable(g)))) for g in grads if g.size),
                   default=0.0)
    if p == 2.0:  # the usual case, without a power per element
        return math.sqrt(sum(float(xp.sum(_accumulable(g) ** 2)) for g in grads))
    return sum(float(xp.sum(xp.abs(_accumulable(g)) ** p)) for g in grads) ** (1.0 / p)


def _refuse_host_check():
    """error_if_nonfinite reads the norm on the host: a plan's later runs could not."""
    from ..compiler.capture import CompileError
    from ..node import format_site, user_site

    raise CompileError(f"clip_grad_norm_(error_if_nonfinite=True) inside a compiled "
                       f"function (at {format_site(user_site(3))}) would check its first "
                       "call only; check the norm it returns after each call instead")


def _clip_recorded(params, max_norm, p, eps):
    """Inside gg.compile's function: the same clipping as ops, so that every run of the
    plan computes its own norm (the eager path reads it on the host); returns the norm as
    a 0-d tensor. The scale is applied to every gradient (1 when the norm is within
    max_norm), as one plan serves both cases."""
    from ..functions import maximum, minimum
    from ..mode import no_grad

    with no_grad():
        total = None
        for param in params:
            if param.grad is not None:
                term = _recorded_term(param.grad, p)
                total = term if total is None else (
                    maximum(total, term) if p == math.inf else total + term)
        if p != math.inf:
            total = total.sqrt() if p == 2.0 else total ** (1.0 / p)
        scale = minimum(max_norm / (total + eps), 1.0)
        for param in params:
            if param.grad is not None:
                param.grad = param.grad * scale.astype(param.grad.dtype)
    return total


def _recorded_term(g, p):
    """One gradient's share of the p-norm, as ops, in float64 (as eager: the sum in g's
    dtype, half precision in float32): max |g| for inf, else sum |g| ** p."""
    if g.dtype.itemsize < 4:  # as _accumulable
        g = g.astype("float32")
    if p == math.inf:
        term = g.abs().max() if g.size else _zero_like(g)
    elif p == 2.0:
        term = (g * g).sum()
    else:
        term = (g.abs() ** p).sum()
    return term.astype("float64")


def _zero_like(g):
    """A 0-d zero of g's dtype and device: the largest |g| of an empty gradient."""
    from ..creation import zeros

    return zeros(shape=(), dtype=g.dtype, device=g.device)
