"""Matrix multiplication, with NumPy's rules for 1-D operands and batch broadcasting.

matmul takes two optional flags, transpose_a and transpose_b (swap the last two axes of
that operand first): its own VJP needs products with a transposed operand, and folding
the transpose into the product saves a separate op per gradient.
"""

from ..errors import ShapeError
from .infer import broadcast_shapes
from .registry import NO_ATTRS, apply, define


def _transposed(shape, flag, which):
    if not flag:
        return shape
    if len(shape) < 2:
        raise ShapeError(f"transpose_{which} needs at least 2 dimensions, got {shape}")
    return shape[:-2] + (shape[-1], shape[-2])


def _matmul_infer(a, b, transpose_a=False, transpose_b=False):
    sa, sb = a.shape, b.shape
    if len(sa) == 2 and len(sb) == 2:  # the common case, kept short
        m, k = (sa[1], sa[0]) if transpose_a else sa
        k2, n = (sb[1], sb[0]) if transpose_b else sb
        if k == k2:
            return (m, n), a.dtype
    sa = _transposed(tuple(a.shape), transpose_a, "a")
    sb = _transposed(tuple(b.shape), transpose_b, "b")
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


def _matmul_forward(xp, a, b, transpose_a=False, transpose_b=False):
    if transpose_a:
        a = xp.matrix_transpose(a)
    if transpose_b:
        b = xp.matrix_transpose(b)
    return xp.matmul(a, b)


def _mm(a, b, ta, tb):
    """a @ b with either operand transposed, as one recorded op."""
    attrs = {"transpose_a": True, "transpose_b": tb} if ta else \
        ({"transpose_b": True} if tb else NO_ATTRS)
    return apply(matmul, (a, b), attrs)


def _matmul_vjp(ctx, g):
    # C = op(A) @ op(B), op a transpose where flagged:
    #   dA = g @ op(B)^T  (transposed back if A was),  dB = op(A)^T @ g  (likewise).
    a, b = ctx.inputs  # only those the requested gradients need are saved
    ta = ctx.attrs.get("transpose_a", False)
    tb = ctx.attrs.get("transpose_b", False)
    spec_a, spec_b = ctx.input_specs
    a_ndim, b_ndim = len(spec_a.shape), len(spec_b.shape)
    need_a, need_b = ctx.needs_input_grad
    # 1-D operands (never transposed) work in the 2-D view NumPy uses, then drop the axis.
    g2 = g
    if a_ndim == 1:
        g2 = g2.reshape(g2.shape[:-1] + (1,) + g2.shape[-1:]) if b_ndim > 1 \
            else g2.reshape(g2.shape + (1,))
    if b_ndim == 1:
        g2 = g2.reshape(g2.shape + (1,))
    ga = gb = None
    if need_a:
        b2 = b.reshape(b.shape + (1,)) if b_ndim == 1 else b
        ga = _mm(b2, g2, tb, True) if ta else _mm(g2, b2, False, not tb)
        if a_ndim == 1:
            ga = ga.reshape(ga.shape[:-2] + ga.shape[-1:])
    if need_b:
        a2 = a.reshape((1,) + a.shape) if a_ndim == 1 else a
        gb = _mm(g2, a2, True, ta) if tb else _mm(a2, g2, not ta, False)
        if b_ndim == 1:
            gb = gb.reshape(gb.shape[:-1])
    return ga, gb


def _matmul_ndarray(xp, a, b, transpose_a=False, transpose_b=False):
    # NumPy and CuPy: the .mT attribute is a C-level view, the namespace's
    # matrix_transpose a Python function (a microsecond per call, which shows on small
    # matrices).
    return xp.matmul(a.mT if transpose_a else a, b.mT if transpose_b else b)


matmul = define("gpugrad::matmul", infer=_matmul_infer, forward=_matmul_forward,
                vjp=_matmul_vjp, saves={0: (1,), 1: (0,)}, promote="common",
                kernels={"numpy": _matmul_ndarray, "cupy": _matmul_ndarray})


# --- linear: x @ W.T + b as one op (a Linear layer's forward: one node, not two) -------
def _linear_infer(x, weight, bias=None):
    sx, sw = tuple(x.shape), tuple(weight.shape)
    if len(sx) < 2 or len(sw) != 2 or sx[-1] != sw[1]:
        raise ShapeError(f"input {sx} does not fit a weight of shape {sw}: expected "
                         f"(..., {sw[1] if len(sw) == 2 else 'in'}) and (out, in)")
    if bias is not None and tuple(bias.shape) != (sw[0],):
        raise ShapeError(f"bias of shape {tuple(bias.shape)} for {sw[0]} outputs")
    return sx[:-1] + (sw[0],), x.dtype


def _linear_forward(xp, x, weight, bias=None):
    y = xp.matmul(x, xp.matrix_transpose(weight))
    return y if bias is None else y + bias


def _linear_vjp(ctx, g):
    x, weight = ctx.inputs[0], ctx.inputs[1]
    needs = ctx.needs_input_grad
    gx = _mm(g, weight, False, False) if needs[0] else None
    gw = _mm(g, x, True, False) if needs[1] else None  # batch dims are summed by the engine
    grads = (gx, gw)
    # the bias gradient is g itself: the engine sums it back to the bias's shape
    return grads + ((g if needs[2] else None),) if len(ctx.inputs) == 3 else grads


def _linear_ndarray(xp, x, weight, bias=None):
    y = xp.matmul(x, weight.mT)
    if bias is not None:
        y += bias  # y is new: the bias is added in place, without a second temporary
    return y


linear = define("gpugrad::linear", infer=_linear_infer, forward=_linear_forward,
                vjp=_linear_vjp, saves={0: (1,), 1: (0,), 2: ()}, promote="common",
                kernels={"numpy": _linear_ndarray, "cupy": _linear_ndarray})
