"""Graph: the recorded computation as a networkx DiGraph of op nodes.

Built on demand from the nodes behind some output tensors (by an iterative walk), so
eager execution never pays for networkx. Node ids are the nodes' creation numbers, so
sorting ids is a topological order. Each networkx node carries: op, qualname, kind
("op" or "input"), attrs, shape, dtype, device, site ("file.py:12"), requires_grad,
is_output; each edge (input -> consumer) carries argnums, the argument positions.
"""

import networkx as nx

from .node import format_site, walk


class Graph:
    """A recorded computation: nodes from inputs to outputs, viewable with networkx."""

    def __init__(self, nodes, outputs, inputs=()):
        self._nodes = {n.seq: n for n in sorted(nodes, key=lambda n: n.seq)}
        self.outputs = [n.seq for n in outputs]
        self.inputs = [n.seq for n in inputs]
        self._nx = None

    @classmethod
    def from_outputs(cls, tensors, inputs=()):
        """The graph of everything recorded that `tensors` were computed from."""
        from .ops.registry import node_of

        outs = [node_of(t) for t in tensors]
        ins = [node_of(t) for t in inputs]
        return cls(walk(outs + ins), outs, ins)

    # --- networkx ---------------------------------------------------------------------------
    @property
    def nx(self):
        """The networkx.DiGraph (built once, on first access)."""
        if self._nx is None:
            self._nx = self._build()
        return self._nx

    def _build(self):
        g = nx.DiGraph()
        outputs = set(self.outputs)
        inputs = {seq: i for i, seq in enumerate(self.inputs)}
        for seq, node in self._nodes.items():
            g.add_node(seq, **node_attributes(node), is_output=seq in outputs,
                       input_index=inputs.get(seq))
        for seq, node in self._nodes.items():
            for pos, inp in enumerate(node.inputs):
                if g.has_edge(inp.seq, seq):
                    g.edges[inp.seq, seq]["argnums"] += (pos,)
                else:
                    g.add_edge(inp.seq, seq, argnums=(pos,))
        return g

    # --- queries ----------------------------------------------------------------------------
    def __len__(self):
        return len(self._nodes)

    def __iter__(self):
        """Node ids in topological order (inputs before the ops that use them)."""
        return iter(self._nodes)

    def node(self, node_id):
        """The recorded Node behind an id."""
        return self._nodes[node_id]

    def op_nodes(self):
        """Ids of the op nodes (not leaves), in topological order."""
        return [seq for seq, n in self._nodes.items() if not n.op.is_leaf]

    def op_counts(self):
        """{op name: how many times it appears}."""
        counts = {}
        for seq in self.op_nodes():
            name = self._nodes[seq].name
            counts[name] = counts.get(name, 0) + 1
        return counts

    def __repr__(self):
        return (f"<gg.Graph: {len(self.op_nodes())} ops, {len(self) - len(self.op_nodes())} "
                f"leaves, {len(self.outputs)} output(s)>")

    def __str__(self):
        """One line per node in topological order, like a jaxpr (%0, %1, ... number the
        nodes of this graph in that order)."""
        local = {seq: i for i, seq in enumerate(self._nodes)}
        lines = []
        for seq, node in self._nodes.items():
            spec = f"{_dtype_name(node.dtype)}{list(node.shape)}"
            if node.op.is_leaf:
                if seq in self.inputs:
                    role = f"arg{self.inputs.index(seq)}"
                elif node.op.name == "constant":
                    role = f"constant {node.attrs['value']!r}"
                else:
                    role = "input" + (" (requires grad)" if node.requires_grad else "")
                lines.append(f"%{local[seq]}: {spec} = {role}")
                continue
            args = ", ".join(f"%{local[i.seq]}" for i in node.inputs)
            attrs = _format_attrs(node.attrs)
            attrs = f" {{{attrs}}}" if attrs else ""
            which = _output_index(node)
            which = "" if which is None else f"[{which}]"
            lines.append(f"%{local[seq]}: {spec} = {node.name}({args}){which}{attrs}"
                         f"  # {node.where()}")
        lines.append("return " + ", ".join(f"%{local[s]}" for s in self.outputs))
        return "\n".join(lines)

    # --- export -----------------------------------------------------------------------------
    def to_dot(self, rankdir="TB", shapes=True, sites=False):
        """Graphviz DOT text (no dependency needed to produce it)."""
        return to_dot(self, rankdir=rankdir, shapes=shapes, sites=sites)

    def render(self, path, format=None, **dot_options):  # noqa: A002
        """Draw the graph with Graphviz into path (.svg, .png or .pdf)."""
        from .viz import render

        return render(self, path, format=format, **dot_options)

    def to_html(self, path=None, title="gpugrad graph"):
        """A self-contained HTML viewer (no network): layers, pan and zoom, search, and
        a node's details on a click."""
        from .viz import to_html

        return to_html(self, path, title=title)

    def _repr_html_(self):
        """Jupyter shows the viewer inline."""
        return self.to_html()

    def to_json(self, path=None):
        """Node-link JSON (networkx's format), for any graph tool."""
        from .viz import to_json

        return to_json(self, path)

    def to_graphml(self, path):
        """GraphML, through networkx."""
        from .viz import to_graphml

        return to_graphml(self, path)

    def summary(self, print_table=True):
        """Per-op rows (op, shape, dtype, FLOPs, bytes, user line) and totals (op counts,
        parameters, FLOPs, bytes of activations); printed unless print_table=False."""
        from .viz import summary

        return summary(self, print_table=print_table)

    def _repr_svg_(self):
        """Jupyter shows the graph inline when Graphviz is installed."""
        import os
        import tempfile

        from .viz import RenderError, render

        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "graph.svg")
            try:
                render(self, path)
            except RenderError:
                return None
            with open(path) as f:
                return f.read()


def _dtype_name(dtype):
    return getattr(dtype, "name", str(dtype))


def _format_value(value):
    if hasattr(value, "itemsize") and hasattr(value, "kind"):  # a dtype (it has .shape too)
        return value.name
    if hasattr(value, "shape") and not isinstance(value, (int, float)):
        return f"array{list(value.shape)}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_format_value(v) for v in value) + ("," if len(value) == 1
                                                                   else "") + ")"
    if isinstance(value, slice):
        parts = ["" if p is None else str(p) for p in (value.start, value.stop, value.step)]
        return ":".join(parts[:2] if value.step is None else parts)
    if value is Ellipsis:
        return "..."
    return str(value)


def _format_attrs(attrs):
    return ", ".join(f"{k}={_format_value(v)}" for k, v in (attrs or {}).items()
                     if v is not None)


def _output_index(node):
    """Which output of a several-output op a node stands for (None for one output)."""
    return node.meta.get("output_index") if node.meta else None


def node_attributes(node):
    """The attributes a node carries in the networkx view (plain, printable values)."""
    site = node.site
    return {
        "op": node.name,
        "qualname": node.op.name,
        "kind": "input" if node.op.is_leaf else "op",
        "attrs": {k: _format_value(v) for k, v in (node.attrs or {}).items()},
        "shape": tuple(node.shape),
        "dtype": _dtype_name(node.dtype),
        "device": str(node.device),
        "site": format_site(site),
        "file": site[0] if site else None,
        "line": site[1] if site else None,
        "requires_grad": bool(node.requires_grad),
        "output_index": _output_index(node),
    }


def _quote(text):
    # Labels carry DOT's own "\n" line breaks, so only quotes are escaped.
    return '"' + str(text).replace('"', '\\"') + '"'


def to_dot(graph, rankdir="TB", shapes=True, sites=False):
    g = graph.nx
    lines = ["digraph gpugrad {", f"  rankdir={rankdir};",
             '  node [fontname="Helvetica", fontsize=10];']
    for seq, data in g.nodes(data=True):
        label = data["op"]
        if data["kind"] == "op" and data["attrs"]:
            label += "\\n" + ", ".join(f"{k}={v}" for k, v in data["attrs"].items()
                                       if v != "None")
        if shapes:
            label += f"\\n{data['dtype']}{list(data['shape'])}"
        if sites and data["site"] != "?":
            label += f"\\n{data['site']}"
        if data["kind"] == "input":
            style = 'shape=ellipse, style=filled, fillcolor="#dbeafe"' if \
                data["requires_grad"] else 'shape=ellipse, style=filled, fillcolor="#f3f4f6"'
        else:
            style = 'shape=box, style="rounded,filled", fillcolor="#fef3c7"'
        if data["is_output"]:
            style += ", penwidth=2"
        lines.append(f"  n{seq} [label={_quote(label)}, {style}];")
    for a, b, data in g.edges(data=True):
        label = ",".join(str(i) for i in data["argnums"])
        lines.append(f"  n{a} -> n{b} [label={_quote(label)}, fontsize=8];")
    lines.append("}")
    return "\n".join(lines) + "\n"
