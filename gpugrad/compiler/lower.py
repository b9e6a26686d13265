"""Lowering: a Program and its memory plan become one flat Python function.

The function is generated as source text (readable: `step.code`) and compiled once: a
straight line of kernel calls on local variables, with the kernels' attributes bound
ahead (functools.partial), buffers written in place where the memory plan says, and
`del` where a buffer's last reader ran. No networkx, no dispatch, no graph recording
remains per call: what is left per op is one Python call to its kernel.
"""

import functools

from ..errors import DTypeError, ShapeError
from ..tensor import Tensor
from .fusion import FUSED, kernels


class Retrace(Exception):
    """Raised by a plan's guards, before it changed anything: trace the function anew."""


def lower(program, memory, n_args):
    """(source text, namespace) of `def run(a0, a1, ...)`, returning the results, then
    the new arrays of the arguments at ns["ARG_WRITES"] (their positions)."""
    ns = {"_Retrace": Retrace, "_wrap": Tensor._wrap, "__name__": __name__}  # for warnings
    names = {}
    body = []
    _guards(program, ns, body)
    leaves = program.leaves()
    _tensor_guards(leaves, ns, body)
    start = len(body)
    undo = host_undo(program, ns)
    _host(program, ns, names, body, marked=undo is not None)
    kernels_from = len(body)
    _leaves(leaves, ns, names, body)
    _ops(program, memory, ns, names, body)
    body = taken_back_on_failure(body, kernels_from, undo, "_U()")
    body = taken_back_on_failure(body, start, undo, "_UH(_u)", end=kernels_from)
    results = _sinks(program, ns, names, body)
    host_after(program, ns, body)
    returned = f"return ({''.join(r + ', ' for r in results)})"
    if ns["ARG_WRITES"]:
        returned += ("  # the results, then the new arrays of argument(s) "
                     f"{', '.join(f'a{i}' for i in ns['ARG_WRITES'])}")
    body.append(returned)
    context = _context(program)
    head = f"def run({', '.join(f'a{i}' for i in range(n_args))}):"
    if context is not None:
        ns["_context"] = context
        lines = [head, "    with _context:"] + ["        " + line for line in body]
    else:
        lines = [head] + ["    " + line for line in body]
    return "\n".join(lines) + "\n", ns


def _guards(program, ns, body):
    for i, (getter, expected, reason) in enumerate(program.guards):
        ns[f"G{i}"], ns[f"GV{i}"], ns[f"GR{i}"] = getter, expected, reason
        body.append(f"if G{i}() != GV{i}: raise _Retrace(GR{i})")


def _tensor_guards(leaves, ns, body):
    """A tensor read by identity must still have the shape, dtype, device and
    requires_grad the plan was made for (a parameter replaced by one of another shape, or
    frozen, makes a new trace)."""
    for i, node in enumerate(leaves):
        feed = node.meta["feed"]
        if feed.kind != "tensor":
            continue
        ns[f"T{i}"] = feed.source
        ns[f"S{i}"], ns[f"D{i}"], ns[f"V{i}"] = node.shape, node.dtype, node.device
        ns[f"RG{i}"] = feed.source._requires_grad
        ns[f"R{i}"] = (f"a tensor the function reads ({tuple(node.shape)} {node.dtype}) "
                       "changed shape, dtype, device or requires_grad")
        body.append(f"if T{i}._data.shape != S{i} or T{i}._dtype is not D{i} or "
                    f"T{i}._device is not V{i} or T{i}._requires_grad is not RG{i}: "
                    f"raise _Retrace(R{i})")


class HostUndo:
    """Takes a run's host work back when the run fails before it wrote into any tensor,
    so that it leaves what an eager call failing at the same point leaves:

    - a kernel failing (a class index out of range, an interrupt during the forward
      pass) — (): the host work is taken back, but for the host calls the function made
      before anything else (a scheduler's step at its start: eager mode did it), and the
      .grad the function cleared before any op (zero_grad) is None again;
    - host item k failing (a schedule that ran out) — host_failed(k): the function did
      items [0, k) before it, so they stay; unless a write into a tensor came before
      item k in the function, which the run, having run no kernel, cannot redo: then
      they are taken back, and the step did not happen. A .grad cleared before item k
      is None again.

    `armed` is off while a CUDA graph captures the body: a capture that fails is not a
    failed step."""

    def __init__(self, undos, first_calls, writes_from, cleared):
        self.undos = undos  # per host item: a callable, or None
        self.first_calls = first_calls  # how many host items are calls made first
        self.writes_from = writes_from  # the first host item after a write, or None
        self.cleared = cleared
        self.armed = True

    def kernels_failed(self):
        if self.armed:
            self._undo(self.first_calls, len(self.undos))
            self._clear(len(self.undos))

    def host_failed(self, k):
        if self.armed:
            if self.writes_from is not None and k >= self.writes_from:
                self._undo(0, k)
            self._clear(k)

    def _undo(self, start, stop):
        for undo in reversed(self.undos[start:stop]):
            if undo is not None:
                undo()

    def _clear(self, done):
        """The .grad cleared once `done` host items or fewer were done (zero_grad)."""
        for after, tensor in self.cleared:
            if after <= done:
                tensor.grad = None


def host_undo(program, ns):
    """The program's HostUndo, bound in ns as _U (kernels failed) and _UH (host item
    _u failed); None when a failing run has nothing to take back."""
    undos = [None if item[0] == "feed" else item[-1] for item in program.host]
    if not (any(u is not None for u in undos) or program.cleared):
        return None
    undo = HostUndo(undos, program.first_calls, program.writes_from, program.cleared)
    ns["_U"], ns["_UH"] = undo.kernels_failed, undo.host_failed
    return undo


def host_after(program, ns, lines):
    """The host calls done after the run's writes (Program.host_after)."""
    for i, item in enumerate(program.host_after):
        ns[f"HA{i}"] = item[1]
        lines.append(f"HA{i}()  # after the writes, as the function did it")


COMMIT = "# -- commit: from here the run writes into tensors"


def taken_back_on_failure(lines, start, undo, handler, end=None):
    """lines with lines[start:end] (end: the COMMIT mark, or the end) in a try block
    whose failure runs `handler` (a line calling the HostUndo) and re-raises; the mark
    itself stays as a comment. A handler reading _u (host items done) gets `_u = 0`
    first. Without an undo, the lines as they were."""
    if end is None:
        end = lines.index(COMMIT) if COMMIT in lines else len(lines)
    if undo is None or start >= end:
        return lines
    first = ["_u = 0"] if "_u" in handler else []
    return (lines[:start] + first + ["try:"] + ["    " + line for line in lines[start:end]]
            + ["except BaseException:  # nothing written yet: see HostUndo",
               "    " + handler, "    raise"] + lines[end:])


def undo_mark(i, body, marked):
    """After host item i, where a run can take host work back: how many items a failing
    host item finds done."""
    if marked:
        body.append(f"_u = {i + 1}")


def host_call_or_draw(i, item, ns, names, body):
    """The code of host item i when it is a callback or a random draw (whose value is
    then named r{i}); False for a scalars item."""
    if item[0] == "call":
        ns[f"H{i}"] = item[1]
        body.append(f"H{i}()")
        return True
    if item[0] == "feed":
        node = item[1]
        ns[f"H{i}"] = node.meta["feed"].source
        names[id(node)] = f"r{i}"
        body.append(f"r{i} = H{i}()")
        return True
    return False


def _host(program, ns, names, body, marked):
    """The host work of each run, in the order the function did it (marked: with
    undo_mark after each item)."""
    for i, item in enumerate(program.host):
        if not host_call_or_draw(i, item, ns, names, body):
            compute, nodes = item[1], item[2]
            if not nodes:
                ns[f"H{i}"] = compute
                body.append(f"H{i}()")
            else:
                ns[f"H{i}"] = _converted(compute, nodes)
                for key, node in nodes.items():
                    names[id(node)] = f"h{i}_{key}"
                body.append(f"{''.join(f'h{i}_{key}, ' for key in nodes)}= H{i}()")
        undo_mark(i, body, marked)


def _converted(compute, nodes):
    """compute() (a dict of host numbers) as the tuple of the kernels' scalars, in the
    order of `nodes`: one call per run for all of them. Numbers equal to the last run's
    (a learning rate, run after run) reuse its scalars: converting each anew took a third
    of a microsecond, as long as comparing them all (kernels only read a scalar). Equal
    numbers make equal scalars of a node's dtype (1, 1.0 and True alike), except a zero:
    -0.0 == 0.0, so numbers holding one are converted on every run (-0.0 * g is not
    0.0 * g, and p - (-0.0) is not p - 0.0 where p is -0.0)."""
    makers = [(key, _scalar_maker(node)) for key, node in nodes.items()]
    last = [None, ()]  # the last run's numbers, and its scalars made from them

    def scalars():
        values = compute()
        if values != last[0] or 0 in values.values():
            last[:] = values, tuple(make(values[key]) for key, make in makers)
        return last[1]

    return scalars


def _scalar_maker(node):
    """A host scalar as the kernels take it: a NumPy scalar of the node's dtype (NumPy
    and CuPy treat it like a 0-d array, without a device copy), else a 0-d array."""
    backend = node.device.backend
    if backend.name in ("numpy", "cupy"):
        return node.dtype.type
    return functools.partial(backend.full, (), dtype=node.dtype)


def _leaves(leaves, ns, names, body):
    """Name every leaf not named yet (reading tensors, .grad and optimiser state);
    returns [(name, feed kind)] of those a run reads (all but constants)."""
    read = []
    for i, node in enumerate(leaves):
        feed = node.meta["feed"]
        if id(node) in names:
            continue
        if feed.kind == "arg":
            names[id(node)] = f"a{feed.source}"
        elif feed.kind == "const":
            ns[f"c{i}"] = feed.source
            names[id(node)] = f"c{i}"
            continue
        elif feed.kind == "tensor":
            names[id(node)] = f"t{i}"
            body.append(f"t{i} = T{i}._data")
        elif feed.kind == "grad":
            ns[f"P{i}"] = feed.source
            names[id(node)] = f"t{i}"
            body.append(f"t{i} = P{i}.grad._data")
        elif feed.kind == "state":
            ns[f"F{i}"] = feed.source
            names[id(node)] = f"t{i}"
            body.append(f"t{i} = F{i}()")
        else:
            raise AssertionError(f"a {feed.kind} leaf without its host step")
        read.append((names[id(node)], feed.kind))
    return read


def kernel_of(node, backend):
    """The kernel a plan calls for an op node on a backend (lowerings may swap some)."""
    return node.op.kernel_for(backend.name)


def _ops(program, memory, ns, names, body, kernel_for=kernel_of):
    groups = {}  # a several-output op's call, made once: group id -> variable
    ops = program.op_nodes()
    untaken = {}  # group id -> outputs not yet taken from its call's tuple
    members = {}  # group id -> its nodes in the plan
    for node in ops:
        if node.meta and "group" in node.meta:
            untaken[node.meta["group"]] = untaken.get(node.meta["group"], 0) + 1
            members.setdefault(node.meta["group"], []).append(node)
    committed = False
    for i, node in enumerate(ops):
        name = f"v{i}"
        args = ", ".join(names[id(x)] for x in node.inputs)
        backend = node.device.backend
        target = memory.out.get(node)
        if not committed and target is not None and target.op.is_leaf:
            body.append(COMMIT)  # the first write into a tensor's own array
            committed = True
        first_of_group = not (node.meta and node.meta.get("group") in groups)
        if node.op.plan_check is not None and backend.name == "numpy" and first_of_group:
            ns[f"C{i}"] = _bound(node.op.plan_check, backend.xp, node.attrs)
            body.append(f"C{i}({args})  # the values eager mode checks on the host")
        if node.meta and "group" in node.meta:
            group = node.meta["group"]
            if group not in groups:
                groups[group] = f"g{i}"
                ns[f"K{i}"] = _checked(_bound(kernel_for(node, backend), backend.xp,
                                              node.attrs), members[group], backend)
                body.append(f"g{i} = K{i}({args})  # {node.name}")
            body.append(f"{name} = {groups[group]}[{node.meta['output_index']}]")
            untaken[group] -= 1
            if not untaken[group]:  # the tuple would keep every output alive
                body.append(f"del {groups[group]}")
        elif node.op is FUSED:
            _fused(node, i, target, backend, ns, names, body)
        elif target is not None and backend.name == "numpy" and node.op.ufunc is not None:
            ns[f"O{i}"] = getattr(backend.xp, node.op.ufunc)  # no lambda between
            body.append(f"{name} = O{i}({args}, out={names[id(target)]})  # {node.name}, "
                        "in place")
        elif target is not None:
            ns[f"O{i}"] = functools.partial(node.op.out_kernel, backend.xp)
            body.append(f"{name} = O{i}({args}, {names[id(target)]})  # {node.name}, in place")
        else:
            ns[f"K{i}"] = _checked(_plan_kernel(node, backend, kernel_for), [node], backend)
            body.append(f"{name} = K{i}({args})  # {node.name}")
        names[id(node)] = name
        gone = memory.free_after.get(node)
        if gone:
            body.append("del " + ", ".join(names[id(g)] for g in gone))


def _fused(node, i, target, backend, ns, names, body):
    """A fused op calls its backend's generated kernel directly (no xp, no attrs)."""
    args = ", ".join(names[id(x)] for x in node.inputs)
    steps = node.attrs["steps"]
    what = node.attrs["expr"]
    made = kernels(steps, len(node.inputs), backend.name, node.attrs.get("layouts"))
    if made is None:
        ns[f"K{i}"] = _bound(node.op.kernel_for(backend.name), backend.xp, node.attrs)
        body.append(f"v{i} = K{i}({args})  # {what}")
    elif target is not None:
        ns[f"O{i}"] = made[1]
        body.append(f"v{i} = O{i}({args}, {names[id(target)]})  # {what}, in place")
    else:
        ns[f"K{i}"] = made[0]
        body.append(f"v{i} = K{i}({args})  # {what}")


def _plan_kernel(node, backend, kernel_for):
    """The callable of the arrays a plan calls for one op node: the op's own plan_kernel
    where it has one for the backend (and no lowering swapped the kernel), else its kernel
    bound to xp and the node's attributes."""
    kernel = kernel_for(node, backend)
    if node.op.plan_kernel is not None and kernel is node.op.kernel_for(backend.name):
        made = node.op.plan_kernel(backend.name, node.attrs)
        if made is not None:
            return made
    return _bound(kernel, backend.xp, node.attrs)


def _checked(kernel, nodes, backend):
    """The kernel, or for an op whose kernels are not gpugrad's (a user's custom op: it
    has a check_output) the kernel with its outputs checked on every run, as eager dispatch
    checks them: arrays of the device, of the shapes and dtypes of the trace, which the
    plan's later calls and buffers are made for (a kernel's output shape may depend on
    its inputs' values, or break a shape function's promise, after the trace)."""
    op = nodes[0].op
    if op.check_output is None or op.name.startswith("gpugrad::"):  # (gpugrad's own)
        return kernel
    several = "output_index" in (nodes[0].meta or {})
    expected = [(n.meta["output_index"] if several else None, tuple(n.shape), n.dtype)
                for n in nodes]
    passed = set()  # array classes found to be this device's: checked once

    def check(index, array, shape, dtype):
        what = "the kernel returned" if index is None else \
            f"the kernel returned, as output {index},"
        op.check_output(op, backend, array, None, None)  # an array of this device
        real = backend.dtype_of(array)
        if tuple(array.shape) != shape or real != dtype:
            error = ShapeError if tuple(array.shape) != shape else DTypeError
            raise error(f"{what} {tuple(array.shape)} {real} where its traced call "
                        f"returned {shape} {dtype}: a compiled plan is made for the "
                        "shapes and dtypes of its trace")
        passed.add(array.__class__)

    def run(*arrays):
        out = kernel(*arrays)
        if several and (not isinstance(out, (tuple, list)) or len(out) != op.num_outputs):
            raise ShapeError(f"the kernel must return {op.num_outputs} arrays, got "
                             f"{type(out).__name__}")
        for index, shape, dtype in expected:
            array = out if index is None else out[index]
            if array.__class__ not in passed or array.shape != shape or \
                    array.dtype != dtype:
                check(index, array, shape, dtype)
        return out

    return run


def _bound(kernel, xp, attrs):
    return functools.partial(kernel, xp, **attrs) if attrs else functools.partial(kernel, xp)


def _sinks(program, ns, names, body):
    """What each run does with its values; returns the result variables in order."""
    results = {}
    for i, sink in enumerate(program.sinks):
        value = None if sink.node is None else names[id(sink.node)]
        if sink.kind == "result":
            results[sink.target] = value
        elif sink.kind == "grad":
            ns[f"Q{i}"] = sink.target
            if value is None:
                body.append(f"Q{i}._grad = None")
                continue
            ns[f"QD{i}"], ns[f"QV{i}"] = sink.node.dtype, sink.node.device
            body.append(f"Q{i}._grad = _wrap({value}, QD{i}, QV{i}, False)")
        elif sink.kind == "assign":
            ns[f"Q{i}"] = sink.target
            # changed, as eager updates say (a graph recorded before this run then
            # refuses to differentiate with the new values): in its array (and so in
            # the tensors sharing it), or as a new array of its own
            if sink.in_place:
                body.append(f"Q{i}._mark_modified()")
            elif sink.into_array:
                body.append(f"Q{i}._data[...] = {value}")
                body.append(f"Q{i}._mark_modified()")
            else:
                body.append(f"Q{i}._data = {value}")
                body.append(f"Q{i}._mark_replaced()")
        elif sink.kind == "state" and not sink.in_place:
            ns[f"Q{i}"] = sink.target
            body.append(f"Q{i}({value})")
        elif sink.kind == "assign_grad":
            ns[f"Q{i}"] = sink.target
            body.extend(assign_grad_lines(f"Q{i}", value))
    ordered = [results[k] for k in sorted(results)]
    # An argument updated in place (x += 1) gets the new array, as an eager in-place
    # update gives its tensor (the caller's array, which views or another argument may
    # share, and a broadcast or a 0-d scalar cannot take, is left as it was): the run
    # returns those arrays after its results, and the plan hands them to the arguments.
    writes = [s for s in program.sinks if s.kind == "assign_arg"]
    ns["ARG_WRITES"] = tuple(s.target for s in writes)
    return ordered + [names[id(s.node)] for s in writes]


def assign_grad_lines(owner, value):
    """The lines giving the tensor that is owner's .grad its new values (a new array,
    as an eager in-place update gives it)."""
    return [f"{owner}._grad._data = {value}", f"{owner}._grad._mark_replaced()"]


def keep_apart(program, names, results, body, written):
    """Results that may be views of an array about to be written (`w.detach()`, `w.T`
    or `w.grad` itself, taken before the update) are copied first: they keep the values
    of when they were made, as in eager mode. `written`: the leaves written into;
    `results`: the result variables, renamed in place where copied."""
    from .memory import _view_base

    nodes = {names[id(n)]: n for n in program.nodes if id(n) in names}
    for k, name in enumerate(results):
        node = nodes.get(name)
        if node is None:
            continue
        base = _view_base(node)
        if base is None or base in written:
            body.append(f"{name}_kept = {name}.copy()  # a view of an array written below")
            results[k] = f"{name}_kept"


def _context(program):
    backend = program.backend()
    return None if backend is None else backend.context
