"""Graph: the recorded computation as a networkx DiGraph of op nodes.

Built on demand from the nodes behind some output tensors (by an iterative walk), so
eager execution never pays for networkx. Node ids are the nodes' creation numbers, so
sorting ids is a topological order. Each networkx node carries: op, qualname, kind
("op" or "input"), attrs, shape, dtype, device, site ("file.py:12"), requires_grad,
is_output, input_index (an argument's position), name (a leaf's name, where the graph
knows one: a parameter's in its module, "MLP.0.weight"; a traced function's argument's,
"x"; else None), scope (the nn.Module calls it was made in, as paths, outermost first:
("MLP", "MLP.0")), bytes (its output), and what gg.profile recorded (None where it
did not): time, backward_time, saved_bytes, kernel_bytes, stats, grad_stats. The graph
itself carries scopes: {path: module class name}. Each edge (input -> consumer)
carries argnums, the argument positions.
"""

import math

import networkx as nx

from .node import format_site, walk


class Graph:
    """A recorded computation: nodes from inputs to outputs, viewable with networkx."""

    def __init__(self, nodes, outputs, inputs=(), calls=None, ordered=False,
                 input_names=()):
        """calls: the nn.Module calls the nodes were made in (see
        gpugrad.viz.scopes.module_calls), where the nodes no longer carry them (a
        compiled program); None: read off the nodes. ordered: `nodes` are in a
        topological order to keep (a compiled program's, whose passes make nodes with
        later numbers); otherwise numbers, which are creation order, give the order.
        input_names: what to call `inputs`, in their order (a traced function's
        parameter names, viz.labels.argument_names; None or missing: unnamed)."""
        from .viz.scopes import module_calls, module_scopes, parameter_names

        by_number = {n.seq: n for n in sorted(nodes, key=lambda n: n.seq)}
        self._nodes = {n.seq: n for n in nodes} if ordered else by_number
        self._ordered = ordered
        self.outputs = [n.seq for n in outputs]
        self.inputs = [n.seq for n in inputs]
        # Inputs made by ops (a subgraph from an intermediate tensor on): the graph's
        # leaves all the same, drawn and listed as its arguments.
        self._cut = {n.seq for n in inputs if not n.op.is_leaf}
        if calls is None:
            calls = module_calls(self._nodes.values())
        self._calls = calls
        # Named now, while the modules the nodes were made in are most likely alive.
        self._scopes, self._scope_classes = module_scopes(by_number, calls)
        self._names = parameter_names(self._nodes, calls)
        # Names live on the graph, not on the nodes or tensors: the same tensor passed
        # as `x` to one trace and as `batch` to another is each in its own graph.
        named = set()
        for seq, name in zip(self.inputs, input_names, strict=False):
            # the function's word for it, over a parameter's name; a tensor passed as two
            # arguments is called as the first, whose position str(g) gives it ("arg0 a")
            if name and seq not in named:
                self._names[seq] = name
                named.add(seq)
        self._nx = None

    @classmethod
    def from_outputs(cls, tensors, inputs=()):
        """The graph of everything recorded that `tensors` were computed from; with
        `inputs` (tensors), back to them only: `Graph.from_outputs([loss], [h])` is the
        computation from h to the loss (h an argument, as a trace's are)."""
        from .ops.registry import node_of

        return cls.between([node_of(t) for t in tensors], [node_of(t) for t in inputs])

    @classmethod
    def between(cls, outputs, inputs=(), input_names=()):
        """The graph from the nodes `inputs` (where given, called `input_names`) to the
        nodes `outputs`."""
        return cls(walk(outputs + inputs, stop=inputs), outputs, inputs,
                   input_names=input_names)

    def subgraph(self, outputs, inputs=()):
        """The part of this graph that computes the nodes `outputs` (ids), from the
        nodes `inputs` (ids) where given: a gg.Graph of its own, for every viewer."""
        missing = [s for s in [*outputs, *inputs] if s not in self._nodes]
        if missing:
            raise KeyError(f"no node {missing[0]} in this graph (its ids: list(graph))")
        outs = [self._nodes[s] for s in outputs]
        ins = [self._nodes[s] for s in inputs]
        kept = {id(n) for n in walk(outs + ins, stop=ins)}
        nodes = [n for n in self._nodes.values() if id(n) in kept]  # in this graph's order
        return Graph(nodes, outs, ins, calls=self._calls, ordered=self._ordered,
                     input_names=[self._names.get(s) for s in inputs])

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
            g.add_node(seq, **node_attributes(node), scope=self._scopes[seq],
                       is_output=seq in outputs, input_index=inputs.get(seq),
                       name=self._names.get(seq))
            if seq in self._cut:
                g.nodes[seq]["kind"] = "input"
        for seq, node in self._nodes.items():
            if seq in self._cut:
                continue  # what it was computed from is outside this graph
            for pos, inp in enumerate(node.inputs):
                if g.has_edge(inp.seq, seq):
                    g.edges[inp.seq, seq]["argnums"] += (pos,)
                else:
                    g.add_edge(inp.seq, seq, argnums=(pos,))
        _place_leaves_in_scopes(g)
        g.graph["scopes"] = dict(self._scope_classes)
        return g

    def refresh(self):
        """Copy onto the networkx view what was recorded on the nodes since it was built
        (a profile or a backward pass run after g.nx was first read); returns it."""
        g = self.nx
        for seq, node in self._nodes.items():
            g.nodes[seq].update(recorded_attributes(node))
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
        """Ids of the op nodes (not leaves, nor inputs), in topological order."""
        return [seq for seq, n in self._nodes.items()
                if not n.op.is_leaf and seq not in self._cut]

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
        """One line per node in topological order, like a jaxpr: %12 is node 12, as g.nx,
        summary() and a profile's critical_path() name it."""
        lines = []
        for seq, node in self._nodes.items():
            spec = f"{_dtype_name(node.dtype)}{list(node.shape)}"
            if node.op.is_leaf or seq in self._cut:
                if seq in self.inputs:  # "arg0 x": its place in a call, its name
                    role = " ".join(filter(None, (f"arg{self.inputs.index(seq)}",
                                                  self._names.get(seq))))
                elif node.op.name == "constant":
                    role = (f"constant {node.attrs['value']!r}" if "value" in node.attrs
                            else "constant")  # an array gg.compile folded
                else:
                    name = self._names.get(seq)
                    role = "input" + (f" {name}" if name else "") + \
                        (" (requires grad)" if node.requires_grad else "")
                lines.append(f"%{seq}: {spec} = {role}")
                continue
            args = ", ".join(f"%{i.seq}" for i in node.inputs)
            attrs = _format_attrs(node.attrs)
            attrs = f" {{{attrs}}}" if attrs else ""
            which = _output_index(node)
            which = "" if which is None else f"[{which}]"
            lines.append(f"%{seq}: {spec} = {node.name}({args}){which}{attrs}"
                         f"  # {node.where()}")
        lines.append("return " + ", ".join(f"%{s}" for s in self.outputs))
        return "\n".join(lines)

    # --- export -----------------------------------------------------------------------------
    def to_dot(self, rankdir="TB", shapes=True, sites=False, **options):
        """Graphviz DOT text (no dependency needed to produce it). Options (keywords, see
        gpugrad.viz.dot.to_dot): passes="forward" | "backward" | "both", dtypes,
        devices, stats, scopes (module clusters), composites (composite ops drawn as a
        cluster of their ops)."""
        from .viz.dot import to_dot

        return to_dot(self, rankdir=rankdir, shapes=shapes, sites=sites, **options)

    def render(self, path, format=None, timeout=600, **dot_options):  # noqa: A002
        """Draw the graph with Graphviz into path (.svg, .png or .pdf), giving it
        `timeout` seconds; dot_options as to_dot's."""
        from .viz import render

        return render(self, path, format=format, timeout=timeout, **dot_options)

    def to_html(self, path=None, title="gpugrad graph", collapse=None):
        """A self-contained HTML viewer (no network): layers, pan and zoom, search, a
        node's details on a click, the backward pass beside the forward, module scopes
        that collapse into one box (collapse=None: collapsed when the graph has more than
        2,000 nodes; True or False to choose). Returns the page's text (its repr one
        line), also written to `path` if given."""
        from .viz import to_html

        return to_html(self, path, title=title, collapse=collapse)

    def _repr_html_(self):
        """Jupyter shows the viewer inline, inside an iframe: the viewer's page styles
        (body, table) and element ids stay in it, so the notebook keeps its layout and
        several graphs in one notebook each work."""
        import html

        return ('<iframe srcdoc="' + html.escape(self.to_html(), quote=True) + '" '
                'style="width: 100%; height: 640px; border: 1px solid #ddd;" '
                'sandbox="allow-scripts"></iframe>')

    def to_json(self, path=None):
        """Node-link JSON (networkx's format), for any graph tool: its text, also written
        to `path` if given."""
        from .viz import to_json

        return to_json(self, path)

    def to_graphml(self, path):
        """GraphML, through networkx."""
        from .viz import to_graphml

        return to_graphml(self, path)

    def summary(self, print_table=True, stats=False, memory=False):
        """Per-op rows (op, shape, dtype, FLOPs, bytes, user line, and what gg.profile
        recorded) and totals (op counts, parameters, FLOPs, bytes of activations, nodes
        with NaN/Inf or zero gradients); printed unless print_table=False, with columns
        of value and gradient statistics (stats=True) and of memory (memory=True)."""
        from .viz import summary

        return summary(self, print_table=print_table, stats=stats, memory=memory)

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


RECORDED = ("time", "backward_time", "saved_bytes", "kernel_bytes", "stats", "grad_stats")


def recorded_attributes(node):
    """What watching modes recorded on a node (gg.profile), None where nothing was."""
    meta = node.meta or {}
    return {key: meta.get(key) for key in RECORDED}


def _place_leaves_in_scopes(g):
    """A parameter, a module's buffer or a constant belongs to the module that reads it:
    the scope its consumers share. Other leaves (data, a trace's arguments) stay outside
    any module."""
    for seq, data in g.nodes(data=True):
        if data["kind"] != "input":
            continue
        if data["input_index"] is not None or not (data["requires_grad"] or data["name"]
                                                   or data["op"] == "constant"):
            data["scope"] = ()
            continue
        common = None
        for consumer in g.successors(seq):
            scope = g.nodes[consumer]["scope"]
            if common is None:
                common = scope
            else:
                n = 0
                while n < min(len(common), len(scope)) and common[n] == scope[n]:
                    n += 1
                common = common[:n]
        data["scope"] = common or ()


def node_attributes(node):
    """The attributes a node carries in the networkx view (plain, printable values)."""
    site = node.site
    return {
        "op": node.name,
        "qualname": node.op.name,
        "kind": "input" if node.op.is_leaf else "op",
        "attrs": {k: _format_value(v) for k, v in (node.attrs or {}).items()},
        # the attributes a drawing labels the node with (None: all), where an op says
        "label_attrs": getattr(node.op, "label_attrs", None),
        "shape": tuple(node.shape),
        "dtype": _dtype_name(node.dtype),
        "device": str(node.device),
        "site": format_site(site),
        "file": site[0] if site else None,
        "line": site[1] if site else None,
        "requires_grad": bool(node.requires_grad),
        "output_index": _output_index(node),
        "bytes": math.prod(node.shape) * getattr(node.dtype, "itemsize", 0),
        **recorded_attributes(node),
    }
