"""Graph.to_dot: Graphviz DOT text of a recorded graph.

The forward pass (the default), the backward pass derived from it (viz.backward: a
"grad of <op>" node per node that requires grad, gradients flowing along the forward
edges reversed) or both side by side, each gradient node tied to its forward node by a
dashed edge. Labels can carry dtypes, devices and the statistics gg.profile(stats=True)
recorded (NaN/Inf nodes filled red, zero gradients grey and dashed). nn.Module scopes
become nested clusters, and composite ops a cluster of the ops they are made of.
Clusters are emitted with an explicit stack: no recursion, whatever the depth.

Graphviz's layout cost grows with the length of the edges it routes (each rank an edge
crosses is a virtual node to place) and with the edge labels (each one a virtual node
too). So a constant made of a Python number is drawn beside each op that reads it,
not once for the whole graph; an argument position is written at the arrowhead (a
label that takes no part in the layout), and only where it means something; edges from
those copies weigh less than the others (EDGE_WEIGHT), and large graphs get layout
limits (LAYOUT_LIMITS) that trade a few edge crossings for seconds instead of minutes.
"""

from .backward import gradient_edges, gradient_nodes
from .labels import constant_value, title
from .stats import all_zero, describe, has_nonfinite

PASSES = ("forward", "backward", "both")

_OP = 'shape=box, style="rounded,filled", fillcolor="#fef3c7"'
_PARAM = 'shape=ellipse, style=filled, fillcolor="#dbeafe"'
_LEAF = 'shape=ellipse, style=filled, fillcolor="#f3f4f6"'
_GRAD = 'shape=box, style="rounded,filled", fillcolor="#bbf7d0", color="#16a34a"'
_GRAD_LEAF = 'shape=ellipse, style=filled, fillcolor="#bbf7d0", color="#16a34a"'
_NONFINITE = 'style="rounded,filled", fillcolor="#fecaca", color="#dc2626", penwidth=2'
_ZERO = 'style="rounded,filled,dashed", fillcolor="#e5e7eb", color="#6b7280"'
_TIE = 'style=dashed, arrowhead=none, color="#94a3b8", constraint=false'
# A constant drawn beside its reader: small, no fill, its value as its label.
_CONSTANT = ('shape=box, style="rounded,dashed", color="#9ca3af", fontsize=8, width=0.3, '
             'height=0.2, margin="0.04,0.02"')
_POSITION = 'labelfontsize=8, labelfontcolor="#6b7280", labeldistance=1.2'

# Ops whose result does not depend on the order of their two inputs: their edges carry
# no argument position (a + b is b + a). Every other op with several inputs has them.
SYMMETRIC = frozenset(f"gpugrad::{name}" for name in (
    "add", "mul", "maximum", "minimum", "eq", "ne", "logical_and", "logical_or",
    "logaddexp"))

# Graphviz's network simplex and crossing minimisation are superlinear; past this many
# statements (nodes) their iterations are capped, and ranks are assigned by the newer
# ranking, whose start does not grow with the square of the nodes (measured with
# Graphviz 2.43: a 60-step RNN over one shared weight, 123 nodes, took four minutes
# to lay out without the caps, 0.3 s with; a chain of 12,500 nodes 33 s without
# newrank, 1.5 s with).
LARGE = 100
LAYOUT_LIMITS = "nslimit=1; nslimit1=1; mclimit=0.1; newrank=true;"
# Edges weigh EDGE_WEIGHT, those from a constant's copy 1: the flow of values runs
# straight and the copies stand aside. It also gives Graphviz's x-coordinate pass a
# tight start: with all edges alike, it spent 20 s on that chain before any iteration.
EDGE_WEIGHT = 10


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
    feeds = _Feeds(g, alias, "", statements, lambda seq: place(g.nodes[seq]))
    expanded = set()
    if passes != "backward":
        for seq, data in g.nodes(data=True):
            if feeds.beside_readers(seq):
                continue  # drawn beside each op that reads it, by feeds.source
            inner = _inner_graph(graph.node(seq)) if composites else None
            if inner is not None:
                expanded.add(seq)
                _add_composite(seq, inner, g, feeds, style, place(data), statements, edges)
            else:
                statements.append((place(data), _forward_node(f"n{seq}", data, style,
                                                              passes == "forward")))
        for a, b, data in g.edges(data=True):
            if b not in expanded:
                edges.append(feeds.edge(a, b, f"n{b}", data["argnums"]))
    if passes != "forward":
        _add_backward(g, style, place, alias, passes == "both", statements, edges)
    labels = {path: path if path == cls else f"{path} ({cls})"
              for path, cls in g.graph.get("scopes", {}).items()}
    for seq in expanded:
        labels[f"composite_{seq}"] = g.nodes[seq]["op"]
    lines = ["digraph gpugrad {", f"  rankdir={rankdir};",
             '  node [fontname="Helvetica", fontsize=10];', f"  edge [weight={EDGE_WEIGHT}];"]
    if len(statements) > LARGE:
        lines.append(f"  {LAYOUT_LIMITS}")
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
    label = title(data)  # a parameter by its name, a trace's argument by its position
    shown = data.get("label_attrs")  # None: every attribute
    if data["kind"] == "op" and data["attrs"]:
        label += "\n" + ", ".join(f"{k}={v}" for k, v in data["attrs"].items()
                                  if v != "None" and (shown is None or k in shown))
    spec = style.spec(data)
    if spec:
        label += f"\n{spec}"
    if style.sites and data["site"] != "?":
        label += f"\n{data['site']}"
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
        text += "\n" + describe(data["stats"])
    grad = data["grad_stats"]
    if with_gradient and grad is not None:
        text += "\ngrad: " + ("all zero" if all_zero(grad) else describe(grad))
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
        label = f"grad of {title(data)}"  # a parameter: its name
        spec = style.spec(data)
        if spec:
            label += f"\n{spec}"
        look = _GRAD_LEAF if data["kind"] == "input" else _GRAD
        grad = data["grad_stats"]
        if style.stats:
            if grad is not None:
                label += "\n" + ("all zero" if all_zero(grad) else describe(grad))
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


def _add_composite(seq, inner, g, feeds, style, scope, statements, edges):
    """A composite op's ops, in a cluster of their own inside the op's scope; the op's
    inputs feed them, and its consumers read the cluster's output."""
    argument = {}  # argnum -> the DOT node of the composite's input there
    for inp in g.predecessors(seq):
        for argnum in g.edges[inp, seq]["argnums"]:
            argument[argnum] = feeds.source(inp, seq)
    fed = {inner_seq: argument[i] for i, inner_seq in enumerate(inner.inputs)}
    cluster = tuple(scope) + (f"composite_{seq}",)
    inner_g = inner.nx
    # Inner ids are made unique per composite: two of them may share a cached constant.
    ids = {inner_seq: fed.get(inner_seq, f"c{seq}_{inner_seq}") for inner_seq in inner_g}
    inner_feeds = _Feeds(inner_g, ids, f"c{seq}_", statements, lambda _: cluster)
    for inner_seq, inner_data in inner_g.nodes(data=True):
        if inner_seq not in fed and not inner_feeds.beside_readers(inner_seq):
            statements.append((cluster, _forward_node(ids[inner_seq], inner_data, style,
                                                      False)))
    for a, b, edge in inner_g.edges(data=True):
        edges.append(inner_feeds.edge(a, b, ids[b], edge["argnums"]))
    feeds.alias(seq, ids[inner.outputs[0]])


# --- edges -----------------------------------------------------------------------------------
class _Feeds:
    """The DOT node each edge of the networkx view `g` starts from: `ids[seq]`, or, for
    a constant made of a Python number, a copy of it beside the op reading it. One
    shared node would send an edge from the top of the graph to every reader (a chain
    of `y * 1.0001` has one constant read at every step), and those long edges made
    Graphviz take minutes, or all the memory, to lay out a few thousand ops."""

    def __init__(self, g, ids, prefix, statements, scope_of):
        self.g, self.ids, self.prefix = g, ids, prefix
        self.statements, self.scope_of = statements, scope_of  # scope_of(reader seq)
        self.copies = {}  # (constant, reader) -> DOT id

    def beside_readers(self, seq):
        """Whether node `seq` is drawn beside each reader instead of once."""
        data = self.g.nodes[seq]
        return (constant_value(data) is not None and not data["is_output"]
                and self.g.out_degree(seq) > 0)

    def source(self, seq, reader):
        """The DOT id that stands for node `seq` where `reader` reads it."""
        if not self.beside_readers(seq):
            return self.ids[seq]
        dot_id = self.copies.get((seq, reader))
        if dot_id is None:
            dot_id = self.copies[seq, reader] = f"{self.prefix}k{seq}_{reader}"
            data = self.g.nodes[seq]
            tooltip = f"constant {data['dtype']}{list(data['shape'])}"
            self.statements.append((self.scope_of(reader), (
                f"  {dot_id} [label={_quote(constant_value(data))}, "
                f"tooltip={_quote(tooltip)}, {_CONSTANT}];")))
        return dot_id

    def edge(self, seq, reader, target, argnums):
        """The edge statement from node `seq` into `reader`, drawn as `target`."""
        return _argument_edge(self.source(seq, reader), target, self.g, reader, argnums,
                              light=self.beside_readers(seq))

    def alias(self, seq, dot_id):
        """From now on, node `seq` is drawn as `dot_id` (a composite's output op)."""
        self.ids[seq] = dot_id


def _argument_edge(source, target, g, reader, argnums, light=False):
    """The edge from `source` into node `reader` of `g` (drawn as `target`), marked with
    the argument positions it fills where they tell something: at an op whose inputs'
    order matters (not add or mul), or where one value fills several arguments (x * x).
    light: weight 1 (from a constant's copy) instead of EDGE_WEIGHT."""
    attributes = ["weight=1"] if light else []
    inputs = sum(len(e) for _, _, e in g.in_edges(reader, data="argnums"))
    if len(argnums) > 1 or (inputs > 1 and g.nodes[reader]["qualname"] not in SYMMETRIC):
        # headlabel, not label: an edge label is a node to lay out, a head label is not.
        position = ",".join(str(i) for i in argnums)
        attributes += [f"headlabel={_quote(position)}", _POSITION]
    return f"  {source} -> {target}" + (f" [{', '.join(attributes)}];" if attributes
                                          else ";")


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
    """A DOT string of `text`, whose newlines become line breaks: backslashes and quotes
    escaped, so that a user's text (an attribute, a file path) shows as it is."""
    escaped = str(text).replace("\\", "\\\\").replace('"', '\\"')
    lines = escaped.replace("\r\n", "\n").replace("\r", "\n")
    return '"' + lines.replace("\n", "\\n") + '"'
