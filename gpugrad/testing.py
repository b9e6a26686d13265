"""gg.testing.opcheck: the checks an op should pass, usable from a plugin's own tests."""

import numpy as np

from . import cuda
from .creation import tensor
from .errors import GradcheckError
from .gradcheck import gradcheck
from .mode import tracing
from .ops.custom import CompositeOp
from .ops.registry import OpDef
from .scheduler import grad as autograd_grad
from .spec import Spec
from .tensor import Tensor


class OpcheckError(GradcheckError):
    """An op failed one or more of opcheck's checks (the message lists them)."""


def _as_tensors(inputs, device, dtype=None):
    out = []
    for x in inputs:
        host = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
        as_float = dtype is not None and host.dtype.kind == "f"
        out.append(tensor(host, dtype=dtype if as_float else None, device=device,
                          requires_grad=as_float))
    return out


def _check_inference(op, inputs, attrs):
    """The shape rule, run on specs alone, against the array the kernel returned."""
    if isinstance(op, CompositeOp):
        return "skipped: a composite op's output is what its function returns"
    with tracing():
        outs = op(*inputs, **attrs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    specs = [Spec(tuple(i.shape), i.dtype, i.device) for i in outs[0].node.inputs]
    if getattr(op, "num_outputs", 1) > 1:
        promised = op.infer_outputs(*specs, **attrs)
    else:
        promised = [op.infer(*specs, **attrs)]
    if promised is None or promised[0][0] is None:
        return "skipped: the op has no shape function (register_shape)"
    for i, (out, (shape, dtype)) in enumerate(zip(outs, promised, strict=True)):
        real = (tuple(out._data.shape), out.device.backend.dtype_of(out._data))
        if (tuple(shape), dtype) != real:
            raise OpcheckError(f"{op.name}: output {i}: the shape rule says {tuple(shape)} "
                               f"{dtype}, the kernel returned {real[0]} {real[1]}")
    return "ok"


def _first_derivative(op, attrs):
    """The op's VJP as a function of its inputs (a fixed weighting of its outputs), for
    gradcheck to differentiate once more: the VJP must be made of differentiable ops,
    as the contract's higher orders need."""
    def vjp(*inputs):
        outs = op(*inputs, **attrs)
        outs = outs if isinstance(outs, tuple) else (outs,)
        total = _weighted_sum([o for o in outs if o.requires_grad])
        diff = [t for t in inputs if t.requires_grad]
        if total is None:
            return tuple(t * 0.0 for t in diff)
        found = autograd_grad(total, diff, create_graph=True, allow_unused=True)
        return tuple(t * 0.0 if g is None else g for t, g in zip(diff, found, strict=True))

    return vjp


def _weighted_sum(outputs):
    """sum_k <o_k, w_k> with fixed weights w_k = linspace(-1, 1): a scalar whose gradient
    is a VJP with a cotangent that is not all ones (which could hide a transposition)."""
    total = None
    for o in outputs:
        weights = tensor(np.linspace(-1.0, 1.0, o.size).reshape(o.shape), dtype=o.dtype,
                         device=o.device)
        term = (o * weights).sum()
        total = term if total is None else total + term
    return total


def _outputs_and_grads(op, inputs, attrs):
    outs = op(*inputs, **attrs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    grads, used = [], [o for o in outs if o.requires_grad]
    if used:
        total = _weighted_sum(used)
        diff = [t for t in inputs if t.requires_grad]
        grads = [g.numpy() for g in autograd_grad(total, diff, allow_unused=True)
                 if g is not None]
    return [o.numpy() for o in outs], grads


def default_samples(op):
    """Inputs to check an op with when it brings none: one float64 array of shape (3, 4),
    values in [0.2, 0.8] (inside every usual domain: logs, roots, probabilities), per
    positional parameter of its forward. None when it has keyword attributes without
    defaults (values unknown)."""
    import inspect

    forward = getattr(op, "_user_forward", None)
    params = list(inspect.signature(forward or op.forward).parameters.values())
    if forward is None:
        params = params[1:]  # a built-in kernel's first parameter is the namespace
    if any(p.kind is p.KEYWORD_ONLY and p.default is p.empty for p in params):
        return None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                  and p.default is p.empty]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        positional = positional or [None, None]
    rng = np.random.default_rng(0)
    return [rng.uniform(0.2, 0.8, (3, 4)) for _ in positional]


def opcheck(op, sample_inputs, attrs=None, *, device="cpu", atol=1e-5, rtol=1e-3):
    """Check `op` on `sample_inputs` (tensors or arrays; float ones are differentiated):
    its shape rule against the real output; its VJP against finite differences in
    float64 (full Jacobian and one random projection); the VJP's own VJP (second
    derivatives, one random projection: higher orders need a VJP made of differentiable
    ops); and, where a GPU is usable, CUDA against the CPU. Returns {check: "ok" |
    "skipped: why"}; raises OpcheckError listing every failed check."""
    if not isinstance(op, OpDef):
        raise TypeError(f"opcheck takes an op (e.g. made by @gg.custom_op), got {op!r}")
    if not sample_inputs:
        raise TypeError(f"opcheck({op.name}): no sample inputs; pass a list of tensors or "
                        "arrays to run the op on")
    attrs = dict(attrs or {})
    report, failures = {}, []

    def run(name, check):
        try:
            report[name] = check()
        except Exception as exc:  # whatever the op's parts raise (a KeyError in its VJP,
            # a ZeroDivisionError) fails this check, listed with the others
            report[name] = f"failed: {exc}"
            failures.append(f"{name}: {exc}")

    run("inference", lambda: _check_inference(op, _as_tensors(sample_inputs, device),
                                              attrs))
    f64 = _as_tensors(sample_inputs, device, dtype="float64")
    differentiable = op.differentiable and any(t.requires_grad for t in f64)
    for mode, fast in (("gradcheck", False), ("gradcheck (fast)", True)):
        if not differentiable:
            report[mode] = "skipped: nothing to differentiate"
            continue
        run(mode, lambda fast=fast: gradcheck(lambda *xs: op(*xs, **attrs), f64,
                                              fast=fast, atol=atol, rtol=rtol) and "ok")
    if not differentiable:
        report["gradgradcheck"] = "skipped: nothing to differentiate"
    elif getattr(op, "_residual_fwd", None) is not None:
        report["gradgradcheck"] = "skipped: a defvjp op has first derivatives only"
    else:
        run("gradgradcheck", lambda: gradcheck(_first_derivative(op, attrs), f64, fast=True,
                                               atol=atol, rtol=rtol) and "ok")
    if cuda.is_available() and device == "cpu":
        def against_cuda():
            cpu = _outputs_and_grads(op, _as_tensors(sample_inputs, "cpu"), attrs)
            gpu = _outputs_and_grads(op, _as_tensors(sample_inputs, "cuda"), attrs)
            for a, b in zip([*cpu[0], *cpu[1]], [*gpu[0], *gpu[1]], strict=True):
                np.testing.assert_allclose(b, a, rtol=rtol, atol=atol)
            return "ok"

        run("cuda vs cpu", against_cuda)
    else:
        report["cuda vs cpu"] = f"skipped: {cuda.reason()}" if device == "cpu" else \
            "skipped: not run from the CPU"
    if failures:
        raise OpcheckError(f"{op.name} failed opcheck:\n  " + "\n  ".join(failures))
    return report
