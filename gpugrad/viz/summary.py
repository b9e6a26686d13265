"""Graph summaries: a table per op, the leaves the ops start from (by name where the
graph knows one: "MLP.0.weight", a traced function's "x"), and totals — op counts,
parameters, FLOPs, bytes; and, where gg.profile recorded them, times, memory, value and
gradient statistics."""

from .labels import title
from .memory import output_bytes, saved_bytes
from .stats import all_zero, has_nonfinite


def _size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


# Ops that read more elements than they write, one operation per element read: a sum of
# a million values to one is a million additions, not one.
REDUCTIONS = frozenset(f"gpugrad::{name}" for name in ("sum", "mean", "max", "min",
                                                        "cross_entropy"))


def flops(node):
    """Floating-point operations of one op, estimated from shapes (2mnk for products,
    one per input element for reductions, one per output element for the rest, per step
    of a fused op)."""
    name = node.op.name
    if name in ("gpugrad::matmul", "gpugrad::linear"):
        inner = node.inputs[0].shape[-1] if node.inputs[0].shape else 1
        return 2 * _size(node.shape) * inner
    if name == "gpugrad::fused":
        return _size(node.shape) * len(node.attrs["steps"])
    if name in REDUCTIONS and node.inputs:
        return max(_size(node.shape), _size(node.inputs[0].shape))
    return _size(node.shape)


def _recorded(node):
    """What gg.profile left on a node (None where it did not), and the bytes it keeps
    for its backward (counted where the backward has not freed them yet)."""
    meta = node.meta or {}
    kept = meta.get("saved_bytes")
    if kept is None:
        kept = saved_bytes(node)
    return {"time": meta.get("time"), "backward_time": meta.get("backward_time"),
            "saved_bytes": kept, "kernel_bytes": meta.get("kernel_bytes"),
            "stats": meta.get("stats"), "grad_stats": meta.get("grad_stats")}


class Summary(dict):
    """summary()'s result: {"totals": {...}, "rows": [...], "leaves": [...]}. Its str is
    the table (print it, search it); its repr is one line, so that an interactive
    session, which has just printed the table, does not echo the rows."""

    columns = {}  # the table's optional columns: stats=, memory=

    def __str__(self):
        return format_summary(self, **self.columns)

    def __repr__(self):
        totals = self["totals"]
        return (f"<graph summary: {totals['ops']} ops, {totals['parameters']:,} parameters; "
                "keys 'totals', 'rows', 'leaves'>")


def summary(graph, print_table=False, stats=False, memory=False):
    """A dict of totals, per-op rows and the leaves (what each is called in drawings);
    with print_table, also printed as a table, with columns of value and gradient
    statistics (stats) and of memory (memory)."""
    rows, leaves, params, activations, param_bytes, input_bytes = [], [], 0, 0, 0, 0
    nonfinite, zero_grad = [], []
    for seq in graph:
        node = graph.node(seq)
        nbytes = output_bytes(node)
        meta = node.meta or {}
        if has_nonfinite(meta.get("stats")) or has_nonfinite(meta.get("grad_stats")):
            nonfinite.append(seq)
        if all_zero(meta.get("grad_stats")):
            zero_grad.append(seq)
        data = graph.nx.nodes[seq]
        if data["kind"] == "input":  # (a subgraph's inputs too)
            leaves.append(_leaf_row(seq, data, nbytes))
            if node.requires_grad:
                params += _size(node.shape)
                param_bytes += nbytes
            else:
                input_bytes += nbytes
            continue
        activations += nbytes
        scope = data["scope"]
        rows.append({"id": seq, "op": node.name, "shape": tuple(node.shape),
                     "dtype": getattr(node.dtype, "name", str(node.dtype)),
                     "flops": flops(node), "bytes": nbytes, "site": node.where(),
                     "scope": scope[-1] if scope else "", **_recorded(node)})
    # A training step holds, at its peak (the start of backward), the inputs, the
    # parameters, every activation the forward produced, and gradients as large as the
    # parameters plus the largest activation's; known before anything runs.
    largest = max((r["bytes"] for r in rows), default=0)
    totals = {"ops": len(rows), "op_counts": graph.op_counts(), "parameters": params,
              "flops": sum(r["flops"] for r in rows), "activation_bytes": activations,
              "estimated_peak_bytes": input_bytes + 2 * param_bytes + activations + largest,
              "saved_bytes": sum(r["saved_bytes"] or 0 for r in rows),
              "nonfinite": nonfinite, "zero_grad": zero_grad}
    result = Summary(totals=totals, rows=rows, leaves=leaves)
    result.columns = {"stats": stats, "memory": memory}
    if print_table:
        print(result)
    return result


def _leaf_row(seq, data, nbytes):
    """A leaf as the summary lists it: called as drawings call it (a parameter's or an
    argument's name, arg0, a constant's value, else "input"), and what it is."""
    if data["input_index"] is not None:
        role = f"argument {data['input_index']}"
    elif data["requires_grad"]:
        role = "requires grad"
    else:
        role = ""
    return {"id": seq, "name": data["name"], "title": title(data), "shape": data["shape"],
            "dtype": data["dtype"], "bytes": nbytes, "role": role}


def _number(value):
    return "-" if value is None else f"{value:.3g}"


def _count(value):
    return "-" if value is None else f"{value:,}"


def _stats_cells(r):
    value, grad = r["stats"] or {}, r["grad_stats"] or {}
    flag = ("NaN/Inf" if has_nonfinite(r["grad_stats"]) else
            "zero" if all_zero(r["grad_stats"]) else "")
    cells = [_number(value.get(k)) for k in ("min", "max", "mean", "norm")]
    cells += [_count(value.get("nan")), _count(value.get("inf")),
              _number(grad.get("norm")), flag]
    return "".join(f"{c:>10}" for c in cells[:6]) + f"{cells[6]:>11}{cells[7]:>9}"


def _leaf_lines(leaves):
    """The leaves under the ops, in the ops' columns; the name column widens to the
    longest name rather than cut one ("Net.encoder.0.weight.exp_avg" stays whole)."""
    if not leaves:
        return []
    width = max(24, *(len(r["title"]) for r in leaves))
    lines = [f"{'id':>6}  {'leaf':<{width}} {'shape':<18} {'dtype':<8} {'':>12} "
             f"{'bytes':>10}"]
    for r in leaves:
        lines.append(f"{r['id']:>6}  {r['title']:<{width}} {str(r['shape']):<18} "
                     f"{r['dtype']:<8} {'':>12} {r['bytes']:>10,}  {r['role']}".rstrip())
    return lines


def format_summary(result, stats=False, memory=False):
    head = f"{'id':>6}  {'op':<24} {'shape':<18} {'dtype':<8} {'FLOPs':>12} {'bytes':>10}"
    if memory:
        head += f"{'saved':>12}{'allocated':>12}"
    if stats:
        head += "".join(f"{c:>10}" for c in ("min", "max", "mean", "norm", "NaN", "Inf"))
        head += f"{'grad norm':>11}{'grad':>9}"
    lines = [head + "  site"]
    for r in result["rows"]:
        line = (f"{r['id']:>6}  {r['op']:<24} {str(r['shape']):<18} {r['dtype']:<8} "
                f"{r['flops']:>12,} {r['bytes']:>10,}")
        if memory:
            line += f"{_count(r['saved_bytes']):>12}{_count(r['kernel_bytes']):>12}"
        if stats:
            line += _stats_cells(r)
        lines.append(f"{line}  {r['site']}")
    lines.extend(_leaf_lines(result.get("leaves", ())))
    t = result["totals"]
    lines.append(f"{t['ops']} ops, {t['parameters']:,} parameters, {t['flops']:,} FLOPs, "
                 f"{t['activation_bytes']:,} bytes of activations, estimated peak of a "
                 f"training step {t['estimated_peak_bytes']:,} bytes")
    if memory:
        lines.append(f"{t['saved_bytes']:,} bytes saved for the backward pass")
    if stats:
        lines.append(f"{len(t['nonfinite'])} node(s) with NaN/Inf {t['nonfinite'][:20]}, "
                     f"{len(t['zero_grad'])} with a zero gradient {t['zero_grad'][:20]}")
    return "\n".join(lines)
