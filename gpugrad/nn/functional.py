"""Activations and losses as functions, numerically stable: log-sum-exp for softmax and
cross-entropy, logits forms for the binary losses (finite values and gradients for
logits of +-1000 in float32)."""

import inspect
import math
from functools import partial, wraps

import numpy as np

from ..creation import arange, full, ones, rand, tensor, zeros
from ..errors import DeviceError, DTypeError, GraphError, OutOfBoundsError, ShapeError
from ..functions import relu, sigmoid, tanh  # noqa: F401  (the same functions, as F.*)
from ..mode import state as _state
from ..ops import elementwise as ew
from ..ops import loss as _loss
from ..ops.infer import normalize_axes
from ..ops.linalg import linear as _linear
from ..ops.linalg import matmul
from ..ops.registry import _annotate
from ..tensor import Tensor

REDUCTIONS = ("mean", "sum", "none")


def softplus(x):
    """log(1 + exp(x)), without overflow."""
    return ew.logaddexp(0.0, x)


def log_softmax(x, axis=-1, *, dim=None):
    """x - log(sum(exp(x))) along `axis` (or dim=), shifted by the (constant) maximum."""
    axis = axis if dim is None else dim
    _check_axis("log_softmax", x, axis)
    shifted = _shifted(x, axis)
    return shifted - shifted.exp().sum(axis=axis, keepdims=True).log()


def softmax(x, axis=-1, *, dim=None):
    """exp(x) / sum(exp(x)) along `axis` (or dim=), shifted by the maximum first."""
    axis = axis if dim is None else dim
    _check_axis("softmax", x, axis)
    e = _shifted(x, axis).exp()
    return e / e.sum(axis=axis, keepdims=True)


def _shifted(x, axis):
    """x less its (constant) maximum along `axis`, so that exp cannot overflow. An empty
    x has nothing to shift, and along an empty axis no maximum: the result is as empty
    as x, as PyTorch's."""
    if x.size == 0:
        return x
    return x - x.max(axis=axis, keepdims=True).detach()


def leaky_relu(x, negative_slope=0.01):
    """x where x > 0, else negative_slope * x (the gradient at 0 is the slope, as in
    PyTorch)."""
    return ew.where(x > 0, x, x * negative_slope)


def silu(x):
    """x * sigmoid(x) (also called swish)."""
    return x * ew.sigmoid(x)


GELU_APPROXIMATIONS = ("none", "tanh")


def gelu(x, approximate="none"):
    """x * Phi(x), Phi the standard normal distribution function: x/2 (1 + erf(x/sqrt(2))).
    approximate="tanh": x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as PyTorch's. Both
    in PyTorch's order of operations: the results part only where erf's or tanh's last
    bits do. Half precision is computed in float32 and rounded once, as PyTorch does:
    1 + erf(x / sqrt(2)) rounded to float16 for x < 0 loses the small result (gelu(-3)
    came out 8% off, gelu(-4) 0). Composed of ops, so every derivative follows."""
    _check_gelu_approximation("gelu", approximate)
    work = _working(x)
    if approximate == "tanh":
        inner = (work + work * work * work * 0.044715) * math.sqrt(2.0 / math.pi)
        y = work * 0.5 * (1.0 + ew.tanh(inner))
    else:
        y = work * 0.5 * (1.0 + ew.erf(work * math.sqrt(0.5)))
    return y if work is x else y.astype(x.dtype)


def _check_gelu_approximation(name, approximate):
    if not isinstance(approximate, str) or approximate not in GELU_APPROXIMATIONS:
        raise _annotate(name, ValueError(
            f"approximate must be 'none' or 'tanh', got {approximate!r}"))


def linear(x, weight, bias=None):
    """x @ weight.T + bias, weight of shape (out_features, in_features): a Linear
    layer's forward, one op for a batch."""
    if x.ndim < 2:  # a single sample: the general product
        y = matmul(x, weight, transpose_b=True)
        return y if bias is None else y + bias
    return _linear(x, weight) if bias is None else _linear(x, weight, bias)


def dropout(x, p=0.5, training=True):
    """Each element zeroed with probability p, the rest scaled by 1 / (1 - p), when
    training; x itself otherwise. p=1 zeroes everything (and the gradient), as in
    PyTorch."""
    _check_probability("dropout", p)
    if not training or p == 0.0:
        return x
    if x.dtype.kind != "f":  # (the draw would be blamed otherwise; PyTorch refuses too)
        raise _annotate("dropout", DTypeError(
            f"needs a floating-point input to scale by 1 / (1 - p), got {x.dtype} (input "
            f"of shape {tuple(x.shape)}); cast first, e.g. x.astype('float32')"))
    if p == 1.0:  # nothing kept, and no 1/(1-p): a mask of False, not drawn
        return ew.where(zeros(x.shape, dtype="bool", device=x.device), x, 0.0)
    keep = rand(*x.shape, dtype=x.dtype, device=x.device) >= p
    return ew.where(keep, x * (1.0 / (1.0 - p)), 0.0)


def _check_probability(name, p):
    """A dropout probability: a number in [0, 1]."""
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)) \
            or not 0.0 <= p <= 1.0:
        raise _annotate(name, ValueError(f"dropout probability must be a number in [0, 1], "
                                         f"got {p!r}"))


def one_hot(class_index, num_classes=-1):
    """(..., num_classes) int64 tensor: 1 at each class index, 0 elsewhere; num_classes
    -1 takes the largest index + 1, as PyTorch does. No gradient (integers)."""
    if not isinstance(class_index, Tensor):
        class_index = tensor(class_index)
    if class_index.dtype.kind not in "iu":
        raise _annotate("one_hot", DTypeError(
            f"class indices must be integers, got {class_index.dtype}"))
    xp = class_index.device.backend.xp
    if num_classes == -1:
        if not class_index.numel():
            raise _annotate("one_hot", ValueError(
                "num_classes=-1 takes the largest class index + 1: give num_classes for "
                "no class indices"))
        num_classes = int(xp.max(class_index._data)) + 1
    wrong = _loss.class_indices_outside(xp, xp.reshape(class_index._data, (-1,)),
                                        num_classes)
    if wrong:
        raise _annotate("one_hot", OutOfBoundsError(wrong))
    classes = arange(num_classes, device=class_index.device)
    return (class_index.unsqueeze(-1) == classes).astype("int64")


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(x - mean) / sqrt(var + eps) over the last len(normalized_shape) axes (the biased
    variance, as PyTorch's), then * weight + bias (each of normalized_shape), where
    given: of x's dtype, or float32 beside a float16 x (see _check_norm_dtypes)."""
    shape = _normalized_shape(x, normalized_shape)
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise _annotate("layer_norm", ShapeError(
                f"{name} of shape {tuple(t.shape)} for normalized_shape {shape}"))
    _check_norm_dtypes("layer_norm", x, weight=weight, bias=bias)
    y, _, _ = _standardized(x, tuple(range(x.ndim - len(shape), x.ndim)), eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y.astype(x.dtype)  # rounded once, after the scale and shift


def _standardized(x, axes, eps):
    """((x - mean) / sqrt(var + eps), mean, var) over `axes`, the variance biased, in
    _working(x)'s dtype: the caller scales and shifts it there and rounds the result to
    x's dtype once."""
    work = _working(x)
    mean = work.mean(axis=axes, keepdims=True)
    centred = work - mean
    var = (centred * centred).mean(axis=axes, keepdims=True)
    return centred / (var + eps).sqrt(), mean, var


def _working(x):
    """x in the dtype a norm (or gelu) computes in: half precision in float32, as PyTorch
    accumulates it (float16's 11 bits lose the spread of values far from 0: x ~ 300 +- 10
    came out 7 steps off); any other dtype as it is."""
    return x.astype("float32") if _is_half(x.dtype) else x


def _is_half(dtype):
    return dtype.kind == "f" and dtype.itemsize < 4


def _check_norm_dtypes(name, x, **tensors):
    """A floating-point x, and a norm's weight, bias and running statistics (those given,
    by name) all of x's dtype, or, beside a half-precision x, all float32 (PyTorch's mixed
    precision: the statistics and parameters kept in float32, the result in float16).
    PyTorch refuses an integer x, whose normalised values would be truncated, and
    any other mix, and so do we: promoting would silently run a float32 model in float64
    on float64 data (or hand a float32 input a float64 result), where the same code on
    PyTorch stops."""
    given = {key: t for key, t in tensors.items() if t is not None}
    elsewhere = ", ".join(f"{key} on {t.device}" for key, t in given.items()
                          if isinstance(t, Tensor) and t.device is not x.device)
    if elsewhere:  # (checked here, where the op inside that would meet them is not named)
        raise _annotate(name, DeviceError(
            f"input on {x.device} with {elsewhere}; move one side explicitly with "
            ".to(device) - gpugrad never copies between devices silently"))
    kinds = {t.dtype for t in given.values()}
    if x.dtype.kind != "f":
        wanted = next(iter(kinds)) if len(kinds) == 1 else np.dtype("float32")
        raise _annotate(name, DTypeError(
            f"input of dtype {x.dtype}: a norm takes floating-point input, as PyTorch's "
            f"does; give it as {wanted} (x.astype({wanted.name!r}))"))
    if not given or kinds == {x.dtype} or (_is_half(x.dtype) and
                                           kinds == {np.dtype("float32")}):
        return
    which = ", ".join(f"{key} of dtype {t.dtype}" for key, t in given.items())
    allowed = f"all {x.dtype}" + (" or all float32" if _is_half(x.dtype) else "")
    fix = ""
    if len(kinds) == 1:  # the module's one dtype: the input converted to it fits
        (wanted,) = kinds
        fix = f"; give the input as {wanted} (x.astype({wanted.name!r}))"
    raise _annotate(name, DTypeError(
        f"input of dtype {x.dtype} with {which}: they must be {allowed}, as PyTorch "
        f"requires{fix}"))


def _normalized_shape(x, normalized_shape):
    """normalized_shape as a tuple (an int is one axis), checked against x's last axes."""
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) \
        else tuple(normalized_shape)
    if not shape or tuple(x.shape[x.ndim - len(shape):]) != shape or len(shape) > x.ndim:
        raise _annotate("layer_norm", ShapeError(
            f"normalized_shape {shape} is not the last axes of the input's shape "
            f"{tuple(x.shape)}"))
    return shape


def _pytorch_keywords(**names):
    """Also take PyTorch's keyword names for a loss's first arguments, as in
    F.cross_entropy(input=logits, target=labels): `names` maps each of PyTorch's names to
    ours (input= to pred, prob, logits or log_probs; target= to class_index). The order
    of the arguments is PyTorch's already; a value given both ways is a TypeError."""
    def wrap(loss):
        signature = inspect.signature(loss)
        positions = list(signature.parameters)
        theirs = {alias: (ours, positions.index(ours)) for alias, ours in names.items()}

        @wraps(loss)
        def call(*args, **kwargs):
            if kwargs:
                for alias, (ours, position) in theirs.items():
                    # None is the alias's default: gg.compile passes it, bound as the
                    # signature below says, when the call left the alias out.
                    value = kwargs.pop(alias, None)
                    if value is None:
                        continue
                    if ours in kwargs or len(args) > position:
                        raise _annotate(loss.__name__, TypeError(
                            f"give {ours} or {alias}=, not both"))
                    kwargs[ours] = value
            return loss(*args, **kwargs)

        # help() and inspect show the aliases too, as keywords after ours.
        call.__signature__ = signature.replace(parameters=[
            *signature.parameters.values(),
            *(inspect.Parameter(alias, inspect.Parameter.KEYWORD_ONLY, default=None)
              for alias in names)])
        return call

    return wrap


@_pytorch_keywords(input="pred")
def l1_loss(pred, target, reduction="mean"):
    """Mean absolute error |pred - target| (its gradient at 0 is 0, as in PyTorch)."""
    _check_reduction("l1_loss", reduction)
    target = _target_like(target, pred)
    _check_same_shape("l1_loss", pred, target)
    return _reduce((pred - target).abs(), reduction)


def _check_axis(name, x, axis):
    """A bad axis, or a bool input (which has no subtraction: PyTorch refuses it too),
    refused under the public function's name (the max or sub inside would be blamed
    otherwise)."""
    if isinstance(x, Tensor) and x.dtype.kind == "b":
        raise _annotate(name, DTypeError(
            f"not defined for bool tensors (input of shape {tuple(x.shape)}); cast first, "
            "e.g. x.astype('float32')"))
    try:
        normalize_axes(axis, len(x.shape))
    except ShapeError as exc:
        raise _annotate(name, ShapeError(f"{exc} (input of shape {tuple(x.shape)})")) \
            from None


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss  # "none" (_check_reduction refused anything else before any work)


def _check_reduction(name, reduction):
    if reduction not in REDUCTIONS:
        raise _annotate(name, ValueError(f"reduction must be one of {REDUCTIONS}, got "
                                         f"{reduction!r}"))


def _check_same_shape(name, a, b):
    """Input and target of one shape, and on one device (the sub or mul inside would be
    blamed otherwise)."""
    if a.device is not b.device:
        raise _annotate(name, DeviceError(
            f"input of shape {tuple(a.shape)} on {a.device} and target of shape "
            f"{tuple(b.shape)} on {b.device}; move one explicitly with .to(device) - "
            "gpugrad never copies between devices silently"))
    if tuple(a.shape) != tuple(b.shape):
        raise _annotate(name, ShapeError(f"input of shape {tuple(a.shape)} and target of "
                                         f"shape {tuple(b.shape)} differ"))


def _target_like(target, ref):
    """The target as a tensor beside `ref`; a Python number is the target of every
    element (mse_loss(pred, 0.0)): unambiguous, unlike a tensor of another shape."""
    if isinstance(target, Tensor):
        return target
    if isinstance(target, (int, float)) and not isinstance(target, bool):
        return full(ref.shape, target, dtype=ref.dtype, device=ref.device)
    return tensor(target, dtype=ref.dtype, device=ref.device)


@_pytorch_keywords(input="pred")
def mse_loss(pred, target, reduction="mean"):
    """Mean squared error (pred - target)^2."""
    _check_reduction("mse_loss", reduction)
    target = _target_like(target, pred)
    _check_same_shape("mse_loss", pred, target)
    diff = pred - target
    return _reduce(diff * diff, reduction)


@_pytorch_keywords(input="prob")
def binary_cross_entropy(prob, target, reduction="mean"):
    """-(t log p + (1 - t) log(1 - p)) for probabilities p; logs clamped at -100 and the
    gradient as in PyTorch, so p of exactly 0 or 1 stays finite. Prefer the logits form."""
    _check_reduction("binary_cross_entropy", reduction)
    target = _target_like(target, prob)
    _check_same_shape("binary_cross_entropy", prob, target)
    try:
        _loss.check_probabilities(prob.device.backend.xp, prob._data)
    except ValueError as exc:
        raise _annotate("binary_cross_entropy", ValueError(
            str(exc).removeprefix("binary_cross_entropy: "))) from None
    return _reduce(_loss.binary_cross_entropy(prob, target), reduction)


@_pytorch_keywords(input="logits")
def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
    """BCE of sigmoid(logits): softplus(x) - x t, computed as x (1 - t) + softplus(-x)
    where x >= 0, so that a confident right answer keeps its small loss (no x - x
    cancellation): finite and accurate for any logit, and its gradient is sigmoid(x) - t."""
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    target = _target_like(target, logits)
    _check_same_shape("binary_cross_entropy_with_logits", logits, target)
    loss = ew.where(logits >= 0, logits * (1 - target) + softplus(-logits),
                    softplus(logits) - logits * target)
    return _reduce(loss, reduction)


@_pytorch_keywords(input="log_probs", target="class_index")
def nll_loss(log_probs, class_index, weight=None, ignore_index=None, reduction="mean"):
    """-log_probs[i, class_index[i]] for a batch of log-probabilities (N, C); or, for
    one example, log-probabilities (C,) and one class index. weight (C,): each class's
    weight (the mean is then over the weights of the examples' classes);
    ignore_index: examples of that class index count for nothing (PyTorch's -100, say)."""
    _check_reduction("nll_loss", reduction)
    if log_probs.ndim == 1:
        return _one_example(partial(nll_loss, weight=weight, ignore_index=ignore_index),
                            "nll_loss", log_probs, class_index, reduction)
    _check_batch_of_rows("nll_loss", "log-probabilities", log_probs)
    class_index = _class_index("nll_loss", class_index, log_probs, ignore_index)
    if weight is not None or ignore_index is not None:
        return _weighted_nll("nll_loss", log_probs, class_index, weight, ignore_index,
                             0.0, reduction)
    if _state.capture is not None:  # a compiled plan checks each run's indices
        class_index = _loss.checked_class_indices(class_index, classes=log_probs.shape[-1])
    rows = arange(log_probs.shape[0], device=log_probs.device)
    return _reduce(-log_probs[rows, class_index], reduction)


@_pytorch_keywords(input="logits", target="class_index")
def cross_entropy(logits, class_index, weight=None, ignore_index=None, label_smoothing=0.0,
                  reduction="mean"):
    """Softmax cross-entropy of logits (N, C) against class indices (N,), with optional
    label smoothing (the target puts 1 - s on the class and s / C on every class), class
    weights and an ignored class index, as PyTorch's (see nll_loss)."""
    if not 0.0 <= label_smoothing <= 1.0:
        raise _annotate("cross_entropy", ValueError(
            f"label_smoothing must be in [0, 1], got {label_smoothing}"))
    _check_reduction("cross_entropy", reduction)
    if logits.ndim == 1:  # one example: logits (C,), one class index, as PyTorch takes
        return _one_example(partial(cross_entropy, weight=weight, ignore_index=ignore_index,
                                    label_smoothing=label_smoothing),
                            "cross_entropy", logits, class_index, reduction)
    _check_batch_of_rows("cross_entropy", "logits", logits)
    class_index = _class_index("cross_entropy", class_index, logits, ignore_index)
    if weight is not None or ignore_index is not None:
        return _weighted_nll("cross_entropy", log_softmax(logits, axis=1), class_index,
                             weight, ignore_index, label_smoothing, reduction)
    attrs = {"label_smoothing": float(label_smoothing)} if label_smoothing else {}
    return _reduce(_loss.cross_entropy(logits, class_index, **attrs), reduction)


def _weighted_nll(name, log_p, class_index, weight, ignore_index, label_smoothing,
                  reduction):
    """PyTorch's loss with class weights w and an ignored index, from log-probabilities:
    (1 - s) w[y] (-log_p[y]) + s / C sum_c w[c] (-log_p[c]) per example (0 where y is
    ignored); "mean" divides each sum by the total weight of the examples' classes."""
    n, classes = log_p.shape
    weight = _class_weights(name, weight, log_p)
    kept = _kept(class_index, ignore_index)
    index = class_index if kept is None else ew.where(kept, class_index, 0)
    if _state.capture is not None:  # a compiled plan checks each run's indices
        index = _loss.checked_class_indices(index, classes=classes)
    if weight is not None:
        example_weight = weight[index]
    else:
        example_weight = ones(n, dtype=log_p.dtype, device=log_p.device)
    if kept is not None:
        example_weight = ew.where(kept, example_weight, 0.0)
    loss = -log_p[arange(n, device=log_p.device), index] * example_weight
    if label_smoothing:
        spread = -(log_p if weight is None else log_p * weight).sum(axis=1)
        spread = spread if kept is None else ew.where(kept, spread, 0.0)
        loss = (1 - label_smoothing) * loss + (label_smoothing / classes) * spread
    if reduction == "mean":
        return _weighted_mean(loss, example_weight)
    return _reduce(loss, reduction)


def _kept(class_index, ignore_index):
    """Which examples count (class index not ignore_index), or None for all. An
    ignore_index the indices' dtype cannot hold (PyTorch's -100 beside uint8 labels)
    equals none of them: compared as is, it would overflow the dtype."""
    if ignore_index is None:
        return None
    dtype = class_index.dtype
    if not np.iinfo(dtype.name).min <= ignore_index <= np.iinfo(dtype.name).max:
        return None
    return class_index != ignore_index


def _weighted_mean(loss, example_weight):
    """loss.sum() / example_weight.sum(), as PyTorch: NaN where no weight was taken (an
    all-ignored batch, 0 / 0) while the gradient is 0. A plain division would send
    1 / 0 into the backward pass, and inf * 0 would make every gradient NaN (one batch
    of padding then poisons the model)."""
    total = example_weight.sum()
    nothing = total == 0
    return loss.sum() / ew.where(nothing, 1.0, total) + ew.where(nothing, math.nan, 0.0)


def _class_weights(name, weight, ref):
    """weight as a tensor of shape (C,) in ref's dtype and on its device, not requiring
    grad where gradients are recorded, or None."""
    if weight is None:
        return None
    if not isinstance(weight, Tensor):
        weight = tensor(weight, dtype=ref.dtype, device=ref.device)
    if tuple(weight.shape) != (ref.shape[1],):
        raise _annotate(name, ShapeError(
            f"weight of shape {tuple(weight.shape)} for {ref.shape[1]} classes (input of "
            f"shape {tuple(ref.shape)}); expected shape ({ref.shape[1]},)"))
    if weight.dtype.kind != "f":
        raise _annotate(name, DTypeError(f"class weights must be floats, got {weight.dtype}"))
    _check_same_device(name, "class weights", weight, ref)
    if weight.dtype != ref.dtype:  # (a float64 weight would make a float32 loss float64)
        raise _annotate(name, DTypeError(
            f"class weights of dtype {weight.dtype} for input of dtype {ref.dtype}; "
            f"give them as {ref.dtype} (weight.astype({str(ref.dtype)!r}))"))
    if weight.requires_grad and _state.grad_enabled:
        # PyTorch's losses have no gradient for their class weights and refuse weights
        # that ask for one (under no_grad they take them): a gradient here would let
        # code run that stops on PyTorch, and would train a weight made trainable by
        # mistake.
        raise _annotate(name, GraphError(
            f"class weights of shape {tuple(weight.shape)} require grad, but the loss is "
            "not differentiable with respect to them, as in PyTorch; pass "
            "weight.detach()"))
    return weight


def _check_same_device(name, what, t, ref):
    """t on ref's device, or an error naming the loss (the indexing inside would be
    blamed otherwise, or a where would fail on its Python number)."""
    if t.device != ref.device:
        raise _annotate(name, DeviceError(
            f"{what} on {t.device} for an input on {ref.device}; move them with "
            f".to({str(ref.device)!r})"))


def _one_example(loss, name, scores, class_index, reduction):
    """loss of a batch of one: scores (C,) as (1, C), a single class index (0-d, or of
    shape (1,) as PyTorch also takes it) as (1,); the loss per example (reduction="none")
    comes back 0-d, as PyTorch gives it."""
    if isinstance(class_index, Tensor):
        shape = tuple(class_index.shape)
    else:
        shape = np.shape(class_index)
    if shape not in ((), (1,)):
        raise _annotate(name, ShapeError(
            f"input of shape {tuple(scores.shape)} is one example: it takes one class "
            f"index, got shape {shape}"))
    index = class_index.reshape(1) if isinstance(class_index, Tensor) \
        else np.reshape(class_index, (1,))
    out = loss(scores.reshape(1, -1), index, reduction=reduction)
    return out.reshape(()) if reduction == "none" else out


def _check_batch_of_rows(name, what, x):
    if x.ndim != 2:
        raise _annotate(name, ShapeError(f"expected {what} of shape (N, C), got "
                                         f"{tuple(x.shape)}"))


def _class_index(name, class_index, ref, ignore_index=None):
    """The class indices as a tensor of shape (N,) beside `ref` (N, C), checked (but for
    those equal to ignore_index); errors name the public loss `name` and the user's
    line."""
    if not isinstance(class_index, Tensor):
        class_index = tensor(class_index, device=ref.device)
    _check_same_device(name, "class indices", class_index, ref)
    if class_index.dtype.kind not in "iu":
        raise _annotate(name, DTypeError(
            f"class indices must be integers, got {class_index.dtype} (class indices of "
            f"shape {tuple(class_index.shape)} for input of shape {tuple(ref.shape)})"))
    if class_index.shape != (ref.shape[0],):
        # A column (N, 1) too, as PyTorch refuses it: taken as labels it would hide a
        # target of another kind (one score per example, an (N, 1) regression target).
        hint = "; flatten a column of labels with .reshape(-1)" \
            if class_index.shape == (ref.shape[0], 1) else ""
        raise _annotate(name, ShapeError(
            f"class indices of shape {tuple(class_index.shape)} for a batch of "
            f"{ref.shape[0]} (input of shape {tuple(ref.shape)}); expected shape "
            f"({ref.shape[0]},){hint}"))
    if ignore_index is not None and not isinstance(ignore_index, (int, np.integer)):
        raise _annotate(name, TypeError(f"ignore_index must be an int, got {ignore_index!r}"))
    data = class_index._data
    if ignore_index is not None:
        data = data[data != ignore_index]
    wrong = _loss.class_indices_outside(class_index.device.backend.xp, data, ref.shape[-1])
    if wrong:
        if ignore_index is not None:
            wrong += f" (besides ignore_index={ignore_index})"
        raise _annotate(name, OutOfBoundsError(wrong))
    return class_index
