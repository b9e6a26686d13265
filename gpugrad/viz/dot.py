"""Graph.to_dot: Graphviz DOT text of a recorded graph.

The forward pass (the default), the backward pass derived from it (viz.backward: a
"grad of <op>" node per node that requires grad, gradients flowing along the forward
edges reversed) or both side by side, each gradient node tied to its forward node by a
dashed edge. Labels can carry dtypes, devices and the statistics gg.profile(stats=True)
recorded (NaN/Inf nodes filled red, zero gradients grey and dashed). nn.Module scopes
become nested clusters, and composite ops a cluster of the ops they are made of.
Clusters are emitted with an explicit stack: no recursion, whatever the depth.
"""

from .backward import gradient_edges, gradient_nodes
from .stats import all_zero, describe, has_nonfinite

PASSES = ("forward", "backward", "both")

_OP = 'shape=box, style="rounded,filled", fillcolor="#fef3c7"'
_PARAM = 'shape=ellipse, style=filled, fillcolor="#dbeafe"'
_LEAF = 'shape=ellipse, style=filled, fillcolor="#f3f4f6"'
_GRAD = 'shape=box, style="rounded,filled", fillcolor="#e0e7ff"'
_GRAD_LEAF = 'shape=ellipse, style=filled, fillcolor="#e0e7ff"'
_NONFINITE = 'style="rounded,filled", fillcolor="#fecaca", color="#dc2626", penwidth=2'
_ZERO = 'style="rounded,filled,dashed", fillcolor="#e5e7eb", color="#6b7280"'
_TIE = 'style=dashed, arrowhead=none, color="#94a3b8", constraint=false'


def to_dot(graph, rankdir="TB", shapes=True, sites=False, *, passes="forward", dtypes=None,
           devices=False, stats=False, scopes=False, composites=False):
    """DOT text of `graph`.

    passes: "forward", "backward" (gradients flowing from the outputs to the leaves) or
    "both" (each "grad of <op>" node tied to its op by a dashed edge).
    shapes / dtypes / devices: what the second line of a label says ("float32[5, 8] on
    cpu"); dtypes=None shows dtypes with the shapes. sites: the user's file:line.
    stats: the value (and gradient) statistics recorded by gg.profile(stats=True).
    scopes: one cluster per nn.Module call scope, nested, labelled "MLP.0 (Linear)".
    composites: each composite op (gg.composite_op) as a cluster of its own ops.
    """
    if passes not in PASSES:
        raise ValueError(f"to_dot: passes must be one of {', '.join(map(repr, PASSES))}, "
                         f"got {passes!r}")
    g = graph.refresh()
    style = _LabelStyle(shapes, dtypes if dtypes is not None else shapes, devices, sites,
                        stats)
    place = (lambda data: data["scope"]) if scopes else (lambda data: ())
    statements, edges = [], []
    alias = {seq: f"n{seq}" for seq in g}  # the DOT node standing for each node's output
    expanded = set()
    if passes != "backward":
        for seq, data in g.nodes(data=True):
            inner = _inner_graph(graph.node(seq)) if composites else None
            if inner is not None:
                expanded.add(seq)
                _add_composite(seq, data, inner, g, alias, style, place(data), statements,
                               edges)
            else:
                statements.append((place(data), _forward_node(f"n{seq}", data, style,
                                                              passes == "forward")))
        for a, b, data in g.edges(data=True):
            if b not in expanded:
                label = ",".join(str(i) for i in data["argnums"])
                edges.append(f"  {alias[a]} -> n{b} [label={_quote(label)}, fontsize=8];")
    if passes != "forward":
        _add_backward(g, style, place, alias, passes == "both", statements, edges)
    labels = {path: path if path == cls else f"{path} ({cls})"
              for path, cls in g.graph.get("scopes", {}).items()}
    for seq in expanded:
        labels[f"composite_{seq}"] = g.nodes[seq]["op"]
    lines = ["digraph gpugrad {", f"  rankdir={rankdir};",
             '  node [fontname="Helvetica", fontsize=10];']
    lines.extend(_clustered(statements, labels))
    lines.extend(edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


class _LabelStyle:
    """What labels show."""

    def __init__(self, shapes, dtypes, devices, sites, stats):
        self.shapes, self.dtypes, self.devices = shapes, dtypes, devices
        self.sites, self.stats = sites, stats

    def spec(self, data):
        text = data["dtype"] if self.dtypes else ""
        if self.shapes:
            text += str(list(data["shape"]))
        if self.devices:
            text += (" on " if text else "") + data["device"]
        return text


def _forward_node(dot_id, data, style, with_gradient):
    """The statement of a forward node; with_gradient: its gradient's statistics too
    (when no backward node shows them)."""
    label = data.get("name") or data["op"]  # a parameter: its name in its module
    shown = data.get("label_attrs")  # None: every attribute
    if data["kind"] == "op" and data["attrs"]:
        label += "\\n" + ", ".join(f"{k}={v}" for k, v in data["attrs"].items()
                                   if v != "None" and (shown is None or k in shown))
    spec = style.spec(data)
    if spec:
        label += f"\\n{spec}"
    if style.sites and data["site"] != "?":
        label += f"\\n{data['site']}"
    if data["kind"] == "input":
        look = _PARAM if data["requires_grad"] else _LEAF
    else:
        look = _OP
    if style.stats:
        label += _stats_lines(data, with_gradient)
        look = _highlight(look, data["stats"], data["grad_stats"] if with_gradient else None)
    if data["is_output"]:
        look += ", penwidth=2"
    return f"  {dot_id} [label={_quote(label)}, {look}];"


def _stats_lines(data, with_gradient):
    text = ""
    if data["stats"] is not None:
        text += "\\n" + describe(data["stats"])
    grad = data["grad_stats"]
    if with_gradient and grad is not None:
        text += "\\ngrad: " + ("all zero" if all_zero(grad) else describe(grad))
    return text


def _highlight(look, value, grad):
    """Red for a NaN or an Inf (in the value or the gradient shown), grey and dashed for
    a gradient of zeros."""
    if has_nonfinite(value) or has_nonfinite(grad):
        return f"{look}, {_NONFINITE}"
    if all_zero(grad):
        return f"{look}, {_ZERO}"
    return look


def _add_backward(g, style, place, alias, tie, statements, edges):
    """A "grad of <op>" node per node that requires grad, gradient edges, and (tie)
    dashed edges from each forward node to its gradient node."""
    for seq in gradient_nodes(g):
        data = g.nodes[seq]
        label = f"grad of {data.get('name') or data['op']}"  # a parameter: its name
        spec = style.spec(data)
        if spec:
            label += f"\\n{spec}"
        look = _GRAD_LEAF if data["kind"] == "input" else _GRAD
        grad = data["grad_stats"]
        if style.stats:
            if grad is not None:
                label += "\\n" + ("all zero" if all_zero(grad) else describe(grad))
            look = _highlight(look, None, grad)
        statements.append((place(data), f"  b{seq} [label={_quote(label)}, {look}];"))
        if tie:
            edges.append(f"  {alias[seq]} -> b{seq} [{_TIE}];")
    for consumer, inp in gradient_edges(g):
        # Beside the forward pass, gradient edges are drawn pointing back (dir=back) so
        # that both passes rank top to bottom alike; alone, they run from the outputs.
        edges.append(f"  b{inp} -> b{consumer} [dir=back];" if tie else
                     f"  b{consumer} -> b{inp};")


# --- composite ops ---------------------------------------------------------------------------
def _inner_graph(node):
    """The graph of the ops a composite op is made of, traced on its saved inputs (or,
    once the backward freed them, on ones of the recorded shapes); None for other ops,
    or where the function cannot be traced again."""
    from ..ops.custom import CompositeOp

    op = node.op
    if not isinstance(op, CompositeOp):
        return None
    from ..creation import ones
    from ..tensor import Tensor

    saved = node.saved
    if isinstance(saved, (tuple, list)) and len(saved) == len(node.inputs) and all(
            isinstance(t, Tensor) for t in saved):
        inputs = [t.detach() for t in saved]
    else:
        inputs = [ones(*i.shape, dtype=i.dtype, device=i.device) for i in node.inputs]
    try:
        return op.trace(*inputs, **(node.attrs or {}))
    except Exception:  # a function that needs its real inputs: drawn as one node
        return None


def _add_composite(seq, data, inner, g, alias, style, scope, statements, edges):
    """A composite op's ops, in a cluster of their own inside the op's scope; the op's
    inputs feed them, and its consumers read the cluster's output."""
    argument = {}  # argnum -> the DOT node of the composite's input there
    for inp in g.predecessors(seq):
        for argnum in g.edges[inp, seq]["argnums"]:
            argument[argnum] = alias[inp]
    feeds = {inner_seq: argument[i] for i, inner_seq in enumerate(inner.inputs)}
    cluster = tuple(scope) + (f"composite_{seq}",)
    inner_g = inner.nx
    # Inner ids are made unique per composite: two of them may share a cached constant.
    ids = {inner_seq: feeds.get(inner_seq, f"c{seq}_{inner_seq}") for inner_seq in inner_g}
    for inner_seq, inner_data in inner_g.nodes(data=True):
        if inner_seq not in feeds:
            statements.append((cluster, _forward_node(ids[inner_seq], inner_data, style,
                                                      False)))
    for a, b, edge in inner_g.edges(data=True):
        label = ",".join(str(i) for i in edge["argnums"])
        edges.append(f"  {ids[a]} -> {ids[b]} [label={_quote(label)}, fontsize=8];")
    alias[seq] = ids[inner.outputs[0]]


# --- clusters --------------------------------------------------------------------------------
def _clustered(statements, labels):
    """The statements inside nested `subgraph "cluster_<path>"` blocks, each statement
    in the innermost cluster of its path (a tuple of cluster names, outermost first)."""
    by_path = {}
    for path, text in statements:
        by_path.setdefault(tuple(path), []).append(text)
    paths = set(by_path)
    for path in list(paths):
        paths.update(path[:i] for i in range(len(path)))
    out, open_ = [], []
    for path in sorted(paths):
        while tuple(open_) != path[:len(open_)]:
            open_.pop()
            out.append("  " * (len(open_) + 1) + "}")
        for name in path[len(open_):]:
            indent = "  " * (len(open_) + 1)
            open_.append(name)
            out.append(f"{indent}subgraph {_quote('cluster_' + name)} {{")
            out.append(f"{indent}  label={_quote(labels.get(name, name))}; "
                       'style="rounded,dashed"; color="#64748b"; fontname="Helvetica"; '
                       "fontsize=10;")
        indent = "  " * len(open_)
        out.extend(indent + text for text in by_path.get(path, ()))
    while open_:
        open_.pop()
        out.append("  " * (len(open_) + 1) + "}")
    return out


def _quote(text):
    # Labels carry DOT's own "\n" line breaks, so only quotes are escaped.
    return '"' + str(text).replace('"', '\\"') + '"'
