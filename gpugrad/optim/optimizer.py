"""Optimisers with PyTorch's update rules, so that a run from the same initial weights on
the same batches follows PyTorch's loss curve.

Updates work on the parameters' arrays with their backend's namespace (no graph is
recorded), and are atomic: every update is computed before any parameter changes, so a
step that fails half way leaves the model as it was; then each parameter is updated in
place (p = scale p - delta), which spares a full-size temporary per parameter.
"""

import math

from ..tensor import Tensor


class Optimizer:
    """Holds parameter groups (dicts with "params" and hyper-parameters) and per-parameter
    state; subclasses define `_update(group, p, grad, state) -> (scale, delta, state)`,
    the update being p = scale * p - delta."""

    def __init__(self, params, defaults):
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of tensors (e.g. "
                            "model.parameters()), not one tensor")
        params = list(params)
        if not params:
            raise ValueError("the optimiser got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = []
        for group in groups:
            group = {**defaults, **group, "params": list(group["params"])}
            for p in group["params"]:
                if not isinstance(p, Tensor) or not p.is_leaf or p.dtype.kind != "f":
                    raise ValueError("optimisers take leaf floating-point tensors (a "
                                     "model's parameters)")
            self.param_groups.append(group)
        every = [id(p) for g in self.param_groups for p in g["params"]]
        if len(every) != len(set(every)):
            raise ValueError("a parameter appears more than once in the optimiser's groups")
        self.defaults = defaults
        self.state = {}  # parameter -> dict of arrays and counters

    def zero_grad(self):
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self):
        pending = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                _check_grad(p)
                grad = p.grad._data
                pending.append((p, *self._update(group, p, grad, self.state.get(p, {}))))
        for p, scale, delta, new_state in pending:  # commit only once all succeeded
            if scale != 1:
                p._data *= scale
            p._data -= delta
            self.state[p] = new_state

    def _update(self, group, p, grad, state):
        raise NotImplementedError

    def state_dict(self):
        """Hyper-parameters and state (arrays as tensors), keyed by parameter position:
        what gg.save needs to resume training."""
        params = [p for g in self.param_groups for p in g["params"]]
        state = {}
        for i, p in enumerate(params):
            if p in self.state:
                state[i] = {k: (Tensor._wrap(v, p.dtype, p.device, False)
                                if hasattr(v, "shape") else v)
                            for k, v in self.state[p].items()}
        return {"param_groups": [{k: v for k, v in g.items() if k != "params"}
                                 for g in self.param_groups], "state": state}

    def load_state_dict(self, state_dict):
        params = [p for g in self.param_groups for p in g["params"]]
        if len(state_dict["param_groups"]) != len(self.param_groups):
            raise ValueError("the optimiser state has a different number of parameter "
                             "groups")
        state = {}
        for i, saved in state_dict["state"].items():
            if int(i) >= len(params):
                raise ValueError(f"the optimiser state names parameter {i}, but there are "
                                 f"{len(params)}")
            p = params[int(i)]
            for key, value in saved.items():
                if isinstance(value, Tensor) and value.shape != p.shape:
                    raise ValueError(f"optimiser state {key!r} of parameter {i} has shape "
                                     f"{value.shape}, the parameter {p.shape}")
            state[p] = {k: (p.device.backend.from_host(v.numpy(), p.dtype)
                            if isinstance(v, Tensor) else v) for k, v in saved.items()}
        for group, saved in zip(self.param_groups, state_dict["param_groups"], strict=True):
            group.update({k: tuple(v) if k == "betas" else v for k, v in saved.items()})
        self.state = state


def _check_grad(p):
    """A gradient that could not update p in place is refused before anything changes."""
    from ..errors import DeviceError, ShapeError

    g = p.grad
    if g.shape != p.shape:
        raise ShapeError(f"a gradient of shape {g.shape} for a parameter of shape {p.shape}")
    if g.device is not p.device:
        raise DeviceError(f"a gradient on {g.device} for a parameter on {p.device}")


class SGD(Optimizer):
    """Stochastic gradient descent, with momentum, Nesterov momentum and L2 weight decay:
    d = g + wd p;  b = mu b + (1 - dampening) d;  d = d + mu b (Nesterov) or b;  p -= lr d.
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False,
                 dampening=0.0):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError("lr, momentum and weight_decay must be >= 0")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and no dampening")
        super().__init__(params, {"lr": lr, "momentum": momentum,
                                  "weight_decay": weight_decay, "nesterov": nesterov,
                                  "dampening": dampening})

    def _update(self, group, p, grad, state):
        d = grad
        if group["weight_decay"]:
            d = d + group["weight_decay"] * p._data
        mu = group["momentum"]
        if mu:
            buf = state.get("momentum_buffer")
            buf = d if buf is None else mu * buf + (1 - group["dampening"]) * d
            state = {"momentum_buffer": buf}
            d = d + mu * buf if group["nesterov"] else buf
        return 1, group["lr"] * d, state


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction, as PyTorch computes it; weight_decay adds
    wd p to the gradient (L2), unlike AdamW."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError("lr, eps and weight_decay must be >= 0")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps,
                                  "weight_decay": weight_decay})

    def _update(self, group, p, grad, state):
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], \
            group["weight_decay"]
        data, scale = p._data, 1
        if wd and self.decoupled:
            scale = 1 - lr * wd  # decay first, then the Adam step, as PyTorch does
        elif wd:
            grad = grad + wd * data
        step = state.get("step", 0) + 1
        m = state.get("exp_avg")
        v = state.get("exp_avg_sq")
        m = (1 - b1) * grad if m is None else b1 * m + (1 - b1) * grad
        v = (1 - b2) * grad * grad if v is None else b2 * v + (1 - b2) * grad * grad
        xp = p.device.backend.xp
        bias1 = 1 - b1 ** step
        bias2 = 1 - b2 ** step
        denom = xp.sqrt(v) / math.sqrt(bias2) + eps
        return scale, (lr / bias1) * (m / denom), {"step": step, "exp_avg": m,
                                                   "exp_avg_sq": v}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr wd first."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
