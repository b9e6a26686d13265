"""Optimisers with PyTorch's update rules, so that a run from the same initial weights on
the same batches follows PyTorch's loss curve.

Updates work on the parameters' arrays with their backend's namespace (no graph is
recorded), and are atomic: every update is computed before any parameter changes, so a
step that fails half way leaves the model as it was; then each parameter is updated in
place (p = scale p - delta), which spares a full-size temporary per parameter.
"""

import math
import numbers

import numpy as np

from ..mode import state as _mode
from ..nn.module import zero_grads
from ..tensor import Tensor


def _with_python_numbers(group):
    """The group with NumPy scalars as Python numbers (np.float32(0.5) as 0.5, in betas
    too): NumPy computes with its scalars in their own dtype, so an lr of np.float64
    made a float32 parameter's update in float64 (then rounded), where a compiled plan's
    constants, and Python numbers, take the parameter's dtype. The group itself where it
    holds none (the common case: no copy on every step)."""
    if not holds_numpy_scalars(group):
        return group
    return {key: _python_number(value) for key, value in group.items()}


def holds_numpy_scalars(group):
    """Whether a value of the group (or an item of a tuple or list in it, betas) is a
    NumPy scalar. The parameters' list is not read (it may be long)."""
    for key, value in group.items():
        if isinstance(value, np.generic):
            return True
        if isinstance(value, (tuple, list)) and key != "params" and any(
                isinstance(v, np.generic) for v in value):
            return True
    return False


def _python_number(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):  # betas, a list too where a user set one
        return type(value)(_python_number(v) for v in value)
    return value


class Optimizer:
    """Holds parameter groups (dicts with "params" and hyper-parameters) and per-parameter
    state (arrays and a step counter). Subclasses define:

    - `_state_keys(group)`: the names of the state arrays a step with these
      hyper-parameters reads; each starts as zeros of p's shape (before the first step,
      or the first that needs it: SGD's momentum switched on later), so that the first
      step is the general formula, bit for bit the same as a special first case;
    - `_scalars(group, step)`: the step's scalars, computed on the host (learning rate,
      bias corrections) — in a compiled plan they are read anew on every run;
    - `_update(group, p, grad, arrays, scalars, xp) -> (scale, delta, new_arrays)`, the
      update being p = scale * p - delta; written once for both backend arrays (eager,
      xp their namespace) and Tensors (traced by gg.compile, xp a namespace of the
      tensor functions the rules call: sqrt and maximum).
    """

    def __init__(self, params, defaults):
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of tensors (e.g. "
                            "model.parameters()), not one tensor")
        params = list(params)
        if not params:
            raise ValueError("the optimiser got an empty parameter list")
        self.defaults = defaults
        self.param_groups = []
        self.state = {}  # parameter -> dict of arrays and counters
        self._step_calls = 0  # for a scheduler's warning about the order of the calls
        for group in params if isinstance(params[0], dict) else [{"params": params}]:
            self.add_param_group(group)

    def add_param_group(self, param_group):
        """Train more parameters, with their own hyper-parameters where the dict gives
        them (say a layer unfrozen for fine-tuning, at a smaller lr); the others are the
        optimiser's defaults, as in PyTorch. A parameter already in a group is refused:
        two updates per step would apply to it."""
        if not isinstance(param_group, dict):
            raise TypeError(f"a parameter group is a dict with a 'params' entry, got a "
                            f"{type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("a parameter group needs a 'params' entry")
        params = param_group["params"]
        if isinstance(params, (set, frozenset)):
            raise TypeError("a parameter group's params must be ordered (a list): a set's "
                            "order, which state_dict() numbers them by, changes between runs")
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor) or not p.is_leaf or p.dtype.kind != "f":
                raise ValueError("optimisers take leaf floating-point tensors (a "
                                 "model's parameters)")
        group = {**self.defaults, **param_group, "params": params}
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
        _check_lr(self, group, len(self.param_groups))
        ids = [id(p) for p in params]
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        if len(set(ids)) != len(ids) or taken.intersection(ids):
            raise ValueError("a parameter appears more than once in the optimiser's groups")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        """Clear the parameters' gradients: to None, or with set_to_none=False to zeros
        in place (see nn.module.zero_grads)."""
        zero_grads((p for group in self.param_groups for p in group["params"]), set_to_none)

    def step(self):
        self._step_calls += 1
        if _mode.capture is not None:  # inside gg.compile's trace: record the update
            from .capture import captured_step

            self._guard_groups(_mode.capture)
            return captured_step(self, _mode.capture)
        self._check_lrs()
        self._check_grads()
        pending = []
        for group in self.param_groups:
            numbers = _with_python_numbers(group)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self._state(group, p)
                step = state.get("step", 0) + 1
                scale, delta, arrays = self._update(
                    numbers, p._data, p.grad._data, state, self._scalars(numbers, step),
                    p.device.backend.xp)
                # (state the step left alone stays: momentum set to 0 keeps its buffer)
                pending.append((p, scale, delta, {**state, **arrays, "step": step}))
        if _mode.anomaly:
            _check_finite_updates(self, pending)
        for p, scale, delta, new_state in pending:  # commit only once all succeeded
            if scale != 1:
                p._data *= scale
            p._data -= delta
            p._mark_modified()
            self.state[p] = new_state

    def _guard_groups(self, recorder):
        """A compiled step is for the groups it was traced with: a group added (or a
        parameter put into one) traces anew. (lr is read on every run, and checked there:
        see optim.capture.)"""
        self._check_lrs()
        # (a list comprehension: a third of tuple(generator)'s microsecond, on every run)
        recorder.guard(lambda: [len(g["params"]) for g in self.param_groups],
                       "a parameter group or parameter was added to the optimiser",
                       key=("optimiser groups", id(self)))

    def _check_lrs(self):
        """Every group's lr checked before anything changes: one put into param_groups
        by hand (or by a schedule) bypassed the constructor's check."""
        for index, group in enumerate(self.param_groups):
            _check_lr(self, group, index)

    def _check_grads(self):
        """Every gradient checked before any parameter or state changes (see _check_grad)."""
        params = (p for group in self.param_groups for p in group["params"])
        for position, p in enumerate(params):
            if p.grad is not None:
                _check_grad(self, p, position)

    def _state_keys(self, group):
        return ()

    def _optional_state_keys(self):
        """State entries a parameter's state may hold or lack whatever the group's
        hyper-parameters (a state dict is checked against them): none, unless an
        optimiser keeps one across a change of its hyper-parameters."""
        return ()

    def _state(self, group, p):
        """p's state for a step with group's hyper-parameters: the arrays it lacks (all
        before its first step) as zeros. Not stored here: an eager step commits it."""
        state = self.state.get(p)
        keys = self._state_keys(group)
        if state is not None and all(key in state for key in keys):
            return state
        zeros = p.device.backend.full
        return {**{key: zeros(p.shape, 0, p.dtype) for key in keys}, **(state or {})}

    def _scalars(self, group, step):
        return {"lr": group["lr"], "scale": 1.0}

    def _update(self, group, p, grad, arrays, scalars, xp):
        raise NotImplementedError

    def _scales_params(self, group):
        """Whether the update scales p (scale != 1), known before any step."""
        return False

    def _static(self, group):
        """The hyper-parameters a compiled step depends on as constants (all but lr):
        a change of one makes the plan trace anew."""
        return {k: v for k, v in group.items() if k not in ("params", "lr")}

    def __repr__(self):
        """As PyTorch prints an optimiser: each group's hyper-parameters, sorted."""
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {index}")
            lines.extend(f"    {key}: {group[key]}" for key in sorted(group) if key != "params")
        return "\n".join(lines + [")"])

    def state_dict(self):
        """Hyper-parameters and state (arrays as tensors), keyed by parameter position:
        what gg.save needs to resume training."""
        params = [p for g in self.param_groups for p in g["params"]]
        state = {}
        for i, p in enumerate(params):
            if p in self.state:
                # Copies: a compiled step updates the state arrays in place, and a state
                # dict taken before it (a checkpoint) must keep its values.
                state[i] = {k: (Tensor._wrap(p.device.backend.astype(v, p.dtype), p.dtype,
                                             p.device, False)
                                if hasattr(v, "shape") else v)
                            for k, v in self.state[p].items()}
        # "params": each group's parameter positions, as PyTorch saves them: loading
        # checks that every group has as many parameters as when it was saved.
        groups, start = [], 0
        for g in self.param_groups:
            count = len(g["params"])
            groups.append({**{k: v for k, v in g.items() if k != "params"},
                           "params": list(range(start, start + count))})
            start += count
        return {"param_groups": groups, "state": state}

    def load_state_dict(self, state_dict):
        """Resume from state_dict(): checked whole before anything changes — the same
        kind of optimiser (its hyper-parameters and state entries), the same number of
        groups and of parameters in each, state of the parameters' shapes."""
        name = type(self).__name__
        saved_groups = [_with_switches(self, g) for g in state_dict["param_groups"]]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state has {len(saved_groups)} "
                             f"parameter group(s), this optimiser {len(self.param_groups)}")
        for index, (group, saved) in enumerate(zip(self.param_groups, saved_groups,
                                                   strict=True)):
            _check_saved_group(self, index, group, saved)
        params = [p for g in self.param_groups for p in g["params"]]
        # Each parameter's group as it will be once loaded (SGD keeps a momentum buffer
        # where the loaded momentum is > 0).
        loaded_group = {id(p): {**g, **saved} for g, saved in zip(
            self.param_groups, saved_groups, strict=True) for p in g["params"]}
        state = {}
        for i, saved in state_dict["state"].items():
            if not 0 <= int(i) < len(params):
                raise ValueError(f"{name}.load_state_dict: the state names parameter {i}, "
                                 f"but there are {len(params)}")
            p = params[int(i)]
            _check_saved_state(self, i, p, loaded_group[id(p)], saved)
            state[p] = {k: (p.device.backend.from_host(v.numpy(), p.dtype)
                            if isinstance(v, Tensor) else v) for k, v in saved.items()}
        for group, saved in zip(self.param_groups, saved_groups, strict=True):
            group.update({k: tuple(v) if k == "betas" else v for k, v in saved.items()
                          if k != "params"})
        self.state = state


SWITCHES = ("amsgrad", "maximize")  # off unless a saved group says otherwise


def _with_switches(opt, saved):
    """A saved group with the switches it lacks off: a state saved before an optimiser
    had them (or by one that never turned them on) loads and goes on as it would have."""
    missing = {k: False for k in SWITCHES if k in opt.defaults and k not in saved}
    return {**missing, **saved} if missing else saved


def _check_saved_group(opt, index, group, saved):
    """A saved group must hold the hyper-parameters this optimiser's groups hold (Adam's
    betas and eps in an SGD failed at the next step, with a bare KeyError) and, where it
    says, as many parameters (PyTorch's check: a state of a 2-parameter model put the
    moments of one model's layers on another's)."""
    name = type(opt).__name__
    # Only the optimiser's own hyper-parameters must be there: a group may carry more
    # (a scheduler's initial_lr, a user's label).
    lacking = [k for k in opt.defaults if k not in saved]
    if lacking:
        raise ValueError(f"{name}.load_state_dict: parameter group {index} of the state "
                         f"lacks {', '.join(lacking)}: another kind of optimiser than {name} "
                         "saved it")
    if "params" in saved and len(saved["params"]) != len(group["params"]):
        raise ValueError(f"{name}.load_state_dict: parameter group {index} of the state "
                         f"has {len(saved['params'])} parameter(s), this optimiser's "
                         f"{len(group['params'])}")


def _check_saved_state(opt, i, p, group, saved):
    """Parameter i's saved state: the entries this optimiser keeps, of p's shape. An
    optional entry may be there or not (SGD's momentum buffer, kept while momentum is 0
    and made at the first step that needs it, as a state never saved would be)."""
    name = type(opt).__name__
    expected = set(opt._state_keys(group)) | {"step"}
    optional = set(opt._optional_state_keys())
    if not expected - optional <= set(saved) <= expected | optional:
        raise ValueError(f"{name}.load_state_dict: the state of parameter {i} has "
                         f"{', '.join(sorted(saved)) or 'nothing'}; {name} keeps "
                         f"{', '.join(sorted(expected | optional))}")
    for key, value in saved.items():
        if isinstance(value, Tensor) and value.shape != p.shape:
            raise ValueError(f"{name}.load_state_dict: state {key!r} of parameter {i} has "
                             f"shape {value.shape}, the parameter {p.shape}")


def _valid_lr(lr):
    return isinstance(lr, numbers.Real) and not isinstance(lr, bool) and \
        math.isfinite(lr) and lr >= 0


def _check_hyper(name, **values):
    """Each hyper-parameter a finite number >= 0; an error names the one that is not."""
    for key, value in values.items():
        if not _valid_lr(value):
            raise ValueError(f"{name}: {key} must be a finite number >= 0, got {value!r}")


def _flag(name, key, value):
    """A switch (amsgrad, maximize) as a bool: a string "False" would read as true."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: {key} must be True or False, got {value!r}")
    return bool(value)


def _check_lr(opt, group, index):
    """A learning rate must be a finite number >= 0: a negative one climbs the loss,
    and NaN or inf turns every parameter into NaN at the first step."""
    lr = group.get("lr")
    if not _valid_lr(lr):
        raise ValueError(f"{type(opt).__name__}: parameter group {index} has lr={lr!r}; a "
                         "learning rate must be a finite number >= 0")


def _check_grad(opt, p, position):
    """A gradient that could not update p in place as it is (another shape would
    broadcast, another dtype would be cast silently, another device copied) is refused
    before anything changes. `position`: p's place among the optimiser's parameters
    (as in its state_dict), which is how the error names it."""
    from ..errors import DeviceError, DTypeError, ShapeError
    from ..ops.registry import _annotate

    g = p.grad
    if not isinstance(g, Tensor):
        error, what = DTypeError, f"a .grad that is a {type(g).__name__}, not a Tensor"
    elif g.shape != p.shape:
        error, what = ShapeError, f"a gradient of shape {g.shape}"
    elif g.dtype != p.dtype:
        error, what = DTypeError, (f"a gradient of dtype {g.dtype} (cast it with "
                                   f".astype('{p.dtype}'))")
    elif g.device is not p.device:
        error, what = DeviceError, f"a gradient on {g.device} (move it with .to('{p.device}'))"
    else:
        return
    raise _annotate(f"{type(opt).__name__}.step", error(
        f"parameter {position} (shape {p.shape}, {p.dtype}, on {p.device}) has {what}"))


def _check_finite_updates(opt, pending):
    """Under gg.detect_anomaly(): a step that would put a NaN or an Inf into a parameter
    (from a gradient set by hand, an lr too large for the loss) raises before any
    parameter or state changes, naming the parameter by its place among the optimiser's
    and the user's line, as an op's NaN does."""
    from ..ops.registry import AnomalyError, _annotate

    params = [p for group in opt.param_groups for p in group["params"]]
    for p, scale, delta, _ in pending:
        xp = p.device.backend.xp
        new = p._data * scale - delta
        nans, infs = int(xp.sum(xp.isnan(new))), int(xp.sum(xp.isinf(new)))
        if nans or infs:
            grad = p.grad._data
            position = next(i for i, q in enumerate(params) if q is p)
            raise _annotate(f"{type(opt).__name__}.step", AnomalyError(
                f"parameter {position} (shape {p.shape}, {p.dtype}) would get {nans} NaN "
                f"and {infs} Inf value(s) (its gradient has {int(xp.sum(xp.isnan(grad)))} "
                f"NaN and {int(xp.sum(xp.isinf(grad)))} Inf); no parameter was updated"))


class SGD(Optimizer):
    """Stochastic gradient descent, with momentum, Nesterov momentum and L2 weight decay:
    d = g + wd p;  b = mu b + (1 - dampening) d;  d = d + mu b (Nesterov) or b;  p -= lr d.
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False,
                 dampening=0.0, *, maximize=False):
        _check_hyper("SGD", lr=lr, momentum=momentum, weight_decay=weight_decay,
                     dampening=dampening)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and no dampening")
        super().__init__(params, {"lr": lr, "momentum": momentum,
                                  "weight_decay": weight_decay, "nesterov": nesterov,
                                  "dampening": dampening,
                                  "maximize": _flag("SGD", "maximize", maximize)})

    def _state_keys(self, group):
        # A buffer made at the first step with momentum, kept while momentum is 0; from
        # zeros, that step's b = mu 0 + d is PyTorch's b = d (where momentum comes on
        # after the first step with dampening too, it is (1 - dampening) d, where
        # PyTorch starts from d).
        return ("momentum_buffer",) if group["momentum"] else ()

    def _optional_state_keys(self):
        # Saved with momentum 0 after steps with momentum (the buffer kept), or with
        # momentum just switched on (no buffer yet): both go on as they would have.
        return ("momentum_buffer",)

    def _scalars(self, group, step):
        # With a zero buffer, the first step's mu * 0 + 1 * d is exactly PyTorch's buf = d.
        return {"lr": group["lr"], "scale": 1.0,
                "dampening": 1.0 if step == 1 else 1 - group["dampening"]}

    def _update(self, group, p, grad, arrays, scalars, xp):
        d = -grad if group["maximize"] else grad  # ascent: as PyTorch, before the decay
        if group["weight_decay"]:
            d = d + group["weight_decay"] * p
        mu = group["momentum"]
        new = {}
        if mu:
            buf = mu * arrays["momentum_buffer"] + scalars["dampening"] * d
            new = {"momentum_buffer": buf}
            d = d + mu * buf if group["nesterov"] else buf
        return scalars["scale"], scalars["lr"] * d, new


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction, as PyTorch computes it; weight_decay adds
    wd p to the gradient (L2), unlike AdamW."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False):
        name = type(self).__name__
        _check_hyper(name, lr=lr, eps=eps, weight_decay=weight_decay)
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps,
                                  "weight_decay": weight_decay,
                                  "amsgrad": _flag(name, "amsgrad", amsgrad),
                                  "maximize": _flag(name, "maximize", maximize)})

    def _state_keys(self, group):
        # AMSGrad's running maximum of v, from zeros (as PyTorch's) at the first step
        # that uses it
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())

    def _optional_state_keys(self):
        # kept while amsgrad is switched off, made when it is switched on (see SGD's)
        return ("max_exp_avg_sq",)

    def _scalars(self, group, step):
        lr, (b1, b2), wd = group["lr"], group["betas"], group["weight_decay"]
        return {"lr": lr, "step_size": lr / (1 - b1 ** step),
                "sqrt_bias2": math.sqrt(1 - b2 ** step),
                # AdamW decays first (p *= 1 - lr wd), then takes the Adam step, as
                # PyTorch does.
                "scale": 1 - lr * wd if wd and self.decoupled else 1.0}

    def _scales_params(self, group):
        return bool(self.decoupled and group["weight_decay"])

    def _update(self, group, p, grad, arrays, scalars, xp):
        (b1, b2), eps, wd = group["betas"], group["eps"], group["weight_decay"]
        if group["maximize"]:  # ascent: as PyTorch, before the decay
            grad = -grad
        if wd and not self.decoupled:
            grad = grad + wd * p
        m = b1 * arrays["exp_avg"] + (1 - b1) * grad
        v = b2 * arrays["exp_avg_sq"] + (1 - b2) * grad * grad
        new = {"exp_avg": m, "exp_avg_sq": v}
        if group["amsgrad"]:  # the step divides by the largest v so far
            v = new["max_exp_avg_sq"] = xp.maximum(arrays["max_exp_avg_sq"], v)
        denom = xp.sqrt(v) / scalars["sqrt_bias2"] + eps
        return scalars["scale"], scalars["step_size"] * (m / denom), new


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr wd first."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)
