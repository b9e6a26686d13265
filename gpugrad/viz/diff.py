"""gg.viz.diff: how two graphs differ, op by op."""

from collections import Counter


def _signature(graph, seq):
    node = graph.node(seq)
    return (node.name, tuple(node.shape), getattr(node.dtype, "name", str(node.dtype)))


def diff(g1, g2):
    """{"same": bool, "only_in_first": [...], "only_in_second": [...], "op_counts": {op:
    (count in g1, count in g2)}} — nodes compared by (op, shape, dtype), leaves included."""
    first = Counter(_signature(g1, n) for n in g1)
    second = Counter(_signature(g2, n) for n in g2)
    ops = sorted(set(g1.op_counts()) | set(g2.op_counts()))
    counts = {op: (g1.op_counts().get(op, 0), g2.op_counts().get(op, 0)) for op in ops}
    only_first = sorted((first - second).elements())
    only_second = sorted((second - first).elements())
    edges_same = g1.nx.number_of_edges() == g2.nx.number_of_edges()
    return {"same": not only_first and not only_second and edges_same,
            "only_in_first": only_first, "only_in_second": only_second,
            "op_counts": counts}
