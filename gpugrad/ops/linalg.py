"""Matrix multiplication, with NumPy's rules for 1-D operands and batch broadcasting."""

from ..errors import ShapeError
from .infer import broadcast_shapes
from .registry import define


def _matmul_infer(a, b):
    sa, sb = tuple(a.shape), tuple(b.shape)
    if not sa or not sb:
        raise ShapeError(f"matmul needs operands of at least 1 dimension, got {sa} and {sb}")
    a2 = (1,) + sa if len(sa) == 1 else sa
    b2 = sb + (1,) if len(sb) == 1 else sb
    if a2[-1] != b2[-2]:
        raise ShapeError(f"shapes {sa} and {sb} are not aligned: {a2[-1]} (last dim of the "
                         f"first) != {b2[-2]} ({'only' if len(sb) == 1 else 'second-to-last'} "
                         "dim of the second)")
    try:
        batch = broadcast_shapes(a2[:-2], b2[:-2])
    except ShapeError:
        raise ShapeError(f"batch dimensions of {sa} and {sb} cannot be broadcast") from None
    out = batch + (a2[-2], b2[-1])
    if len(sa) == 1:
        out = out[:-2] + out[-1:]
    if len(sb) == 1:
        out = out[:-1]
    return out, a.dtype


def _swap(t):
    axes = list(range(len(t.shape)))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return t.transpose(tuple(axes))


def _matmul_vjp(ctx, g):
    a, b = ctx.inputs  # only those the requested gradients need are saved
    a_ndim, b_ndim = (len(spec.shape) for spec in ctx.input_specs)
    need_a, need_b = ctx.needs_input_grad
    # Work in the 2-D view NumPy uses for 1-D operands, then drop the added axis.
    g2 = g
    if a_ndim == 1:
        g2 = g2.reshape(g2.shape[:-1] + (1,) + g2.shape[-1:]) if b_ndim > 1 \
            else g2.reshape(g2.shape + (1,))
    if b_ndim == 1:
        g2 = g2.reshape(g2.shape + (1,))
    ga = gb = None
    if need_a:
        b2 = b.reshape(b.shape + (1,)) if b_ndim == 1 else b
        ga = g2 @ _swap(b2)
        if a_ndim == 1:
            ga = ga.reshape(ga.shape[:-2] + ga.shape[-1:])
    if need_b:
        a2 = a.reshape((1,) + a.shape) if a_ndim == 1 else a
        gb = _swap(a2) @ g2
        if b_ndim == 1:
            gb = gb.reshape(gb.shape[:-1])
    return ga, gb


matmul = define("gpugrad::matmul", infer=_matmul_infer,
                forward=lambda xp, a, b: xp.matmul(a, b), vjp=_matmul_vjp,
                saves={0: (1,), 1: (0,)},
                promote="common")
