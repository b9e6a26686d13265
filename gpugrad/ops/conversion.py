"""Ops that change what a tensor is made of or where it lives: cast, to_device, and
detach (inside gg.compile's trace)."""

from .. import dtypes
from ..backends import transfer
from .registry import define


def _cast_infer(x, dtype):
    return x.shape, dtypes.as_dtype(dtype)


def _cast_strict(xp, x, dtype):
    # array-api-strict wants its own dtype objects, which it names like NumPy does.
    return xp.astype(x, getattr(xp, dtype.name))


# The engine casts gradients back to each input's dtype: the VJP passes g through.
cast = define("gpugrad::cast", infer=_cast_infer,
              forward=lambda xp, x, dtype: xp.astype(x, dtype),
              kernels={"array_api_strict": _cast_strict}, vjp=lambda ctx, g: (g,))


def _to_device_infer(x, device, source):
    return x.shape, x.dtype


to_device = define(
    "gpugrad::to_device", infer=_to_device_infer,
    forward=lambda xp, x, device, source: transfer(x, source, device),
    vjp=lambda ctx, g: (g.to(ctx.attrs["source"]),), crosses_devices=True,
    doc="The one explicit crossing between devices (Tensor.to); differentiable.")


# Eager detach needs no op (a new leaf on the same array). Inside gg.compile's trace it
# is this op, so the plan computes it from each run's values instead of reading the
# array of the traced call; it has no gradient, so the graph is cut all the same.
detach = define("gpugrad::detach", infer=lambda x: (x.shape, x.dtype), returns_view=True,
                forward=lambda xp, x: x, doc="The values of x, cut from the graph.")


# Tensor.clone: a copy of the array (astype with copy=True: NumPy, CuPy and the array API
# standard all take it), through which the gradient passes unchanged.
clone = define("gpugrad::clone", infer=lambda x: (x.shape, x.dtype),
               forward=lambda xp, x: xp.astype(x, x.dtype, copy=True),
               vjp=lambda ctx, g: (g,), doc="A copy of x's values (Tensor.clone).")
