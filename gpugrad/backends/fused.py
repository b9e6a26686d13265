"""Fused GPU kernels for what dominates MLP training, each beside its generic reference.

Three CUDA sources in the repository's `kernels/` folder, compiled by CuPy at run time:

| kernels/         | fused step                          | functions here                         |
|------------------|-------------------------------------|----------------------------------------|
| bias_act.cu      | y = act(z + b) and its backward     | bias_act_forward, bias_act_backward    |
| softmax_xent.cu  | softmax + cross-entropy, both ways  | softmax_xent_forward/_backward         |
| optim.cu         | Adam/AdamW and SGD(-momentum) steps | adam_update, sgd_update                |

Each step comes as three functions with one signature:

- `<name>_reference`: the generic kernel, written against the array namespace `xp`, so it
  runs on NumPy, CuPy and array-api-strict arrays. It computes what gpugrad's ops and
  optimisers compute, operation for operation, and is the definition the fused kernel is
  tested against.
- `<name>_cupy`: the fused CUDA kernel; CuPy arrays of float32 or float64 only.
- `<name>`: the dispatcher. It takes the fused kernel when the arrays are CuPy arrays of one
  float dtype (contiguous where updated in place) and the kernel compiles; otherwise the
  reference. Callers use this one.

These are plain array-level functions, independent of the op registry and of Tensors:
the ops, the optimisers and the compiled-plan executor call them on their backend arrays.
`KERNELS` lists them for tests and tools.

Locating and caching the sources: in a checkout or an editable install the sources are
the repository's `kernels/` folder, next to the `gpugrad/` package. A wheel installs them
as data files into `<prefix>/share/gpugrad/kernels` (pyproject.toml's
`[tool.setuptools.data-files]`; the sdist carries them too), found through `sysconfig`.
Each source is compiled once per process, on first use, by `cupy.RawModule` with NVRTC
(both its float32 and float64 kernels in one module); CuPy loads the module on each GPU
that uses it and keeps the compiled binary in its on-disk kernel cache, so later
processes skip NVRTC.
"""

import math
import pathlib
import sys
import sysconfig
import threading
import warnings
from typing import Callable, NamedTuple

import numpy as np

# Activation codes shared with kernels/bias_act.cu (GG_IDENTITY, GG_RELU, ...).
ACTIVATIONS = {"identity": 0, "relu": 1, "tanh": 2, "sigmoid": 3}
REDUCTIONS = ("none", "mean", "sum")
SOURCES = ("bias_act.cu", "softmax_xent.cu", "optim.cu")

_SUFFIXES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
_THREADS = 256  # elementwise kernels: a block size that suits every GPU since Volta
_MAX_BLOCKS = 1 << 16  # grid-stride loops cover the rest; more blocks only cost launches


# --- where the sources are ------------------------------------------------------------------
def _source_dir_candidates():
    # A checkout or an editable install: kernels/ beside the gpugrad/ package.
    yield pathlib.Path(__file__).resolve().parents[2] / "kernels"
    # An installed wheel: data files under the environment's prefix, or the user's for
    # `pip install --user`.
    for scheme in (sysconfig.get_default_scheme(), sysconfig.get_preferred_scheme("user")):
        yield pathlib.Path(sysconfig.get_path("data", scheme)) / "share" / "gpugrad" / "kernels"
    yield pathlib.Path(sys.prefix) / "share" / "gpugrad" / "kernels"


def kernel_dir():
    """The folder holding the CUDA sources (all of SOURCES); FileNotFoundError if none does.

    A folder counts only if it has every source, so an unrelated `kernels/` folder that
    happens to sit beside an installed gpugrad is never taken for ours."""
    tried = []
    for candidate in _source_dir_candidates():
        if all((candidate / name).is_file() for name in SOURCES):
            return candidate
        tried.append(str(candidate))
    raise FileNotFoundError("gpugrad's CUDA sources (" + ", ".join(SOURCES) + ") are in none "
                            "of: " + "; ".join(tried))


def kernel_source(name):
    """The path of one source, e.g. kernel_source("optim.cu")."""
    if name not in SOURCES:
        raise ValueError(f"unknown kernel source {name!r}; expected one of {SOURCES}")
    return kernel_dir() / name


# --- compiling once: modules and kernels, cached per process -----------------------------------
_lock = threading.Lock()
_modules = {}  # source name -> compiled cupy.RawModule
_functions = {}  # (source name, kernel name) -> cupy.RawKernel
_compiles = {}  # source name -> how many times it was compiled (1 once cached)
_failures = {}  # source name -> the exception that stopped it compiling


def load_module(source):
    """The compiled cupy.RawModule of one source (e.g. "optim.cu"): compiled with NVRTC at
    the first call, the same object at every later call."""
    module = _modules.get(source)
    if module is not None:
        return module
    with _lock:  # two threads asking at once compile once
        module = _modules.get(source)
        if module is None:
            import cupy

            module = cupy.RawModule(code=kernel_source(source).read_text())
            module.compile()  # now, not at the first launch, so that errors surface here
            _compiles[source] = _compiles.get(source, 0) + 1
            _modules[source] = module
    return module


def compile_count(source):
    """How many times `source` has been compiled in this process (0 or 1)."""
    return _compiles.get(source, 0)


def clear_cache():
    """Forget the compiled modules and failures (tests, or after replacing a source)."""
    with _lock:
        _modules.clear()
        _functions.clear()
        _compiles.clear()
        _failures.clear()


def _kernel(source, name, dtype):
    """The RawKernel `name` + its dtype suffix (e.g. adam_update_f32) from `source`."""
    key = (source, f"{name}_{_SUFFIXES[np.dtype(dtype)]}")
    function = _functions.get(key)
    if function is None:
        function = _functions[key] = load_module(source).get_function(key[1])
    return function


def _launch(source, name, dtype, blocks, threads, args):
    """Run kernel `name` for `dtype` on the GPU holding args[0] (the first array)."""
    function = _kernel(source, name, dtype)
    with args[0].device:
        function((blocks,), (threads,), args)


def _loads(source):
    """Whether `source` compiles here; a failure is reported once, then remembered."""
    if source in _modules:
        return True
    if source in _failures:
        return False
    try:
        load_module(source)
        return True
    except Exception as exc:  # no NVRTC, a source that fails to compile, no sources
        _failures[source] = exc
        warnings.warn(f"gpugrad's fused kernels in {source} are unavailable "
                      f"({type(exc).__name__}: {exc}); using the generic kernels",
                      RuntimeWarning, stacklevel=3)
        return False


def _blocks(n):
    return min(-(-n // _THREADS), _MAX_BLOCKS)


def _row_threads(classes):
    # One block per row: a multiple of 32 (full warps for the shuffles in the reduction),
    # no wider than the row, 256 at most.
    return min(max(32, -(-classes // 32) * 32), 256)


# --- shared helpers ---------------------------------------------------------------------------
def _namespace(x):
    from ..spec import array_namespace

    return array_namespace(x)


def _is_cupy(x):
    return type(x).__module__.split(".")[0] == "cupy"


def _cupy():
    import cupy

    return cupy


def _fusable(source, *arrays, contiguous=()):
    """Whether the fused kernel of `source` may run on `arrays` (None entries ignored): all
    CuPy, all one dtype of float32/float64, the arrays in `contiguous` C-contiguous (those
    updated in place), and the source compiles."""
    present = [a for a in arrays if a is not None]
    if not all(_is_cupy(a) for a in present):
        return False
    dtype = present[0].dtype
    if dtype not in _SUFFIXES or any(a.dtype != dtype for a in present):
        return False
    if not all(a.flags.c_contiguous for a in contiguous if a is not None):
        return False
    return _loads(source)


def _into(out, result):
    """`result`, written into `out` when one is given (by item assignment, which every
    namespace supports, the array API standard's included)."""
    if out is None:
        return result
    out[...] = result
    return out


def _check_out(name, out, shape, dtype):
    if out is None:
        return
    if tuple(out.shape) != tuple(shape) or out.dtype != dtype:
        raise ValueError(f"{name}: out has shape {tuple(out.shape)} and dtype {out.dtype}, "
                         f"expected {tuple(shape)} and {dtype}")


def _contiguous_out(name, out, like):
    """The array a fused kernel writes: `out` (C-contiguous, as the kernel indexes it flat)
    or a new one."""
    cp = _cupy()
    if out is None:
        return cp.empty(like.shape, dtype=like.dtype)
    _check_out(name, out, like.shape, like.dtype)
    if not out.flags.c_contiguous:
        raise ValueError(f"{name}: out must be C-contiguous for the fused kernel")
    return out


# === bias + activation ==========================================================================
def _activation_code(name, activation):
    if activation not in ACTIVATIONS:
        raise ValueError(f"{name}: activation must be one of {tuple(ACTIVATIONS)}, "
                         f"got {activation!r}")
    return ACTIVATIONS[activation]


def _check_bias(z, bias):
    if len(z.shape) < 1:
        raise ValueError("bias_act_forward: z must have at least one dimension (..., M)")
    if bias is not None and tuple(bias.shape) != (z.shape[-1],):
        raise ValueError(f"bias_act_forward: a bias of shape {tuple(bias.shape)} for z of "
                         f"shape {tuple(z.shape)}; expected ({z.shape[-1]},)")


def _sigmoid(xp, x):
    # gpugrad's sigmoid op: exp(-logaddexp(0, -x)) never overflows and keeps tiny results.
    return xp.exp(-xp.logaddexp(0.0, -x))


_ACTIVATE = {
    "identity": lambda xp, x: x,
    "relu": lambda xp, x: xp.maximum(x, 0),
    "tanh": lambda xp, x: xp.tanh(x),
    "sigmoid": _sigmoid,
}

# Local derivative times the upstream gradient g, from the forward's output y: gpugrad's
# relu_backward, tanh_backward and sigmoid_backward ops.
_ACTIVATION_GRAD = {
    "identity": lambda xp, g, y: g,
    "relu": lambda xp, g, y: xp.where(y > 0, g, 0),
    "tanh": lambda xp, g, y: g * (1 - y * y),
    "sigmoid": lambda xp, g, y: g * y * (1 - y),
}


def bias_act_forward_reference(z, bias=None, activation="relu", *, out=None):
    """y = act(z + bias): a Linear layer's output after its matmul, then its activation.

    z: (..., M) float array (the matmul x @ W.T); bias: (M,) or None; activation: one of
    "identity", "relu", "tanh", "sigmoid" (gpugrad's ops' formulas). Returns y, shaped like
    z: a new array, or `out` (same shape and dtype; it may be z itself) written in place.
    """
    _activation_code("bias_act_forward", activation)
    _check_bias(z, bias)
    xp = _namespace(z)
    x = z + bias if bias is not None else z
    y = _ACTIVATE[activation](xp, x)
    if y is z and out is None:  # identity without bias: still a new array, as documented
        y = xp.asarray(z, copy=True)
    return _into(out, y)


def bias_act_forward_cupy(z, bias=None, activation="relu", *, out=None):
    """bias_act_forward_reference as one CUDA kernel (kernels/bias_act.cu); CuPy arrays of
    one dtype, float32 or float64. Non-contiguous z or bias are copied first; `out`, if
    given, must be C-contiguous."""
    code = _activation_code("bias_act_forward", activation)
    _check_bias(z, bias)
    cp = _cupy()
    z = cp.ascontiguousarray(z)
    bias_c = cp.ascontiguousarray(bias) if bias is not None else z  # z: never read
    y = _contiguous_out("bias_act_forward", out, z)
    n = z.size
    if n:
        _launch("bias_act.cu", "bias_act_forward", z.dtype, _blocks(n), _THREADS,
                (z, bias_c, y, np.int64(n), np.int64(z.shape[-1]),
                 np.int32(bias is not None), np.int32(code)))
    return y


def bias_act_forward(z, bias=None, activation="relu", *, out=None):
    """y = act(z + bias), fused on CuPy, else the reference; see
    bias_act_forward_reference for shapes and semantics."""
    if _fusable("bias_act.cu", z, bias, out, contiguous=(out,)):
        return bias_act_forward_cupy(z, bias, activation, out=out)
    return bias_act_forward_reference(z, bias, activation, out=out)


def _check_same_shape(name, **arrays):
    shapes = {key: tuple(a.shape) for key, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"{name}: arrays of different shapes: " +
                         ", ".join(f"{k} {s}" for k, s in shapes.items()))


def bias_act_backward_reference(grad_y, y, activation="relu", *, out=None):
    """grad_z = grad_y * act'(z + bias), from the forward's output y (relu: y > 0;
    tanh: 1 - y^2; sigmoid: y (1 - y); identity: 1).

    grad_y and y: float arrays of one shape. Returns grad_z, shaped like y: a new array,
    or `out` written in place (it may be grad_y itself). The bias gradient is grad_z
    summed over every axis but the last (`xp.sum(grad_z, axis=0)` for (N, M)); left to
    the caller, who often has it done by the engine's broadcasting rule already.
    """
    _activation_code("bias_act_backward", activation)
    _check_same_shape("bias_act_backward", grad_y=grad_y, y=y)
    xp = _namespace(y)
    grad_z = _ACTIVATION_GRAD[activation](xp, grad_y, y)
    if grad_z is grad_y and out is None:
        grad_z = xp.asarray(grad_y, copy=True)
    return _into(out, grad_z)


def bias_act_backward_cupy(grad_y, y, activation="relu", *, out=None):
    """bias_act_backward_reference as one CUDA kernel (kernels/bias_act.cu)."""
    code = _activation_code("bias_act_backward", activation)
    _check_same_shape("bias_act_backward", grad_y=grad_y, y=y)
    cp = _cupy()
    grad_y, y = cp.ascontiguousarray(grad_y), cp.ascontiguousarray(y)
    grad_z = _contiguous_out("bias_act_backward", out, y)
    n = y.size
    if n:
        _launch("bias_act.cu", "bias_act_backward", y.dtype, _blocks(n), _THREADS,
                (grad_y, y, grad_z, np.int64(n), np.int32(code)))
    return grad_z


def bias_act_backward(grad_y, y, activation="relu", *, out=None):
    """grad_z from grad_y and the forward's output y, fused on CuPy, else the reference;
    see bias_act_backward_reference."""
    if _fusable("bias_act.cu", grad_y, y, out, contiguous=(out,)):
        return bias_act_backward_cupy(grad_y, y, activation, out=out)
    return bias_act_backward_reference(grad_y, y, activation, out=out)


# === softmax + cross-entropy ==================================================================
def _check_xent(name, logits, labels, label_smoothing, reduction):
    if len(logits.shape) != 2 or logits.shape[1] < 1:
        raise ValueError(f"{name}: expected logits of shape (N, C) with C >= 1, got "
                         f"{tuple(logits.shape)}")
    if tuple(labels.shape) != (logits.shape[0],):
        raise ValueError(f"{name}: labels of shape {tuple(labels.shape)} for logits of "
                         f"shape {tuple(logits.shape)}; expected ({logits.shape[0]},)")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{name}: label_smoothing must be in [0, 1], got {label_smoothing}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _reduce(xp, loss, reduction):
    if reduction == "mean":
        return xp.mean(loss)
    if reduction == "sum":
        return xp.sum(loss)
    return loss


def softmax_xent_forward_reference(logits, labels, *, label_smoothing=0.0, reduction="none"):
    """Softmax cross-entropy of each row of logits against its class index, and the
    log-sum-exp that the backward needs.

    logits: (N, C) float; labels: (N,) integers in [0, C). Returns (loss, lse):
    - loss: per row -log softmax(logits)[row, label] (with label smoothing s:
      (1 - s) of that minus s times the row's mean log-probability), shape (N,), exactly
      what gpugrad's cross_entropy op returns; reduced to a 0-d array (a NumPy scalar on
      NumPy) by reduction="mean" (what F.cross_entropy returns by default) or "sum";
    - lse: (N,), each row's log-sum-exp (max + log sum exp(logits - max)), always per row.
    A label outside [0, C) makes its row's loss NaN: it is never used as an index.
    """
    _check_xent("softmax_xent_forward", logits, labels, label_smoothing, reduction)
    xp = _namespace(logits)
    classes = logits.shape[1]
    # gpugrad's log_softmax, step for step, so the losses are the op's to the bit.
    row_max = xp.max(logits, axis=-1, keepdims=True)
    shifted = logits - row_max
    log_sum = xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))
    log_p = shifted - log_sum
    valid = (labels >= 0) & (labels < classes)
    index = xp.reshape(xp.where(valid, labels, 0), (-1, 1))  # an in-range stand-in
    loss = -xp.reshape(xp.take_along_axis(log_p, index, axis=-1), (-1,))
    if label_smoothing:
        loss = (1 - label_smoothing) * loss - label_smoothing * xp.mean(log_p, axis=-1)
    loss = xp.where(valid, loss, xp.nan)
    lse = xp.reshape(row_max + log_sum, (-1,))
    return _reduce(xp, loss, reduction), lse


def _as_labels(cp, labels):
    return cp.ascontiguousarray(labels.astype(cp.int64, copy=False))


def softmax_xent_forward_cupy(logits, labels, *, label_smoothing=0.0, reduction="none"):
    """softmax_xent_forward_reference with one CUDA block per row (kernels/softmax_xent.cu):
    the row's max, sum of exponentials and loss in one pass. Labels of any integer dtype
    are converted to int64 first."""
    _check_xent("softmax_xent_forward", logits, labels, label_smoothing, reduction)
    cp = _cupy()
    logits, labels = cp.ascontiguousarray(logits), _as_labels(cp, labels)
    rows, classes = logits.shape
    loss = cp.empty((rows,), dtype=logits.dtype)
    lse = cp.empty((rows,), dtype=logits.dtype)
    if rows:
        t = logits.dtype.type
        _launch("softmax_xent.cu", "softmax_xent_forward", logits.dtype,
                min(rows, _MAX_BLOCKS), _row_threads(classes),
                (logits, labels, loss, lse, np.int64(rows), np.int64(classes),
                 t(label_smoothing)))
    return _reduce(cp, loss, reduction), lse


def softmax_xent_forward(logits, labels, *, label_smoothing=0.0, reduction="none"):
    """(loss, lse), fused on CuPy, else the reference; see softmax_xent_forward_reference."""
    if _fusable("softmax_xent.cu", logits) and _is_cupy(labels):
        return softmax_xent_forward_cupy(logits, labels, label_smoothing=label_smoothing,
                                         reduction=reduction)
    return softmax_xent_forward_reference(logits, labels, label_smoothing=label_smoothing,
                                          reduction=reduction)


def _grad_and_scale(name, grad, rows, reduction):
    """The upstream gradient as (array or None, multiplier): per row for reduction="none"
    ((N,) or a scalar for all rows), one value for "mean" (times 1/N) and "sum"."""
    scale = 1.0 / rows if reduction == "mean" and rows else 1.0
    if isinstance(grad, (int, float)):
        return None, float(grad) * scale
    size = math.prod(grad.shape)
    if reduction == "none" and tuple(grad.shape) not in ((rows,), ()):
        raise ValueError(f"{name}: reduction='none' takes one gradient per row, shape "
                         f"({rows},), got {tuple(grad.shape)}")
    if reduction != "none" and size != 1:
        raise ValueError(f"{name}: reduction={reduction!r} takes one gradient for the "
                         f"reduced loss, got shape {tuple(grad.shape)}")
    return grad, scale


def softmax_xent_backward_reference(grad, logits, labels, lse=None, *, label_smoothing=0.0,
                                    reduction="none", out=None):
    """d loss / d logits = g (softmax(logits) - q), q = (1 - s) onehot(label) + s / C.

    grad: the upstream gradient of the forward's loss: (N,) per row for reduction="none"
    (gpugrad's cross_entropy_backward op), or one value (a Python number or a one-element
    array) for "mean" (so g = grad / N, the default F.cross_entropy's gradient) and "sum".
    logits (N, C), labels (N,) as in the forward; lse: the forward's (N,) log-sum-exp, or
    None to recompute it. Returns dlogits (N, C): a new array, or `out` written in place
    (it may be logits itself). A row whose label is outside [0, C) is all NaN.
    """
    _check_xent("softmax_xent_backward", logits, labels, label_smoothing, reduction)
    rows, classes = logits.shape
    g, scale = _grad_and_scale("softmax_xent_backward", grad, rows, reduction)
    _check_out("softmax_xent_backward", out, logits.shape, logits.dtype)
    if lse is None:
        lse = softmax_xent_forward_reference(logits, labels, label_smoothing=label_smoothing)[1]
    xp = _namespace(logits)
    p = xp.exp(logits - xp.reshape(lse, (-1, 1)))
    hits = xp.astype(xp.reshape(labels, (-1, 1)) == xp.reshape(xp.arange(classes), (1, -1)),
                     logits.dtype)
    q = hits * (1 - label_smoothing) + label_smoothing / classes if label_smoothing else hits
    if g is None:
        dlogits = scale * (p - q)
    else:
        g = xp.reshape(g, (-1, 1)) if len(g.shape) else g
        dlogits = (g * scale if scale != 1.0 else g) * (p - q)
    valid = (labels >= 0) & (labels < classes)
    dlogits = xp.where(xp.reshape(valid, (-1, 1)), dlogits, xp.nan)
    return _into(out, dlogits)


def softmax_xent_backward_cupy(grad, logits, labels, lse=None, *, label_smoothing=0.0,
                               reduction="none", out=None):
    """softmax_xent_backward_reference as one elementwise CUDA kernel
    (kernels/softmax_xent.cu); lse=None runs the fused forward first to get it."""
    _check_xent("softmax_xent_backward", logits, labels, label_smoothing, reduction)
    cp = _cupy()
    rows, classes = logits.shape
    g, scale = _grad_and_scale("softmax_xent_backward", grad, rows, reduction)
    logits, labels = cp.ascontiguousarray(logits), _as_labels(cp, labels)
    if lse is None:
        lse = softmax_xent_forward_cupy(logits, labels, label_smoothing=label_smoothing)[1]
    lse = cp.ascontiguousarray(lse.astype(logits.dtype, copy=False))
    t = logits.dtype.type
    if g is None:
        g_array, g_stride, has_grad = lse, 0, 0  # lse: a valid pointer, never read
    else:
        g_array = cp.ascontiguousarray(g.astype(logits.dtype, copy=False))
        g_stride, has_grad = (1 if g_array.shape == (rows,) else 0), 1
    dlogits = _contiguous_out("softmax_xent_backward", out, logits)
    n = rows * classes
    if n:
        _launch("softmax_xent.cu", "softmax_xent_backward", logits.dtype, _blocks(n),
                _THREADS, (logits, labels, lse, g_array, np.int64(g_stride),
                           np.int32(has_grad), t(scale), dlogits, np.int64(rows),
                           np.int64(classes), t(label_smoothing)))
    return dlogits


def softmax_xent_backward(grad, logits, labels, lse=None, *, label_smoothing=0.0,
                          reduction="none", out=None):
    """dlogits, fused on CuPy, else the reference; see softmax_xent_backward_reference."""
    arrays = [logits, lse, out] + ([] if isinstance(grad, (int, float)) else [grad])
    if _fusable("softmax_xent.cu", *arrays, contiguous=(out,)) and _is_cupy(labels):
        return softmax_xent_backward_cupy(grad, logits, labels, lse,
                                          label_smoothing=label_smoothing,
                                          reduction=reduction, out=out)
    return softmax_xent_backward_reference(grad, logits, labels, lse,
                                           label_smoothing=label_smoothing,
                                           reduction=reduction, out=out)


# === optimiser updates =========================================================================
def _check_update(name, param, **arrays):
    """Every array matches the parameter's shape and dtype: checked before anything is
    written, so that a refused update leaves the parameter and its state as they were."""
    for key, a in arrays.items():
        if a is None:
            continue
        if tuple(a.shape) != tuple(param.shape) or a.dtype != param.dtype:
            raise ValueError(f"{name}: {key} has shape {tuple(a.shape)} and dtype {a.dtype}, "
                             f"the parameter {tuple(param.shape)} and {param.dtype}")


class AdamScalars(NamedTuple):
    """The per-step values of an Adam update, computed on the host as gpugrad.optim.Adam's
    _scalars does, so that one compiled kernel serves every step."""

    step_size: float  # lr / (1 - beta1^step)
    sqrt_bias2: float  # sqrt(1 - beta2^step)
    scale: float  # 1 - lr wd for AdamW's decoupled decay, else 1


def adam_scalars(step, lr, betas, weight_decay=0.0, decoupled=False):
    """AdamScalars for step number `step` (1 for the first update)."""
    if step < 1:
        raise ValueError(f"the step number counts from 1, got {step}")
    b1, b2 = betas
    return AdamScalars(lr / (1 - b1 ** step), math.sqrt(1 - b2 ** step),
                       1 - lr * weight_decay if weight_decay and decoupled else 1.0)


def adam_update_reference(param, grad, exp_avg, exp_avg_sq, *, step, lr=1e-3,
                          betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    """One Adam (decoupled=False) or AdamW (decoupled=True) step, in place.

    param, grad, exp_avg (m), exp_avg_sq (v): float arrays of one shape and dtype; step:
    this update's number, from 1 (the state starts as zeros, as gpugrad.optim.Adam's does).
      Adam's L2 decay: g = grad + wd param       AdamW: param is scaled by 1 - lr wd
      m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g g
      param = scale param - step_size (m / (sqrt(v) / sqrt_bias2 + eps))   (adam_scalars)
    param, exp_avg and exp_avg_sq are updated in place, operation for operation as
    gpugrad.optim.Adam/AdamW update them (the same values to the bit), and returned as
    (param, exp_avg, exp_avg_sq). Shapes and dtypes are checked before anything changes.
    """
    _check_update("adam_update", param, grad=grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
    scalars = adam_scalars(step, lr, betas, weight_decay, decoupled)
    xp = _namespace(param)
    b1, b2 = betas
    if weight_decay and not decoupled:
        grad = grad + weight_decay * param
    exp_avg *= b1  # b1 m, then + (1 - b1) g: the optimiser's two roundings, in place
    exp_avg += (1 - b1) * grad
    exp_avg_sq *= b2
    exp_avg_sq += (1 - b2) * grad * grad
    denom = xp.sqrt(exp_avg_sq) / scalars.sqrt_bias2 + eps
    delta = scalars.step_size * (exp_avg / denom)
    if scalars.scale != 1:
        param *= scalars.scale
    param -= delta
    return param, exp_avg, exp_avg_sq


def adam_update_cupy(param, grad, exp_avg, exp_avg_sq, *, step, lr=1e-3, betas=(0.9, 0.999),
                     eps=1e-8, weight_decay=0.0, decoupled=False):
    """adam_update_reference as one CUDA kernel (kernels/optim.cu), bit for bit the same.
    param, exp_avg and exp_avg_sq must be C-contiguous (they are updated in place)."""
    _check_update("adam_update", param, grad=grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq)
    for key, a in (("param", param), ("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)):
        if not a.flags.c_contiguous:
            raise ValueError(f"adam_update: {key} must be C-contiguous to update in place")
    scalars = adam_scalars(step, lr, betas, weight_decay, decoupled)
    adam_step_cupy(param, grad, exp_avg, exp_avg_sq, betas=betas, eps=eps,
                   weight_decay=weight_decay, l2=bool(weight_decay) and not decoupled,
                   scales=scalars.scale != 1, scale=scalars.scale,
                   step_size=scalars.step_size, sqrt_bias2=scalars.sqrt_bias2)
    return param, exp_avg, exp_avg_sq


def adam_step_cupy(param, grad, exp_avg, exp_avg_sq, *, betas, eps, weight_decay, l2, scales,
                   scale, step_size, sqrt_bias2):
    """The launch of kernels/optim.cu's Adam update with this step's scalars given: as
    numbers (a 0-d NumPy value is read as its number), or as 0-d CuPy arrays of param's
    dtype, read on the device (a graph-ready plan's, which a CUDA graph may replay). In
    place on param, exp_avg, exp_avg_sq, CuPy arrays of param's dtype (one that is not
    C-contiguous, which the kernel would index wrongly, through a C-contiguous copy)."""
    cp = _cupy()
    grad = cp.ascontiguousarray(grad)
    t = param.dtype.type
    b1, b2 = betas
    n = param.size
    if not n:
        return
    (param, exp_avg, exp_avg_sq), write_back = _updated_in_place(cp, param, exp_avg,
                                                                 exp_avg_sq)
    on_device = _device_scalars(cp, param, scale, step_size, sqrt_bias2)
    if on_device:
        name, per_step = "adam_update_dev", (scale, np.int32(bool(scales)), step_size,
                                             sqrt_bias2)
    else:
        name, per_step = "adam_update", (t(float(scale)), np.int32(bool(scales)),
                                         t(float(step_size)), t(float(sqrt_bias2)))
    _launch("optim.cu", name, param.dtype, _blocks(n), _THREADS,
            (param, grad, exp_avg, exp_avg_sq, np.int64(n), t(b1), t(1 - b1), t(b2),
             t(1 - b2), t(eps), t(weight_decay), np.int32(bool(l2))) + per_step)
    write_back()


def _updated_in_place(cp, *arrays):
    """(C-contiguous stand-ins for the arrays a kernel updates in place, a function that
    writes them back): each array itself where it is C-contiguous (None stays None), else
    a C-contiguous copy, copied back into it by write_back() after the launch. The kernels
    index their arrays flat, as the C-contiguous gradient they read beside them: a
    Fortran-ordered parameter (nn.Parameter(w.T), a tensor of a column-major array) would
    otherwise pair each element with another one's gradient."""
    work = [a if a is None or a.flags.c_contiguous else cp.ascontiguousarray(a)
            for a in arrays]

    def write_back():
        for a, w in zip(arrays, work, strict=True):
            if w is not a:
                a[...] = w

    return work, write_back


def _device_scalars(cp, param, *scalars):
    """Whether the per-step scalars are 0-d device arrays (all of them, of param's
    dtype) rather than host numbers."""
    arrays = [isinstance(s, cp.ndarray) for s in scalars]
    if not any(arrays):
        return False
    if not all(arrays) or any(s.shape != () or s.dtype != param.dtype for s in scalars):
        raise ValueError("the per-step scalars must all be host numbers or all 0-d arrays of "
                         f"the parameter's dtype ({param.dtype})")
    return True


def adam_update(param, grad, exp_avg, exp_avg_sq, *, step, lr=1e-3, betas=(0.9, 0.999),
                eps=1e-8, weight_decay=0.0, decoupled=False):
    """One Adam/AdamW step in place, fused on CuPy, else the reference; returns
    (param, exp_avg, exp_avg_sq). See adam_update_reference."""
    if _fusable("optim.cu", param, grad, exp_avg, exp_avg_sq,
                contiguous=(param, exp_avg, exp_avg_sq)):
        return adam_update_cupy(param, grad, exp_avg, exp_avg_sq, step=step, lr=lr,
                                betas=betas, eps=eps, weight_decay=weight_decay,
                                decoupled=decoupled)
    return adam_update_reference(param, grad, exp_avg, exp_avg_sq, step=step, lr=lr,
                                 betas=betas, eps=eps, weight_decay=weight_decay,
                                 decoupled=decoupled)


def _check_momentum(name, momentum, momentum_buffer, nesterov, dampening):
    if momentum and momentum_buffer is None:
        raise ValueError(f"{name}: momentum={momentum} needs a momentum_buffer")
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(f"{name}: Nesterov momentum needs momentum > 0 and no dampening")


def sgd_update_reference(param, grad, momentum_buffer=None, *, lr, momentum=0.0,
                         weight_decay=0.0, dampening=0.0, nesterov=False, first_step=False):
    """One SGD step, in place, with optional momentum, Nesterov momentum and L2 decay.

    param, grad and momentum_buffer (needed when momentum > 0, else ignored): float arrays
    of one shape and dtype.
      d = grad + wd param
      buf = d on the first step (first_step=True: buf is not read, it may hold anything),
            else momentum buf + (1 - dampening) d
      d = d + momentum buf (nesterov) or buf
      param = param - lr d
    gpugrad.optim.SGD's update, operation for operation (its first step, mu 0 + 1 d, is d).
    param and momentum_buffer are updated in place and returned as (param,
    momentum_buffer); momentum_buffer is returned as given (None or untouched) without
    momentum. Shapes and dtypes are checked before anything changes.
    """
    _check_momentum("sgd_update", momentum, momentum_buffer, nesterov, dampening)
    _check_update("sgd_update", param, grad=grad,
                  momentum_buffer=momentum_buffer if momentum else None)
    d = grad
    if weight_decay:
        d = d + weight_decay * param
    if momentum:
        if first_step:
            momentum_buffer[...] = d
        else:
            momentum_buffer *= momentum
            momentum_buffer += (1 - dampening) * d
        d = d + momentum * momentum_buffer if nesterov else momentum_buffer
    param -= lr * d
    return param, momentum_buffer


def sgd_update_cupy(param, grad, momentum_buffer=None, *, lr, momentum=0.0, weight_decay=0.0,
                    dampening=0.0, nesterov=False, first_step=False):
    """sgd_update_reference as one CUDA kernel (kernels/optim.cu), bit for bit the same.
    param and momentum_buffer must be C-contiguous (they are updated in place)."""
    _check_momentum("sgd_update", momentum, momentum_buffer, nesterov, dampening)
    buffer = momentum_buffer if momentum else None
    _check_update("sgd_update", param, grad=grad, momentum_buffer=buffer)
    for key, a in (("param", param), ("momentum_buffer", buffer)):
        if a is not None and not a.flags.c_contiguous:
            raise ValueError(f"sgd_update: {key} must be C-contiguous to update in place")
    sgd_step_cupy(param, grad, buffer, lr=lr, weight_decay=weight_decay, momentum=momentum,
                  dampening_factor=1 - dampening, nesterov=nesterov, first_step=first_step)
    return param, momentum_buffer


def sgd_step_cupy(param, grad, buffer, *, lr, weight_decay, momentum, dampening_factor,
                  nesterov, first_step=False):
    """The launch of kernels/optim.cu's SGD update with this step's scalars given (lr
    and dampening_factor as numbers, or both as 0-d CuPy arrays read on the device):
    buf = momentum buf + dampening_factor d (gpugrad.optim.SGD passes 1 on the first
    step, whose buffer is zero). In place on param and buffer (None without momentum),
    CuPy arrays of param's float dtype (not C-contiguous: through a C-contiguous copy, as
    in adam_step_cupy)."""
    cp = _cupy()
    grad = cp.ascontiguousarray(grad)
    t = param.dtype.type
    n = param.size
    if not n:
        return
    (param, buffer), write_back = _updated_in_place(cp, param, buffer)
    if _device_scalars(cp, param, lr, dampening_factor):
        name, lr, dampening = "sgd_update_dev", lr, dampening_factor
    else:
        name, lr, dampening = "sgd_update", t(float(lr)), t(float(dampening_factor))
    _launch("optim.cu", name, param.dtype, _blocks(n), _THREADS,
            (param, grad, buffer if buffer is not None else param,  # param: never read
             np.int64(n), lr, t(weight_decay), np.int32(bool(weight_decay)),
             t(momentum), dampening, np.int32(bool(momentum)),
             np.int32(bool(nesterov)), np.int32(bool(first_step))))
    write_back()


def sgd_update(param, grad, momentum_buffer=None, *, lr, momentum=0.0, weight_decay=0.0,
               dampening=0.0, nesterov=False, first_step=False):
    """One SGD step in place, fused on CuPy, else the reference; returns
    (param, momentum_buffer). See sgd_update_reference."""
    buffer = momentum_buffer if momentum else None
    if _fusable("optim.cu", param, grad, buffer, contiguous=(param, buffer)):
        return sgd_update_cupy(param, grad, momentum_buffer, lr=lr, momentum=momentum,
                               weight_decay=weight_decay, dampening=dampening,
                               nesterov=nesterov, first_step=first_step)
    return sgd_update_reference(param, grad, momentum_buffer, lr=lr, momentum=momentum,
                                weight_decay=weight_decay, dampening=dampening,
                                nesterov=nesterov, first_step=first_step)


# === the table ====================================================================================
class FusedKernel(NamedTuple):
    """One fused step: the dispatcher callers use, its CUDA source and kernel names, and
    the two implementations a test compares."""

    name: str  # the dispatcher's name, e.g. "adam_update"
    source: str  # the file in kernels/, e.g. "optim.cu"
    cuda_names: tuple  # its kernels in the source, each with _f32 and _f64 variants
    reference: Callable  # the generic kernel (any namespace)
    fused: Callable  # the CUDA kernel (CuPy arrays)
    dispatch: Callable  # fused where it can run, else the reference


KERNELS = (
    FusedKernel("bias_act_forward", "bias_act.cu", ("bias_act_forward",),
                bias_act_forward_reference, bias_act_forward_cupy, bias_act_forward),
    FusedKernel("bias_act_backward", "bias_act.cu", ("bias_act_backward",),
                bias_act_backward_reference, bias_act_backward_cupy, bias_act_backward),
    FusedKernel("softmax_xent_forward", "softmax_xent.cu", ("softmax_xent_forward",),
                softmax_xent_forward_reference, softmax_xent_forward_cupy,
                softmax_xent_forward),
    FusedKernel("softmax_xent_backward", "softmax_xent.cu", ("softmax_xent_backward",),
                softmax_xent_backward_reference, softmax_xent_backward_cupy,
                softmax_xent_backward),
    FusedKernel("adam_update", "optim.cu", ("adam_update",),
                adam_update_reference, adam_update_cupy, adam_update),
    FusedKernel("sgd_update", "optim.cu", ("sgd_update",),
                sgd_update_reference, sgd_update_cupy, sgd_update),
)
