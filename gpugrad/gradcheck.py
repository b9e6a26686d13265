"""gg.gradcheck: the VJPs against central finite differences, in float64."""

import numpy as np

from .creation import tensor
from .errors import DTypeError, GpugradError, GradcheckError
from .scheduler import grad as autograd_grad
from .tensor import Tensor


class GradcheckInputError(GpugradError, ValueError):
    """gradcheck was given nothing to check: no input requires grad."""


def _outputs(fn, inputs, checked=None):
    """fn's outputs as a list; with `checked` (a list of bools), those it marks."""
    out = fn(*inputs)
    out = [out] if isinstance(out, Tensor) else list(out)
    return out if checked is None else [o for o, c in zip(out, checked, strict=True) if c]


def _flat_outputs(fn, inputs, checked=None):
    # With gradients on: fn may compute gradients itself (gg.grad with create_graph),
    # which is how second derivatives are checked.
    return np.concatenate([o.numpy().astype(np.float64).ravel()
                           for o in _outputs(fn, inputs, checked)])


def _checked_outputs(fn, inputs):
    """Which of fn's outputs are checked: those that require grad, as PyTorch's
    gradcheck has it (an output declared nondifferentiable, or detached, has no
    analytical gradient to compare with its finite differences); all of them where none
    does, so that their finite differences must then be zero."""
    wanted = [o.requires_grad for o in _outputs(fn, inputs)]
    return wanted if any(wanted) else [True] * len(wanted)


def _perturbed(inputs, which, delta):
    """Inputs with `delta` (a host array) added to input `which` (same device), wherever
    that tensor is passed: f(x, x) moves both arguments, as x moving does."""
    out = list(inputs)
    x = inputs[which]
    moved = tensor(x.numpy() + delta.reshape(x.shape), dtype=x.dtype, device=x.device,
                   requires_grad=True)
    for j, y in enumerate(inputs):
        if y is x:
            out[j] = moved
    return out


def _numerical_vjp(fn, inputs, which, v, eps, checked):
    """v . J_which by central differences, one input element at a time."""
    x = inputs[which]
    n = x.size
    result = np.zeros(n)
    for k in range(n):
        e = np.zeros(n)
        e[k] = eps
        plus = _flat_outputs(fn, _perturbed(inputs, which, e), checked)
        minus = _flat_outputs(fn, _perturbed(inputs, which, -e), checked)
        result[k] = v @ (plus - minus) / (2 * eps)
    return result


def _analytical_vjp(fn, inputs, v, diff, checked):
    outs = _outputs(fn, inputs, checked)
    grads, start = [], 0
    for o in outs:
        size = o.size
        grads.append(tensor(v[start:start + size].reshape(o.shape), dtype=o.dtype,
                            device=o.device))
        start += size
    pairs = [(o, g) for o, g in zip(outs, grads, strict=True) if o.requires_grad]
    if not pairs:
        return [np.zeros(inputs[i].size) for i in diff]
    found = autograd_grad([o for o, _ in pairs], [inputs[i] for i in diff],
                          grad_outputs=[g for _, g in pairs], allow_unused=True)
    return [np.zeros(inputs[i].size) if g is None else g.numpy().astype(np.float64).ravel()
            for i, g in zip(diff, found, strict=True)]


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, fast=False, seed=0,
              raise_exception=True):
    """Check fn's gradients with respect to every input that requires grad.

    Full mode compares the whole Jacobian, row by row (one backward per output element)
    against central differences (one pair of evaluations per input element). Fast mode
    compares a single random projection u^T J v (one backward, one pair of evaluations
    per input). It works in float64: an input of another float dtype that requires grad
    (float32, the default) is checked as a float64 copy, since finite differences in
    float32 are noise. Returns True, or raises GradcheckError (returns False with
    raise_exception=False).
    """
    inputs = [x if isinstance(x, Tensor) else tensor(x) for x in
              (inputs if isinstance(inputs, (list, tuple)) else [inputs])]
    diff = [i for i, x in enumerate(inputs) if x.requires_grad]
    if not diff:
        # Checking no input would compare nothing and return True: a passing check that
        # proved nothing (PyTorch refuses this too).
        listed = ", ".join(f"{tuple(x.shape)} {x.dtype}" for x in inputs) or "none"
        raise GradcheckInputError(
            f"gradcheck: no input requires grad (inputs: {listed}), so there is nothing to "
            "check; pass float64 tensors with requires_grad=True, e.g. "
            "gg.tensor(values, dtype='float64', requires_grad=True)")
    copies = {}  # one float64 copy per tensor, however often it is passed
    for i in diff:
        if id(inputs[i]) not in copies:
            copies[id(inputs[i])] = _in_float64(inputs[i])
    inputs = [copies[id(x)] if i in diff else x for i, x in enumerate(inputs)]
    checked = _checked_outputs(fn, inputs)
    n_out = _flat_outputs(fn, inputs, checked).size
    rng = np.random.default_rng(seed)
    projections = [rng.standard_normal(n_out)] if fast else list(np.eye(n_out))
    failures = []
    for row, v in enumerate(projections):
        analytical = _analytical_vjp(fn, inputs, v, diff, checked)
        for i, a in zip(diff, analytical, strict=True):
            if fast:
                u = rng.standard_normal(inputs[i].size)
                num = _directional(fn, inputs, i, u, eps, checked) @ v
                ana = a @ u
            else:
                num = _numerical_vjp(fn, inputs, i, v, eps, checked)
                ana = a
            if not np.allclose(ana, num, atol=atol, rtol=rtol):
                failures.append(_describe(i, row, ana, num, fast))
    if failures:
        if raise_exception:
            raise GradcheckError("gradients disagree with finite differences:\n" +
                                 "\n".join(failures))
        return False
    return True


def _in_float64(x):
    """x itself if float64, else a float64 leaf copy that requires grad."""
    if x.dtype == np.float64:
        return x
    if x.dtype.kind != "f":
        raise DTypeError(f"gradcheck: an input of dtype {x.dtype} cannot have a gradient")
    return x.detach().astype("float64").requires_grad_()


def _directional(fn, inputs, which, u, eps, checked):
    plus = _flat_outputs(fn, _perturbed(inputs, which, eps * u), checked)
    minus = _flat_outputs(fn, _perturbed(inputs, which, -eps * u), checked)
    return (plus - minus) / (2 * eps)


def _describe(i, row, ana, num, fast):
    where = "a random projection" if fast else f"output element {row}"
    return (f"  input {i}, {where}: analytical {np.round(ana, 6)} vs numerical "
            f"{np.round(num, 6)} (max difference {np.max(np.abs(np.asarray(ana) - num)):.3g})")
