"""The scheduler: orders the recorded graph and runs the chain rule in reverse.

No recursion anywhere: the graph is walked with an explicit stack, and ordered by each
node's creation number (a node's inputs are always older than it, so newest-first is a
reverse topological order, and it is deterministic). Only the part of the graph that
leads to the requested gradients runs. Gradients reaching a node along several paths
add up before its VJP runs once. Each node's saved values are dropped as soon as its
VJP has run (unless retain_graph), so memory does not grow across training steps.
"""

import time
from contextlib import contextmanager
from operator import attrgetter

from .errors import DeviceError, GraphError, ShapeError
from .mode import is_grad_enabled, set_grad_enabled, state, switch
from .node import FREED, Node, format_site, user_site
from .ops import elementwise as ew
from .ops.registry import CONSTANT, check_finite, node_of, run_vjp
from .tensor import Tensor


def backward(outputs, grad_outputs=None, retain_graph=None, create_graph=False):
    """Accumulate gradients of `outputs` into the .grad of every leaf requiring grad."""
    _run(outputs, grad_outputs, None, retain_graph, create_graph, False)


def _no_graph_message(out):
    """Why a tensor has no graph to differentiate, as far as it is known."""
    made_by = getattr(out, "_made_by", None) if out._node is None else None
    if isinstance(made_by, str):  # a compiled plan's result (see compiler.compiled)
        return (f"a tensor of shape {out.shape} returned by {made_by} has no graph to "
                "differentiate: a compiled plan records none; call backward() (or "
                "gg.grad) inside the compiled function")
    return (f"a tensor of shape {out.shape} does not require grad and has no graph to "
            "differentiate (was it computed under no_grad, or from tensors that do not "
            "require grad?)")


def grad(outputs, inputs, grad_outputs=None, create_graph=False, *, retain_graph=None,
         allow_unused=False):
    """The gradients of `outputs` with respect to `inputs`, as a list of Tensors.

    Leaves' .grad are left alone. An input the outputs do not depend on raises, or gives
    None with allow_unused=True. retain_graph (None: as create_graph) keeps the graph for
    another backward pass, as PyTorch's; it and allow_unused are keywords only, so that
    the fourth argument is create_graph, in the order of gpugrad's contract.
    """
    outputs = _as_list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    for position, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"gg.grad: inputs must be Tensors, got {type(t).__name__} (at "
                            f"{format_site(user_site(1))})")
        if not t.requires_grad:
            raise GraphError(f"gg.grad: input {position} (shape {t.shape}) does not "
                             f"require grad (at {format_site(user_site(1))})")
    targets = [node_of(t) for t in inputs]
    found, reached = _run(outputs, grad_outputs, targets, retain_graph, create_graph,
                          allow_unused)
    results = []
    for t, node in zip(inputs, targets, strict=True):
        g = found.get(node)
        if g is None:
            if node not in reached:
                if not allow_unused:
                    raise GraphError(
                        f"gg.grad: input {len(results)} was not used to compute the outputs; "
                        f"pass allow_unused=True to get None (at {format_site(user_site(1))})")
                results.append(None)
                continue
            g = Tensor._wrap(t._device.backend.full(t.shape, 0, t._dtype), t._dtype,
                             t._device, False)
        results.append(g)
    return results


def _as_list(xs):
    return [xs] if isinstance(xs, Tensor) else list(xs)


def _root_grads(outputs, grad_outputs, caller):
    """The gradients the backward starts from; `caller` ("backward()" or "gg.grad")
    names the call, and so the keyword that gives them, in errors."""
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    else:
        # One array (a Tensor, or a host array as backward(grad=) takes) is one gradient,
        # not a sequence of gradients.
        single = isinstance(grad_outputs, Tensor) or hasattr(grad_outputs, "__array__")
        grad_outputs = [grad_outputs] if single else list(grad_outputs)
        if len(grad_outputs) != len(outputs):
            raise GraphError(f"{caller}: {len(grad_outputs)} output gradients for "
                             f"{len(outputs)} outputs (at {format_site(user_site(1))})")
    grads = []
    for out, g in zip(outputs, grad_outputs, strict=True):
        if not out.requires_grad:
            raise GraphError(f"{caller}: {_no_graph_message(out)} (at "
                             f"{format_site(user_site(1))})")
        if g is None:
            if out.size != 1:
                how = ("grad_outputs= (a tensor of each output's shape)"
                       if caller == "gg.grad" else "grad= (a tensor of the same shape)")
                raise GraphError(f"{caller} of a tensor of shape {out.shape}: a gradient "
                                 "can be implicitly created only for scalar outputs; pass "
                                 f"{how} (at {format_site(user_site(1))})")
            g = Tensor._wrap(out._device.backend.full(out.shape, 1, out._dtype), out._dtype,
                             out._device, False)
            if state.capture is not None and not out.shape:
                # A constant of gg.compile's trace, as eager makes it anew on every call:
                # the plan folds what follows from it (1 / batch size) at compile time.
                g._node = Node(CONSTANT, (), {"value": 1}, (), out._dtype, out._device,
                               False, None)
        else:
            if not isinstance(g, Tensor):
                from .creation import tensor

                g = tensor(g, dtype=out._dtype, device=out._device)
            if g.shape != out.shape:
                raise ShapeError(f"{caller}: the gradient has shape {g.shape} but the output "
                                 f"has shape {out.shape} (at {format_site(user_site(1))})")
            if g._device is not out._device:
                raise DeviceError(f"{caller}: the gradient is on {g._device} but the "
                                  f"output is on {out._device}; move it with .to() (at "
                                  f"{format_site(user_site(1))})")
            if g._dtype is not out._dtype:
                g = g.astype(out._dtype)
        grads.append(g)
    return grads


def _reachable(roots):
    """Nodes that lead from `roots` to something requiring grad, newest first."""
    seen = set()
    order = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        order.append(node)
        for inp in node.inputs:
            if inp.requires_grad and inp not in seen:
                stack.append(inp)
    order.sort(key=attrgetter("seq"), reverse=True)
    return order


def _needed(order, targets):
    """Nodes on a path to one of `targets`: a node is needed if it is a target or one of
    its inputs is (checked oldest first, so inputs are decided before their consumers)."""
    needed = set(targets)
    for node in reversed(order):
        if node not in needed:
            for inp in node.inputs:
                if inp in needed:
                    needed.add(node)
                    break
    return needed


def _run(outputs, grad_outputs, targets, retain_graph, create_graph, allow_unused):
    outputs = _as_list(outputs)
    root_grads = _root_grads(outputs, grad_outputs,
                             "backward()" if targets is None else "gg.grad")
    if retain_graph is None:
        retain_graph = create_graph
    roots = [node_of(t) for t in outputs]
    order = _reachable(roots)
    if state.capture is not None:  # gg.compile's trace
        state.capture.differentiating(order if targets is None else ())
    needed = None if targets is None else _needed(order, targets)
    target_set = None if targets is None else set(targets)
    pending = {}
    for node, g in zip(roots, root_grads, strict=True):
        prev = pending.get(node)
        pending[node] = g if prev is None else accumulate(prev, g)
    found = {}
    anomaly, profiler = state.anomaly, state.profiler
    # Under anomaly detection the backward is checked node by node (naming the forward
    # op whose VJP went wrong), not op by op inside the VJPs; likewise for profiling.
    with set_grad_enabled(create_graph), switch("anomaly", False), \
            _backward_phase(profiler):
        for node in order:
            g = pending.pop(node, None)
            if g is None:
                continue
            if target_set is not None and node in target_set:
                found[node] = g
            if node.op.is_leaf:
                if targets is None:
                    _accumulate_leaf(node, g, create_graph)
                if profiler is not None:  # a leaf's gradient, for gg.profile(stats=True)
                    profiler.backward(node, None, g)
                continue
            if node.ref is not None and targets is None:  # t.retain_grad(): into t.grad
                _accumulate_leaf(node, g, create_graph)
            if needed is not None:
                needs = tuple([inp.requires_grad and inp in needed for inp in node.inputs])
                if not any(needs):
                    continue
            else:
                needs = tuple([inp.requires_grad for inp in node.inputs])  # as recorded
            if profiler is None:
                _propagate(node, g, needs, pending, anomaly)
            else:
                start = time.perf_counter()
                _propagate(node, g, needs, pending, anomaly)
                profiler.backward(node, time.perf_counter() - start, g)
            if not retain_graph:
                node.saved = FREED
                node.saved_output = None
    return found, (set(order) if targets is not None else None)


def _propagate(node, g, needs, pending, anomaly=False):
    """Run a node's VJP and add each input's gradient to what is pending for it."""
    if node.saved is FREED:
        raise GraphError(
            f"trying to backward through the graph a second time (at "
            f"{format_site(user_site(1))}): the first backward freed it, from '{node.name}' "
            f"(created at {node.where()}) on; pass retain_graph=True to the first backward")
    in_grads = run_vjp(node, g, needs)
    if anomaly:
        _check_gradients(node, in_grads)
    for inp, gi, need in zip(node.inputs, in_grads, needs, strict=True):
        if not need or gi is None:
            continue
        if (gi.__class__ is not Tensor or gi._data.shape != inp.shape
                or gi._dtype is not inp.dtype or gi._device is not inp.device):
            gi = _fit(gi, inp, node)
        prev = pending.get(inp)
        pending[inp] = gi if prev is None else accumulate(prev, gi)


def accumulate(a, b):
    """a + b for two gradients of one tensor (same shape, dtype and device). Recorded as
    an add when the backward is itself differentiated; otherwise a bare array sum, since
    nothing will ever look at the graph of it."""
    if is_grad_enabled() or state.tracing:  # a traced backward records the sum too
        return ew.add(a, b)
    return Tensor._wrap(a._data + b._data, a._dtype, a._device, False)


@contextmanager
def _backward_phase(profiler):
    if profiler is None:
        yield
        return
    previous, profiler.in_backward = profiler.in_backward, True
    try:
        yield
    finally:
        profiler.in_backward = previous


def _check_gradients(node, in_grads):
    """Under anomaly detection: the VJP's gradients must be finite."""
    inputs = [(i.shape, i.dtype) for i in node.inputs]
    for index, gi in enumerate(in_grads):
        if isinstance(gi, Tensor):
            check_finite(node.op, gi._data, gi.device.backend.xp,
                         f"backward (the gradient for input {index})", inputs, node.where())


def _fit(g, inp, node):
    """The one place gradients are matched to their input: summed over broadcast axes
    (unbroadcast), then cast to the input's dtype."""
    if not isinstance(g, Tensor):
        raise GraphError(f"{node.name}: the VJP returned a {type(g).__name__}, not a Tensor "
                         f"(op created at {node.where()})")
    if g._device is not inp.device:  # (a DeviceError, as devices mixed in an op are)
        raise DeviceError(f"{node.name}: the VJP returned a gradient on {g._device} for "
                          f"an input on {inp.device} (op created at {node.where()})")
    shape = inp.shape
    if g._data.shape != shape:
        g = sum_to(g, shape, node)
    if g._dtype is not inp.dtype:
        g = g.astype(inp.dtype)
    return g


def sum_to(g, shape, node=None):
    """Sum `g` over the axes along which `shape` was broadcast to g's shape."""
    gshape = g._data.shape
    lead = len(gshape) - len(shape)
    fits = lead >= 0 and all(s in (1, d) for s, d in zip(shape, gshape[lead:], strict=True))
    if not fits:
        what = f"{node.name} (created at {node.where()})" if node is not None else "sum_to"
        raise ShapeError(f"{what}: a gradient of shape {tuple(gshape)} does not reduce to "
                         f"the input's shape {tuple(shape)}")
    kept = tuple(lead + i for i, s in enumerate(shape) if s == 1 and gshape[lead + i] != 1)
    if not kept:  # only leading axes to sum (a bias's gradient): one op, no reshape
        return g.sum(axis=tuple(range(lead))) if lead else g
    g = g.sum(axis=tuple(range(lead)) + kept, keepdims=True)
    return g.reshape(shape) if g._data.shape != shape else g


def _accumulate_leaf(node, g, create_graph):
    tensor = node.ref()  # (also an intermediate's, after its retain_grad())
    if tensor is None:  # the leaf is gone: nobody can read its gradient
        return
    if state.capture is not None:  # gg.compile's trace: the .grad write is part of the plan
        state.capture.accumulate_grad(tensor, g)
        return
    if not create_graph:
        g = g.detach()  # a tensor of its own (paths can share one gradient tensor)
    tensor.grad = g if tensor.grad is None else accumulate(tensor.grad, g)
