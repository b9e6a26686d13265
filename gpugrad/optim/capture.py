"""An optimiser's step inside gg.compile's trace: the same update rule, on Tensors.

The update is recorded as ops (so a compiled plan runs it with the forward and the
backward), reading the optimiser's state arrays and writing them back on every run.
The step counter and the scalars derived from it (bias corrections, the learning rate
a scheduler may change) are host work the plan redoes on every run; the other
hyper-parameters are constants of the plan, guarded: changing one traces anew.
"""

from ..mode import no_grad
from ..tensor import Tensor


def captured_step(opt, recorder):
    for group in opt.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                _captured_update(opt, group, p, recorder)


def _captured_update(opt, group, p, recorder):
    state = opt.state.get(p) or opt._initial_state(group, p)
    state.setdefault("step", 0)
    opt.state[p] = state
    recorder.guard(lambda: opt._static(group), "an optimiser hyper-parameter changed",
                   key=("optimiser group", id(group)))

    def advance():  # the step counter, and the scalars that follow from it
        state = opt.state[p]
        state["step"] += 1
        return opt._scalars(group, state["step"])

    scalar_t = recorder.scalars(advance, advance(), p.dtype, p.device)
    arrays, feeds = {}, {}
    for key, array in state.items():
        if key == "step":
            continue
        t = Tensor._wrap(array, p.dtype, p.device, False)
        feeds[key] = recorder.feed(t, "state", _getter(opt, p, key))
        arrays[key] = t
    with no_grad():
        scale, delta, new = opt._update(group, p, p.grad, arrays, scalar_t, Tensor.sqrt)
        value = p * scale - delta if opt._scales_params(group) else p - delta
    for key, t in new.items():
        recorder.state(_setter(opt, p, key), t, feeds.get(key))
    recorder.assign(p, value)


def _getter(opt, p, key):
    return lambda: opt.state[p][key]


def _setter(opt, p, key):
    def store(array):
        opt.state[p][key] = array

    return store
