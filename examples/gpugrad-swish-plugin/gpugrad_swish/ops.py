"""swish::swish — registered when gpugrad loads this plugin (or on import)."""

import pathlib

import gpugrad as gg

KERNEL_SOURCE = pathlib.Path(__file__).parent / "kernels" / "swish.cu"


@gg.custom_op("swish::swish")
def swish(x, *, beta=1.0):
    """x * sigmoid(beta x), for arrays of any backend."""
    xp = gg.array_namespace(x)
    return x / (1 + xp.exp(-beta * x))


@swish.register_shape
def _(x, *, beta=1.0):
    return gg.Spec(x.shape, x.dtype, x.device)


@swish.register_vjp
def _(ctx, grad):
    (x,) = ctx.inputs
    beta = ctx.attrs["beta"]
    s = (x * beta).sigmoid()
    return (grad * (s + x * beta * s * (1 - s)),)


_module = None


def _cuda_functions():
    global _module
    if _module is None:  # compiled once, at first use
        import cupy

        _module = cupy.RawModule(code=KERNEL_SOURCE.read_text())
    return _module


@swish.register_kernel("cuda")
def _(x, *, beta=1.0):
    import cupy

    name = {cupy.dtype("float32"): "swish_f32", cupy.dtype("float64"): "swish_f64"}.get(
        x.dtype)
    if name is None:  # other dtypes: the generic forward
        return x / (1 + cupy.exp(-beta * x))
    x = cupy.ascontiguousarray(x)
    y = cupy.empty_like(x)
    threads = 256
    blocks = (x.size + threads - 1) // threads
    _cuda_functions().get_function(name)((blocks,), (threads,),
                                         (x, y, x.dtype.type(beta), cupy.int64(x.size)))
    return y


@gg.custom_op("swish::polar", outputs=2)
def polar(x, y):
    """(r, theta) of points (x, y): an op with two outputs."""
    xp = gg.array_namespace(x)
    return xp.sqrt(x * x + y * y), xp.atan2(y, x)


@polar.register_shape
def _(x, y):
    return gg.Spec(x.shape, x.dtype, x.device), gg.Spec(x.shape, x.dtype, x.device)


@polar.register_vjp
def _(ctx, grads):
    # dr = (x dx + y dy) / r;  dtheta = (x dy - y dx) / r^2
    x, y = ctx.inputs
    r, _ = ctx.output
    g_r, g_theta = grads
    return (g_r * x / r - g_theta * y / (r * r), g_r * y / r + g_theta * x / (r * r))
