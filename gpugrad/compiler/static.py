"""A plan in three parts, ready to be captured as a CUDA graph: prepare, body, finish.

A CUDA graph replays the kernels it captured with the arguments they had: the same
buffers, the same scalar values. A plan run as one straight function (lower.py) does
not fit that: it passes the step's host scalars (learning rate, bias corrections) by
value, reads whatever array a parameter holds at the call, and may hand a parameter a
new array. So this lowering splits the run:

- prepare(a0, ...): the host's part — guards, host callbacks, random draws, the host
  scalars (one NumPy vector per group and dtype), and the arrays of the tensors the
  plan reads — returning the body's inputs, in the order of `slots`;
- body(*inputs): the kernel calls and nothing else. It reads only its inputs and
  constants (host scalars as elements of their vector: on a device, device memory),
  writes every updated tensor, gradient or optimiser state into that tensor's own array
  (copying at the end where an op could not write there itself), and returns the
  results, then every value a sink stores;
- finish(*outputs): stores gradients, arrays and state as the straight plan does;
  returns the results.

Each slot says how a graph treats that input between replays: "copy" (a call's
argument or random draw: copied into the graph's own buffer), "fixed" (a parameter's
array, an accumulated gradient, optimiser state: the graph replays only while the
tensor still holds the same array) or "scalars" (a host vector: copied to the graph's
device buffer). Run directly, finish(*body(*prepare(*args))) — with the vectors moved
to the device — equals the straight plan, bit for bit; the tests run it on NumPy.
"""

import contextlib

import numpy as np

from .lower import (
    COMMIT,
    Retrace,
    _guards,
    _leaves,
    _ops,
    _tensor_guards,
    assign_grad_lines,
    host_after,
    host_call_or_draw,
    host_undo,
    keep_apart,
    kernel_of,
    taken_back_on_failure,
    undo_mark,
)

COPY, FIXED, SCALARS = "copy", "fixed", "scalars"


class StaticPlan:
    """The three generated functions of a plan (see the module's docstring)."""

    def __init__(self, prepare, body, finish, slots, n_results, source, backend):
        self.prepare = prepare
        self.body = body
        self.finish = finish
        self.slots = slots
        self.n_results = n_results
        self.source = source
        self.backend = backend
        self.context = backend.context  # a device other than the first: entered per run
        self.writes_args = False  # whether the body writes into an argument's array
        self.undo = None  # the HostUndo of its host work (see lower.HostUndo), if any

    def inputs_on_device(self, inputs):
        """prepare's outputs with each host vector moved to the backend's device (one
        explicit copy per vector; NumPy takes them as they are)."""
        if self.backend.name == "numpy":
            return inputs
        xp = self.backend.xp
        return tuple(xp.asarray(v) if kind == SCALARS else v
                     for v, kind in zip(inputs, self.slots, strict=True))

    def __call__(self, *arrays):
        """One run without a graph."""
        with entered(self.context):
            outputs = self.body(*self.inputs_on_device(self.prepare(*arrays)))
            return self.finish(*outputs)


def lower_static(program, memory, n_args, kernel_for=kernel_of):
    """The StaticPlan of a Program and its memory plan."""
    backend = program.backend()
    ns = {"_Retrace": Retrace, "_copyto": backend.xp.copyto, "__name__": __name__}
    from ..tensor import Tensor

    ns["_wrap"] = Tensor._wrap
    names, slots, slot_names = {}, [], []
    prep = []
    _guards(program, ns, prep)
    leaves = program.leaves()
    _tensor_guards(leaves, ns, prep)
    start = len(prep)
    undo = host_undo(program, ns)  # prepare: for a host item failing; the body: for a
    views = _host(program, ns, names, prep, slots, slot_names, undo is not None)
    prep = taken_back_on_failure(prep, start, undo, "_UH(_u)")  # kernel, before its writes
    for name, kind in _leaves(leaves, ns, names, prep):  # arguments: copied in; the
        slots.append(COPY if kind == "arg" else FIXED)  # rest must keep their arrays
        slot_names.append(name)
    prep.append(f"return ({''.join(n + ', ' for n in slot_names)})")

    body = list(views)
    _ops(program, memory, ns, names, body, kernel_for)
    if COMMIT not in body:  # then the copies into the tensors' own arrays write first
        body.append(COMMIT)
    body = taken_back_on_failure(body, 0, undo, "_U()")
    outputs, finish, writes_args = _sinks(program, ns, names, body)
    body.append(f"return ({''.join(o + ', ' for o in outputs)})")
    n_results = sum(1 for s in program.sinks if s.kind == "result")

    args = ", ".join(f"a{i}" for i in range(n_args))
    source = "\n".join(
        [f"def prepare({args}):"] + _indent(prep) + [""]
        + [f"def body({', '.join(slot_names)}):"] + _indent(body) + [""]
        + [f"def finish({', '.join(f'o{i}' for i in range(len(outputs)))}):"]
        + _indent(finish)) + "\n"
    exec(compile(source, "<gg.compile graph-ready plan>", "exec"), ns)
    plan = StaticPlan(ns["prepare"], ns["body"], ns["finish"], slots, n_results, source,
                      backend)
    plan.writes_args = writes_args
    plan.undo = undo
    return plan


def entered(context):
    """The backend's context manager, or one that does nothing."""
    return contextlib.nullcontext() if context is None else context


def _indent(lines):
    return ["    " + line for line in lines] or ["    pass"]


def _host(program, ns, names, prep, slots, slot_names, marked):
    """The host work of each run (as lower._host does), with host scalars packed into
    vectors; returns the body's lines that take each scalar out of its vector."""
    views = []
    for i, item in enumerate(program.host):
        if host_call_or_draw(i, item, ns, names, prep):
            if item[0] == "feed":  # a random draw: an input of the body
                slots.append(COPY)
                slot_names.append(f"r{i}")
        else:
            compute, nodes = item[1], item[2]
            groups = _by_dtype(nodes)
            if not groups:
                ns[f"H{i}"] = compute
                prep.append(f"H{i}()")
            else:
                ns[f"H{i}"] = _vectors(compute, groups)
                vectors = [f"s{i}_{g}" for g in range(len(groups))]
                prep.append(f"{''.join(v + ', ' for v in vectors)}= H{i}()")
                for vector, (_, keys) in zip(vectors, groups, strict=True):
                    slots.append(SCALARS)
                    slot_names.append(vector)
                    for k, key in enumerate(keys):
                        names[id(nodes[key])] = f"h{i}_{key}"
                        views.append(f"h{i}_{key} = {vector}[{k}]")
        undo_mark(i, prep, marked)
    return views


def _by_dtype(nodes):
    """[(dtype, [keys])] of a scalars item's nodes, in first-seen order."""
    groups = {}
    for key, node in nodes.items():
        groups.setdefault(node.dtype, []).append(key)
    return list(groups.items())


def _vectors(compute, groups):
    """compute() (a dict of host numbers) as one NumPy vector per dtype group."""
    def vectors():
        values = compute()
        return tuple(np.array([values[k] for k in keys], dtype=dtype)
                     for dtype, keys in groups)

    return vectors


def _homes(program):
    """sink -> the leaf whose array keeps its value from run to run: the tensor's own
    leaf for an update and the old state for new state (Sink.home), and for a gradient
    the .grad it accumulated into, or that the function updated in place (p.grad *= 0.5)."""
    grad_leaves = {id(n.meta["feed"].source): n for n in program.leaves()
                   if n.meta["feed"].kind == "grad"}
    fixed = _fixed_leaves(program)
    # NumPy hands out 0-d values as scalars, which nothing can be written into.
    scalars_immutable = program.backend().name == "numpy"
    homes = {}
    for sink in program.sinks:
        home = sink.home if sink.kind in ("assign", "state") else \
            grad_leaves.get(id(sink.target)) if sink.kind in ("grad", "assign_grad") \
            else None
        if home is None or sink.node is None or home not in fixed:
            continue
        if scalars_immutable and not home.shape:
            continue
        homes[sink] = home
    return homes


def _fixed_leaves(program):
    return {n for n in program.leaves() if n.meta["feed"].kind in ("tensor", "grad", "state")}


def _sinks(program, ns, names, body):
    """(the body's outputs, finish's lines): results first (by position), then one
    output per stored value — the home array it was written into, or the value."""
    homes = _homes(program)
    results = sorted((s for s in program.sinks if s.kind == "result"),
                     key=lambda s: s.target)
    outputs = [names[id(s.node)] for s in results]
    finish = []
    copies = []
    writes_args = []
    for i, sink in enumerate(program.sinks):
        if sink.kind == "result" or (sink.kind == "state" and sink.node is None):
            continue
        if sink.kind == "assign_arg":  # into this call's array (a graph then captures
            writes_args.append(sink)       # nothing: see CudaGraphRunner)
            if not sink.in_place:
                copies.append(f"a{sink.target}[...] = {names[id(sink.node)]}")
            continue
        if sink.kind == "grad" and sink.node is None:
            ns[f"Q{i}"] = sink.target
            finish.append(f"Q{i}._grad = None")
            continue
        value = names[id(sink.node)]
        home = homes.get(sink)
        if home is not None and home is not sink.node and not sink.in_place:
            copies.append(f"_copyto({names[id(home)]}, {value})  # into its own array")
            value = names[id(home)]
        elif home is not None:
            value = names[id(home)]
        o = f"o{len(outputs)}"
        outputs.append(value)
        ns[f"Q{i}"] = sink.target
        if sink.kind == "grad":
            ns[f"QD{i}"], ns[f"QV{i}"] = sink.node.dtype, sink.node.device
            finish.append(f"Q{i}._grad = _wrap({o}, QD{i}, QV{i}, False)")
        elif sink.kind == "assign":
            finish.append(f"if Q{i}._data is not {o}: Q{i}._data = {o}; Q{i}._mark_replaced()")
            finish.append(f"else: Q{i}._mark_modified()")
        elif sink.kind == "state":
            finish.append(f"Q{i}({o})")
        elif sink.kind == "assign_grad" and home is not None:  # written into its array
            finish.append(f"Q{i}._grad._mark_modified()")
        elif sink.kind == "assign_grad":
            finish.extend(assign_grad_lines(f"Q{i}", o))
    host_after(program, ns, finish)
    if copies:
        written = set(homes.values()) | {s.home for s in writes_args if s.home is not None}
        kept = outputs[:len(results)]
        keep_apart(program, names, kept, body, written)
        outputs[:len(results)] = kept
    body.extend(copies)
    finish.append(f"return ({''.join(f'o{k}, ' for k in range(len(results)))})")
    return outputs, finish, bool(writes_args)
