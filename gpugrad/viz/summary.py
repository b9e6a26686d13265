"""Graph summaries: a table per op and totals — op counts, parameters, FLOPs, bytes."""


def _size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def flops(node):
    """Floating-point operations of one op, estimated from shapes (2mnk for products,
    one per output element for the rest)."""
    name = node.op.name
    if name in ("gpugrad::matmul", "gpugrad::linear"):
        inner = node.inputs[0].shape[-1] if node.inputs[0].shape else 1
        return 2 * _size(node.shape) * inner
    return _size(node.shape)


def summary(graph, print_table=False):
    """A dict of totals and per-op rows; with print_table, also printed as a table."""
    rows, params, activations, param_bytes, input_bytes = [], 0, 0, 0, 0
    for seq in graph:
        node = graph.node(seq)
        nbytes = _size(node.shape) * getattr(node.dtype, "itemsize", 0)
        if node.op.is_leaf:
            if node.requires_grad:
                params += _size(node.shape)
                param_bytes += nbytes
            else:
                input_bytes += nbytes
            continue
        activations += nbytes
        rows.append({"id": seq, "op": node.name, "shape": tuple(node.shape),
                     "dtype": getattr(node.dtype, "name", str(node.dtype)),
                     "flops": flops(node), "bytes": nbytes, "site": node.where()})
    # A training step holds, at its peak (the start of backward), the inputs, the
    # parameters, every activation the forward produced, and gradients as large as the
    # parameters plus the largest activation's; known before anything runs.
    largest = max((r["bytes"] for r in rows), default=0)
    totals = {"ops": len(rows), "op_counts": graph.op_counts(), "parameters": params,
              "flops": sum(r["flops"] for r in rows), "activation_bytes": activations,
              "estimated_peak_bytes": input_bytes + 2 * param_bytes + activations + largest}
    result = {"totals": totals, "rows": rows}
    if print_table:
        print(format_summary(result))
    return result


def format_summary(result):
    lines = [f"{'id':>6}  {'op':<24} {'shape':<18} {'dtype':<8} {'FLOPs':>12} {'bytes':>10}"
             "  site"]
    for r in result["rows"]:
        lines.append(f"{r['id']:>6}  {r['op']:<24} {str(r['shape']):<18} {r['dtype']:<8} "
                     f"{r['flops']:>12,} {r['bytes']:>10,}  {r['site']}")
    t = result["totals"]
    lines.append(f"{t['ops']} ops, {t['parameters']:,} parameters, {t['flops']:,} FLOPs, "
                 f"{t['activation_bytes']:,} bytes of activations, estimated peak of a "
                 f"training step {t['estimated_peak_bytes']:,} bytes")
    return "\n".join(lines)
