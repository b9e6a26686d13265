"""Ops that change what a tensor is made of or where it lives: cast and to_device."""

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
