"""Exports any graph tool reads: node-link JSON and GraphML (through networkx)."""

import json

import networkx as nx

from ..files import write_text, write_whole


def _plain(value):
    """A value GraphML can hold: numbers, strings and bools as they are; the rest as text."""
    if value is None:
        return ""
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def to_json(graph, path=None):
    """The graph as node-link JSON (networkx's format): its text (a str with a one-line
    repr), written to `path` if given. Nodes carry their attributes (see gpugrad.graph),
    what gg.profile recorded included (stats as {"min", "max", "mean", "norm", "nan",
    "inf", "zeros", "size"}); the graph carries "scopes", {module scope path: class
    name}."""
    data = nx.node_link_data(graph.refresh(), edges="edges")
    text = json.dumps(data, default=_plain, indent=1)
    if path is not None:
        write_text(path, text)  # whole or not at all
    return Text(text, "JSON", path)


class Text(str):
    """A page or document as text, as a str in every way but its repr: one line, so
    that `g.to_html("g.html")` typed at a prompt does not print the whole page."""

    def __new__(cls, text, kind, path=None):
        self = super().__new__(cls, text)
        self.kind, self.path = kind, path
        return self

    def __repr__(self):
        where = f", written to {self.path}" if self.path is not None else ""
        return f"<{self.kind}: {len(self):,} characters{where}>"


def to_graphml(graph, path):
    """Write the graph as GraphML (attributes that are not scalars become strings)."""
    plain = nx.DiGraph()
    for node, data in graph.refresh().nodes(data=True):
        plain.add_node(node, **{k: _plain(v) for k, v in data.items()})
    for a, b, data in graph.nx.edges(data=True):
        plain.add_edge(a, b, **{k: _plain(v) for k, v in data.items()})
    if hasattr(path, "write"):  # an open file, which networkx writes into as it is
        nx.write_graphml(plain, path)
    else:
        write_whole(path, lambda tmp: nx.write_graphml(plain, tmp))  # whole or not at all
    return path
