"""An optimiser's update of one parameter as one op, for compiled plans on CuPy.

Recorded op by op, Adam's update of a parameter is a dozen elementwise kernels (three
after gg.compile's fusion); as one op it is one kernel of kernels/optim.cu, which reads
the parameter, its gradient and its state once and writes them back in place. A
captured optimiser step uses these ops on the backends in FUSED_UPDATE_BACKENDS.

Each op's kernels, by backend:
- "cupy": the kernel of kernels/optim.cu, in place (gpugrad.backends.fused);
- "numpy": the optimiser's own operations, in the same order, in place with ufuncs:
  bit for bit gpugrad.optim's update (the tests run compiled steps through it);
- any other namespace: the same operations, on new arrays.
The scalars that change from step to step (step size, bias correction, learning rate,
SGD's first-step dampening) are inputs, computed on the host on every run.
"""

from ..ops.custom import CustomOp

FUSED_UPDATE_BACKENDS = ("cupy",)


# --- Adam / AdamW ---------------------------------------------------------------------------
def _adam(xp, p, g, m, v, step_size, sqrt_bias2, scale, *, beta1, beta2, eps, weight_decay,
          l2, scales):
    """Out of place, for any namespace: (new p, new m, new v)."""
    if l2:
        g = g + weight_decay * p
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    delta = step_size * (m / (xp.sqrt(v) / sqrt_bias2 + eps))
    return (p * scale if scales else p) - delta, m, v


def _adam_numpy(xp, p, g, m, v, step_size, sqrt_bias2, scale, *, beta1, beta2, eps,
                weight_decay, l2, scales):
    if l2:
        g = g + weight_decay * p
    m *= beta1  # b1 m + (1 - b1) g, rounded as the optimiser rounds it, in m itself
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    denom = xp.sqrt(v)
    denom /= sqrt_bias2
    denom += eps
    delta = xp.divide(m, denom, out=denom)
    delta *= step_size
    if scales:
        p *= scale
    p -= delta
    return p, m, v


def _adam_cupy(xp, p, g, m, v, step_size, sqrt_bias2, scale, *, beta1, beta2, eps,
               weight_decay, l2, scales):
    from ..backends import fused

    fused.adam_step_cupy(p, g, m, v, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay,
                         l2=l2, scales=scales, scale=scale, step_size=step_size,
                         sqrt_bias2=sqrt_bias2)
    return p, m, v


def _update_op(name, outputs, generic, kernels, mutates):
    """An op of several outputs and no gradient: `generic` runs on any namespace,
    `kernels` by backend name; each takes the namespace first, as built-in kernels do.
    `mutates`: the inputs its NumPy and CuPy kernels write in place, which the compiler
    must not read after it (see compiler.fusion)."""
    op = CustomOp(name, generic, differentiable=False, source="built-in", outputs=outputs)
    op.forward = generic
    op.kernels.update(kernels)
    op.mutates = mutates
    return op


ADAM_UPDATE = _update_op("gpugrad::adam_update", 3, _adam,
                         {"numpy": _adam_numpy, "cupy": _adam_cupy}, mutates=(0, 2, 3))


def adam_update(opt, group, p, grad, arrays, scalars):
    """(new p, {state key: new array}) of one Adam/AdamW step, recorded as one op."""
    (b1, b2), wd = group["betas"], group["weight_decay"]
    new_p, m, v = ADAM_UPDATE(p, grad, arrays["exp_avg"], arrays["exp_avg_sq"],
                              scalars["step_size"], scalars["sqrt_bias2"], scalars["scale"],
                              beta1=b1, beta2=b2, eps=group["eps"], weight_decay=wd,
                              l2=bool(wd) and not opt.decoupled,
                              scales=opt._scales_params(group))
    return new_p, {"exp_avg": m, "exp_avg_sq": v}


# --- SGD ------------------------------------------------------------------------------------
def _sgd(xp, p, g, buf, lr, dampening, *, weight_decay, momentum, nesterov):
    """Out of place, for any namespace: (new p, new buffer)."""
    d = g + weight_decay * p if weight_decay else g
    buf = momentum * buf + dampening * d
    d = d + momentum * buf if nesterov else buf
    return p - lr * d, buf


def _sgd_numpy(xp, p, g, buf, lr, dampening, *, weight_decay, momentum, nesterov):
    d = g + weight_decay * p if weight_decay else g
    buf *= momentum
    buf += dampening * d
    d = d + momentum * buf if nesterov else buf
    p -= lr * d
    return p, buf


def _sgd_cupy(xp, p, g, buf, lr, dampening, *, weight_decay, momentum, nesterov):
    from ..backends import fused

    fused.sgd_step_cupy(p, g, buf, lr=lr, weight_decay=weight_decay, momentum=momentum,
                        dampening_factor=dampening, nesterov=nesterov)
    return p, buf


SGD_MOMENTUM_UPDATE = _update_op("gpugrad::sgd_momentum_update", 2, _sgd,
                                  {"numpy": _sgd_numpy, "cupy": _sgd_cupy}, mutates=(0, 2))


def sgd_momentum_update(opt, group, p, grad, arrays, scalars):
    """(new p, {"momentum_buffer": new array}) of one SGD step with momentum, as one op.
    (Plain SGD, p - lr g, is one fused elementwise op already.)"""
    new_p, buf = SGD_MOMENTUM_UPDATE(p, grad, arrays["momentum_buffer"], scalars["lr"],
                                     scalars["dampening"], weight_decay=group["weight_decay"],
                                     momentum=group["momentum"], nesterov=group["nesterov"])
    return new_p, {"momentum_buffer": buf}


def fused_update_for(opt, group, p):
    """The one-op update of this optimiser and parameter, or None (recorded op by op)."""
    from .optimizer import SGD, Adam

    if p.device.backend.name not in FUSED_UPDATE_BACKENDS:
        return None
    if group.get("maximize"):  # (the kernels descend)
        return None
    if isinstance(opt, Adam):
        return None if group.get("amsgrad") else adam_update
    if isinstance(opt, SGD) and group["momentum"]:
        return sgd_momentum_update
    return None
