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
    total = math.sqrt(sum(float((g._data * g._data).sum()) for g in grads))
    scale = min(1.0, max_norm / (total + eps))
    if scale < 1.0:
        for p in params:
            if p.grad is not None:
                g = p.grad
                p.grad = Tensor._wrap(g._data * scale, g._dtype, g._device, False)
    return total
