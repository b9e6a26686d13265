"""An optimiser's step inside gg.compile's trace: the same update rule, on Tensors.

The update is recorded as ops (so a compiled plan runs it with the forward and the
backward), reading the optimiser's state arrays and writing them back on every run.
The step counters and the scalars derived from them (bias corrections, the learning rate
a scheduler may change) are host work the plan redoes on every run, one call per
parameter group; the other
hyper-parameters are constants of the plan, guarded: changing one traces anew.
"""

import math
import operator
import types

from ..compiler.reads import typed
from ..functions import maximum
from ..mode import no_grad
from ..tensor import Tensor
from .fused_update import fused_update_for
from .optimizer import _check_lr, _with_python_numbers, holds_numpy_scalars


def captured_step(opt, recorder):
    opt._check_grads()  # as in an eager step, before any state advances
    # load_state_dict replaces the state (by none at all, say): the plan's reads of it
    # would fail or go on from the old step count, so the function traces anew.
    state = opt.state
    recorder.guard(lambda: opt.state is state, "the optimiser's state was replaced "
                   "(load_state_dict)", key=("optimiser state", id(opt)))
    positions = {id(p): i for i, p in enumerate(q for g in opt.param_groups
                                                 for q in g["params"])}
    idle = [(i, g) for i, g in enumerate(opt.param_groups)
            if all(p.grad is None for p in g["params"])]
    if idle:  # groups the update skips: their lr is checked all the same, as eagerly
        recorder.host_call(lambda: [_check_lr(opt, g, i) for i, g in idle])
    for index, group in enumerate(opt.param_groups):
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            continue
        recorder.guard(_hyper_parameters(opt, group), "an optimiser hyper-parameter "
                       "changed", key=("optimiser group", id(group)))
        for p, scalars in zip(params, _step_scalars(opt, index, params, recorder,
                                                    positions), strict=True):
            _captured_update(opt, group, p, scalars, recorder, positions)


def _hyper_parameters(opt, group):
    """A guard's getter: whether the group still holds the hyper-parameters the plan
    holds as constants (opt._static's keys) and as many entries (one added or removed
    shows too). On every run: the same objects are one `is` each (map, in C); only a
    value set anew is compared by type and bits (compiler.reads.typed: NumPy finds
    np.float32(0.9) == 0.9, yet the update computes from 0.9000000095...)."""
    keys = tuple(opt._static(group))
    values = tuple(map(group.get, keys))
    size, was = len(group), tuple(map(typed, values))

    def unchanged():
        if len(group) != size:
            return False
        return all(map(operator.is_, map(group.get, keys), values)) or \
            tuple(map(typed, map(group.get, keys))) == was

    return unchanged


def _step_scalars(opt, index, params, recorder, positions):
    """Every parameter's step counter advanced, and the scalars that follow from it, in
    one host call per group and run: [{name: 0-d tensor}] in the order of params. The
    group's lr is checked first, as an eager step checks it: one made negative or NaN
    since the trace fails the run before it advanced anything (see HostUndo)."""
    group = opt.param_groups[index]
    for p in params:
        state = opt._state(group, p)
        state.setdefault("step", 0)
        opt.state[p] = state

    keys = list(opt._scalars(group, 1))  # the same keys at every step
    names = [[(key, f"{key}_{i}") for key in keys] for i in range(len(params))]
    # The scalars are computed from Python numbers, as an eager step computes them (see
    # _with_python_numbers): a group holding NumPy scalars is converted on each run.
    plain = not holds_numpy_scalars(group)

    def advance():  # on every run: kept lean (a small step's plan is ~50 us in all)
        lr = group["lr"]
        if lr.__class__ is not float or not 0.0 <= lr < math.inf:  # (the common case)
            _check_lr(opt, group, index)  # raises if it is not a valid number
        numbers = group if plain and lr.__class__ is float else _with_python_numbers(group)
        values = {}
        last_step = scalars = None
        for p, pairs in zip(params, names, strict=True):
            state = opt.state[p]
            step = state["step"] = state["step"] + 1
            if step != last_step:  # parameters of a group usually share their count
                scalars, last_step = opt._scalars(numbers, step), step
            for key, name in pairs:
                values[name] = scalars[key]
        return values

    def retreat():  # a run that failed before changing any parameter: no step was taken
        for p in params:
            opt.state[p]["step"] -= 1

    example = advance()
    owner = {f"{key}_{i}": (i, key) for i, p in enumerate(params)
             for key in opt._scalars(group, opt.state[p]["step"])}
    specs = {name: (params[i].dtype, params[i].device) for name, (i, _) in owner.items()}
    about = {name: (params[i], f"{type(opt).__name__} {key} of {{}}",
                    f"param {positions[id(params[i])]}") for name, (i, key) in owner.items()}
    per_param = [{} for _ in params]
    for name, t in recorder.scalars(advance, example, specs, retreat, about).items():
        i, key = owner[name]
        per_param[i][key] = t
    return per_param


# What an update rule calls beyond operators (Optimizer._update's xp), on Tensors.
TENSOR_MATH = types.SimpleNamespace(sqrt=Tensor.sqrt, maximum=maximum)


def _captured_update(opt, group, p, scalar_t, recorder, positions):
    state = opt.state[p]
    arrays, feeds = {}, {}
    for key, array in state.items():
        if key == "step":
            continue
        t = Tensor._wrap(array, p.dtype, p.device, False)
        # named after p; where no module call names it, by its place in the optimiser
        # ("param 0"), as opt.state_dict() numbers it
        feeds[key] = recorder.feed(t, "state", _getter(opt, p, key),
                                   about=(p, f"{{}}.{key}", f"param {positions[id(p)]}"))
        arrays[key] = t
    # The plan's constants (betas, eps, 1 - beta, ...) from Python numbers, as an eager
    # step computes them (the guard retraces when one changes type).
    group = _with_python_numbers(group)
    fused = fused_update_for(opt, group, p)
    with no_grad():
        if fused is not None:  # one op (one kernel of kernels/optim.cu on CuPy)
            value, new = fused(opt, group, p, p.grad, arrays, scalar_t)
        else:
            scale, delta, new = opt._update(group, p, p.grad, arrays, scalar_t, TENSOR_MATH)
            value = p * scale - delta if opt._scales_params(group) else p - delta
    for key, t in new.items():
        recorder.state(_setter(opt, p, key), t, feeds.get(key))
    recorder.assign(p, value, into_array=True)  # as an eager step writes it


def _getter(opt, p, key):
    return lambda: opt.state[p][key]


def _setter(opt, p, key):
    def store(array):
        opt.state[p][key] = array

    return store
