"""Helpers over a model's parameters."""

import math

from ..tensor import Tensor


def clip_grad_norm_(parameters, max_norm, eps=1e-6):
    """Scale the gradients in place so that their joint L2 norm is at most max_norm;
    returns the norm before clipping (a float), as torch.nn.utils.clip_grad_norm_."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    from ..mode import state

    if state.capture is not None:
        return _clip_recorded(params, max_norm, eps)
    xp = grads[0].device.backend.xp  # the namespace's sum: strict arrays have no .sum()
    total = math.sqrt(sum(float(xp.sum(g._data * g._data)) for g in grads))
    scale = min(1.0, max_norm / (total + eps))
    if scale < 1.0:
        for p in params:
            if p.grad is not None:
                g = p.grad
                p.grad = Tensor._wrap(g._data * scale, g._dtype, g._device, False)
    return total


def _clip_recorded(params, max_norm, eps):
    """Inside gg.compile's function: the same clipping as ops, so that every run of the
    plan computes its own norm (the eager path reads it on the host); returns the norm as
    a 0-d tensor. The scale is applied to every gradient (1 when the norm is within
    max_norm), as one plan serves both cases."""
    from ..functions import minimum
    from ..mode import no_grad

    with no_grad():
        total = None
        for p in params:
            if p.grad is not None:
                g = p.grad
                term = (g * g).sum().astype("float64")  # as eager: each sum in g's dtype
                total = term if total is None else total + term
        total = total.sqrt()
        scale = minimum(max_norm / (total + eps), 1.0)
        for p in params:
            if p.grad is not None:
                p.grad = p.grad * scale.astype(p.grad.dtype)
    return total
