"""Passes over a Program, each small and usable alone; each returns how much it changed.

- dead_code: drop the nodes no sink needs (the trace records everything the function
  ran, e.g. a forward value only a discarded branch read);
- common_subexpressions: one node for the same op on the same inputs with the same
  attributes (a backward often recomputes what the forward had, e.g. `x.T` twice);
- fold_constants: ops whose inputs are all constants run once, at compile time;
- share_softmax: a cross-entropy and its backward on the same logits become one op
  computing the softmax once (when the backward's gradient is known before the forward);
- bias_activation (patterns.py, CuPy programs): a Linear layer's bias and activation
  become one kernel of kernels/bias_act.cu;
- fuse_elementwise (fusion.py): chains of elementwise ops become one op each.
The memory plan (memory.py) comes last: it decides buffers for the final node list.
"""

from ..node import walk
from ..ops.loss import cross_entropy_with_grad
from ..ops.registry import CONSTANT
from .capture import Feed
from .fusion import fuse_elementwise
from .patterns import FUSED_KERNEL_BACKENDS, bias_activation


def dead_code(program):
    """Remove nodes that no sink reads, directly or not. Returns how many went."""
    live = {id(n) for n in walk(program.sink_nodes())}
    for item in program.host:
        if item[0] == "feed":
            live.add(id(item[1]))
    before = len(program.nodes)
    program.nodes = [n for n in program.nodes if id(n) in live]
    return before - len(program.nodes)


def common_subexpressions(program):
    """Merge nodes computing the same op on the same inputs with the same attributes.
    Returns how many nodes were merged away."""
    first = {}  # key -> the node kept
    replaced = {}  # id(node) -> the node that replaces it
    kept = []
    for node in program.nodes:
        if not node.op.is_leaf:
            node.inputs = tuple(replaced.get(id(i), i) for i in node.inputs)
        key = _key(node)
        if key is not None and key in first:
            replaced[id(node)] = first[key]
            continue
        if key is not None:
            first[key] = node
        kept.append(node)
    program.nodes = kept
    _redirect(program, replaced)
    return len(replaced)


def _key(node):
    """What makes two nodes the same value, or None where they must stay apart."""
    if node.op.is_leaf:
        feed = node.meta["feed"]
        if feed.kind == "const":  # equal Python constants of one dtype and device
            value = node.attrs.get("value")
            return None if value is None else ("const", repr(value), node.dtype, node.device)
        if feed.kind in ("tensor", "arg", "state", "grad"):  # the same source, read twice
            source = feed.source if feed.kind in ("arg", "grad") else id(feed.source)
            return ("leaf", feed.kind, source, feed.key, node.shape, node.dtype)
        return None  # random draws and scalars are each their own value
    attrs = _frozen(node.attrs)
    if attrs is None or getattr(node.op, "effects", False):
        return None
    index = node.meta.get("output_index") if node.meta else None
    return (node.op, tuple(id(i) for i in node.inputs), attrs, index)


def _frozen(value):
    """A hashable stand-in for attrs (None where some value is not comparable)."""
    if isinstance(value, dict):
        items = [(k, _frozen(v)) for k, v in sorted(value.items())]
        return None if any(v is None and value[k] is not None for k, v in items) \
            else ("dict", tuple(items))
    if isinstance(value, (list, tuple)):
        items = tuple(_frozen(v) for v in value)
        return None if any(i is None and v is not None for i, v in zip(items, value,
                                                                      strict=True)) \
            else ("seq", items)
    if value is None or isinstance(value, (bool, int, float, str, slice, type(Ellipsis))):
        return (type(value).__name__, repr(value))
    try:
        hash(value)
    except TypeError:
        return None
    return ("obj", value)


def fold_constants(program):
    """Run, at compile time, every op whose inputs are all constants; the node becomes
    a constant leaf holding the result. Returns how many ops were folded."""
    folded = 0
    for node in program.nodes:
        if node.op.is_leaf or not node.inputs or node.meta or getattr(node.op, "effects",
                                                                       False):
            continue
        if not all(i.op is CONSTANT for i in node.inputs):
            continue
        backend = node.device.backend
        kernel = node.op.kernel_for(backend.name)
        arrays = [i.meta["feed"].source for i in node.inputs]
        value = kernel(backend.xp, *arrays, **node.attrs)
        node.op, node.inputs, node.attrs = CONSTANT, (), {}
        node.meta = {"feed": Feed("const", value)}
        folded += 1
    if folded:
        dead_code(program)
    return folded


def share_softmax(program):
    """Pair each cross_entropy with the cross_entropy_backward of the same logits,
    targets and attributes, when the backward's incoming gradient is computed before
    the forward (a constant, for a mean or sum loss): both become the two outputs of
    one cross_entropy_with_grad, called where the forward was. Returns how many pairs."""
    ops = program.op_nodes()
    position = {id(n): i for i, n in enumerate(ops)}
    forwards = {}
    for node in ops:
        if node.op.name == "gpugrad::cross_entropy" and not node.meta:
            forwards.setdefault(_loss_key(node.inputs, node.attrs), node)
    paired = 0
    for node in ops:
        if node.op.name != "gpugrad::cross_entropy_backward" or node.meta:
            continue
        g, logits, target = node.inputs
        forward = forwards.get(_loss_key((logits, target), node.attrs))
        if forward is None or (not g.op.is_leaf and position[id(g)] > position[id(forward)]):
            continue  # none, or the gradient depends on what runs after the forward
        del forwards[_loss_key((logits, target), node.attrs)]
        group = {"group": id(forward)}
        for index, member in enumerate((forward, node)):
            member.op, member.inputs = cross_entropy_with_grad, (g, logits, target)
            member.meta = dict(group, output_index=index)
        paired += 1
    return paired


def _loss_key(inputs, attrs):
    """The logits, targets and attributes that make a cross-entropy."""
    return id(inputs[0]), id(inputs[1]), _frozen(attrs)


def _redirect(program, replaced):
    for sink in program.sinks:
        if sink.node is not None:
            sink.node = replaced.get(id(sink.node), sink.node)
        if sink.home is not None and id(sink.home) in replaced:
            sink.home = replaced[id(sink.home)]


def run_all(program):
    """The passes in order; returns {pass name: how much it changed}."""
    stats = {"dead_code": dead_code(program),
             "fold_constants": fold_constants(program),
             "common_subexpressions": common_subexpressions(program),
             "share_softmax": share_softmax(program)}
    backend = program.backend()
    if backend is not None and backend.name in FUSED_KERNEL_BACKENDS:  # kernels/*.cu
        stats["bias_activation"] = bias_activation(program)
    stats["fuse_elementwise"] = fuse_elementwise(program)
    return stats

