"""Program: a traced function as a DAG of its own nodes, ready for the passes.

The trace's nodes are copied (the passes rewrite them; the user's graph stays as it
was); a copy keeps its node's number (seq), so that the program's graphs name module
scopes as the trace's graph does (see gpugrad.viz.scopes). Leaves carry a Feed in
`meta["feed"]`: where each run takes their value from. Sinks say what each run does
with the values it computed: return them, store them in a `.grad`, write them back into
a tensor, or hand them to an optimiser's state.
"""

from ..graph import Graph
from ..node import Node
from ..ops.conversion import clone
from ..ops.registry import CONSTANT, INPUT
from ..viz.scopes import module_calls
from .capture import CompileError, Feed


class Sink:
    """One thing a run does with a computed value.

    kind: "result" (target: the position in the function's flattened results), "grad"
    (target: the tensor whose .grad it becomes; node None sets .grad to None),
    "assign_grad" (target: the tensor whose .grad at the run takes the values: a
    gradient from before the call updated in place),
    "assign" (target: the tensor whose values it becomes), "assign_arg" (target: the
    position of the argument whose array the values are written into), "state" (target:
    a setter);
    home: a leaf whose buffer the value may be written into in place (the tensor's own
    values, the optimiser's old state array); into_array: an "assign" whose values go
    into the tensor's own array, where no op wrote them there (an optimiser's step).
    """

    __slots__ = ("kind", "target", "node", "home", "in_place", "into_array")

    def __init__(self, kind, target, node, home=None, into_array=False):
        self.kind = kind
        self.target = target
        self.node = node
        self.home = home
        self.in_place = False
        self.into_array = into_array

    def __repr__(self):
        return f"<sink {self.kind} of {self.node!r}>"


class Program:
    """nodes: every node in topological order (leaves and ops); sinks: list of Sink;
    host: the host work of each run before its kernels, in order (see Recorder.host);
    host_after: host calls done after its writes (see split_host); first_calls,
    writes_from, cleared: what a run failing before its writes keeps or does again
    (see lower.HostUndo); calls: the nn.Module calls of the trace
    (gpugrad.viz.scopes.module_calls), which give its graphs their module scopes and
    parameter names; arg_names: what its graphs call the function's tensor arguments,
    by position (the function's parameter names; None: unnamed); layouts: node -> the
    strides of the array the trace made for it, where that was not row-major."""

    def __init__(self, nodes, sinks, host, guards, calls=(), host_after=(), first_calls=0,
                 writes_from=None, cleared=(), arg_names=(), layouts=None):
        self.nodes = nodes
        self.sinks = sinks
        self.host = host
        self.guards = guards
        self.calls = calls
        self.host_after = list(host_after)
        self.first_calls = first_calls
        self.writes_from = writes_from
        self.cleared = list(cleared)
        self.arg_names = list(arg_names)
        self.layouts = dict(layouts or {})

    def op_nodes(self):
        return [n for n in self.nodes if not n.op.is_leaf]

    def leaves(self):
        return [n for n in self.nodes if n.op.is_leaf]

    def sink_nodes(self):
        return [s.node for s in self.sinks if s.node is not None]

    def backend(self):
        """The backend its ops run on (a program is traced on one device), or None."""
        for node in self.nodes:
            if not node.op.is_leaf:
                return node.device.backend
        return None

    def graph(self):
        """The program as a gg.Graph, for every viewer (print, to_dot, to_html, ...)."""
        results = [s.node for s in self.sinks if s.node is not None]
        args = sorted((n for n in self.leaves() if n.meta["feed"].kind == "arg"),
                      key=lambda n: n.meta["feed"].source)
        names = dict(enumerate(self.arg_names))
        return Graph(_leaves_before_readers(self.nodes), _unique(results), args, self.calls,
                     ordered=True,
                     input_names=[names.get(n.meta["feed"].source) for n in args])

    def __repr__(self):
        return f"<Program: {len(self.op_nodes())} ops, {len(self.sinks)} sinks>"


def _leaves_before_readers(nodes):
    """nodes with each leaf no later than its first reader: a run names every leaf before
    its kernels, so the passes may append the leaves they make (a folded constant), but a
    listing reads best in dependency order."""
    placed, out = set(), []
    for node in nodes:
        for inp in node.inputs:
            if inp.op.is_leaf and id(inp) not in placed:
                placed.add(id(inp))
                out.append(inp)
        if id(node) not in placed:
            placed.add(id(node))
            out.append(node)
    return out


def _unique(nodes):
    seen, out = set(), []
    for n in nodes:
        if id(n) not in seen:
            seen.add(id(n))
            out.append(n)
    return out


def build(recorder, args, results, arg_names=()):
    """The Program of a finished trace: `args` are the function's tensor arguments (as
    traced), called `arg_names` in drawings; `results` its flattened tensor results."""
    arg_index = {a._node: i for i, a in enumerate(args) if a._node is not None}
    # A result updated in place inside the function is its new value; so is a .grad.
    sinks = [("result", i, recorder.assigns.get(t, t)) for i, t in enumerate(results)]
    grad_writes = _grad_writes(recorder)
    set_apart = set()  # owners whose .grad the function set to another tensor, or None
    for tensor, g in recorder.grad_sinks():
        if g is None or grad_writes.get(g) is not tensor:
            set_apart.add(tensor)
            sinks.append(("grad", tensor, recorder.assigns.get(g, g) if g is not None
                          else None))
    sinks += [("assign_grad", owner, recorder.assigns[t]) for t, owner in grad_writes.items()
              if owner not in set_apart]
    sinks += [("assign", tensor, value) for tensor, value in recorder.assigns.items()
              if tensor not in grad_writes]
    sinks += [("state", setter, value, home) for setter, value, home in recorder.states]
    for t in [s[2] for s in sinks if s[2] is not None] + list(args):
        node = t._node
        if node is None or node.op.is_leaf:
            from ..ops.registry import node_of

            recorder.leaves.setdefault(node_of(t), t)
    roots = [s[2]._node for s in sinks if s[2] is not None]
    nodes = _walk_trace(roots, recorder.start_seq)
    copies = {}
    for node in nodes:
        copy = copies[node] = _copy(node, recorder, arg_index, copies)
        # A copy keeps its node's number: the module calls' ranges are in the trace's
        # numbers, and a node has the same id in the trace and in both compiled graphs.
        copy.seq = node.seq
    # Read off the trace now: the passes drop and merge nodes, marked outputs among them.
    calls = module_calls(n for n in nodes if n.seq >= recorder.start_seq)
    program_sinks = []
    for entry in sinks:
        kind, target, value = entry[:3]
        home = entry[3] if len(entry) > 3 else None
        node = None if value is None else copies[value._node]
        if kind == "assign":
            home = target._node  # the tensor's own leaf, if the trace read it
            if home in arg_index:  # an argument: each run writes into that call's array
                kind, target = "assign_arg", arg_index[home]
        program_sinks.append(Sink(kind, target, node, copies.get(home), into_array=(
            kind == "assign" and id(target) in recorder.into_array)))
    host, after = split_host(_host(recorder.host, copies, recorder.feeds),
                             recorder.writes_from)
    layouts = {copies[n]: strides for n, strides in recorder.layouts.items() if n in copies}
    return Program(list(copies.values()), program_sinks, host, recorder.guards, calls,
                   after, recorder.first_calls, recorder.writes_from, recorder.cleared_first,
                   arg_names, layouts)


def _grad_writes(recorder):
    """{tensor: its owner} of the gradients from before the call that the function
    updated in place (p.grad *= 0.5): each run gives its new values to the tensor that
    is the owner's .grad at that run ("assign_grad"), as a new array as eager updates
    do — not to the tensor that held the gradient when traced. (A graph-ready plan writes
    them into that .grad's own array, as a gradient it accumulates: see static._homes;
    a .grad never holds a plan's constant, see copy_constants_handed_out.)"""
    writes = {}
    for tensor in recorder.assigns:
        feed = recorder.feeds.get(tensor._node)
        if feed is not None and feed.kind == "grad":
            writes[tensor] = feed.source
    return writes


def copy_constants_handed_out(program):
    """A sink storing one of the plan's constants (a folded gradient, a tensor the
    function made), or a view of one, stores a copy, made by each run: a tensor given
    the constant's array could have it written into later (a gradient accumulated in
    place by a graph-ready plan, an optimiser's step), changing what every later run
    hands out. Returns how many copies."""
    from .memory import _view_base

    copies = {}
    for sink in program.sinks:
        node = sink.node
        base = None if node is None else _view_base(node)  # (a view of one too: c.T)
        if base is None or base.op is not CONSTANT:
            continue
        if id(node) not in copies:
            copy = Node(clone, (node,), {}, node.shape, node.dtype, node.device, False,
                        node.site)
            copy.seq = node.seq
            program.nodes.append(copy)
            copies[id(node)] = copy
        sink.node = copies[id(node)]
    return len(copies)


def split_host(host, writes_from):
    """(before, after) the run's kernels: host calls the function made after it wrote into
    a tensor (a scheduler's step after the optimiser's), with no host work after them,
    run once the run's writes are done. Their values feed no kernel of the run, and a
    call that raises (a schedule that ran out) then leaves the step's update in place,
    as in eager mode. Host work before a later scalar or draw stays first: it may set
    what they read (a scheduler's learning rate)."""
    if writes_from is None:
        return host, []
    start = len(host)
    while start > writes_from and host[start - 1][0] == "call":
        start -= 1
    return host[:start], host[start:]


def _walk_trace(roots, start_seq):
    """The trace's nodes behind roots, oldest first; nodes from before the trace are
    where it stops (they enter as leaves)."""
    seen, stack, out = set(), list(roots), []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        out.append(node)
        if node.seq >= start_seq:
            stack.extend(node.inputs)
    out.sort(key=lambda n: n.seq)
    return out


def _copy(node, recorder, arg_index, copies):
    """A node of the program standing for a node of the trace."""
    feed = _feed_of(node, recorder, arg_index)
    if feed is not None:
        op = CONSTANT if feed.kind == "const" else INPUT
        copy = Node(op, (), node.attrs if op is CONSTANT else {}, node.shape, node.dtype,
                    node.device, node.requires_grad, node.site,
                    # a parameter is named through its tensor (viz.scopes.parameter_names)
                    ref=node.ref if feed.kind == "tensor" else None)
        copy.meta = {"feed": feed}
        return copy
    copy = Node(node.op, tuple(copies[i] for i in node.inputs), node.attrs, node.shape,
                node.dtype, node.device, node.requires_grad, node.site)
    if node.meta and "output_index" in node.meta:
        copy.meta = {"output_index": node.meta["output_index"],
                     "group": id(node.meta["siblings"])}
    return copy


def _feed_of(node, recorder, arg_index):
    """The Feed of a leaf of the trace (None for an op node)."""
    if node in arg_index:
        return Feed("arg", arg_index[node])
    if node in recorder.feeds:
        return recorder.feeds[node]
    if not node.op.is_leaf and node.seq >= recorder.start_seq:
        return None
    tensor = recorder.leaves.get(node)
    if tensor is None:
        raise CompileError(f"internal: the trace reads a value of {node!r} it cannot find")
    if node.op is CONSTANT:
        return Feed("const", tensor._data)
    made = recorder.created.get(id(tensor))
    if made is not None:  # the function made it, and only the call held it: as made
        return Feed("const", made[1])
    return Feed("tensor", tensor)


def _host(host, copies, feeds):
    """The recorder's host work, with its nodes replaced by the program's."""
    out = []
    for item in host:
        if item[0] == "call":
            out.append(item)
        elif item[0] == "feed":
            if item[1] in copies:
                out.append(("feed", copies[item[1]]))
            else:  # an unused draw is still drawn: later draws stay those of eager runs
                out.append(("call", feeds[item[1]].source, None))
        else:
            _, compute, nodes, undo = item
            out.append(("scalars", compute,
                        {key: copies[n] for key, n in nodes.items() if n in copies}, undo))
    return out
