"""gpugrad.nn.functional against PyTorch: activations, softmax, and the losses.

Every function is run on random float64 inputs in gpugrad and in
``torch.nn.functional`` (the reference). We compare the value and the gradient of
``sum(output * w)`` (for fixed random weights ``w``) with respect to the differentiable
input, to ``rtol=1e-10``. A second group checks numerical stability in float32: logits
of +-1000 must give finite losses and finite gradients that still match PyTorch.

Expected values come from PyTorch, NumPy or closed forms, never from gpugrad itself.
The whole file is skipped where PyTorch is not installed.
"""

import inspect
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tF = torch.nn.functional

from conftest import device_params  # noqa: E402

import gpugrad as gg  # noqa: E402
import gpugrad.nn as nn  # noqa: E402
import gpugrad.nn.functional as F  # noqa: E402

RTOL = 1e-10
ATOL = 1e-12
REDUCTIONS = ["mean", "sum", "none"]


def values(t):
    """A gpugrad tensor's values as a float64 NumPy array."""
    return np.asarray(t.numpy(), dtype=np.float64)


def leaf(array):
    """The same float64 values as a gpugrad leaf and a torch leaf, both requiring grad."""
    array = np.asarray(array, dtype=np.float64)
    return (gg.tensor(array.copy(), requires_grad=True),
            torch.tensor(array.copy(), requires_grad=True))


def const(array, dtype=np.float64):
    """The same values as a gpugrad and a torch tensor that do not require grad."""
    array = np.asarray(array, dtype=dtype)
    return gg.tensor(array.copy()), torch.tensor(array.copy())


def backprop_both(g_out, t_out, rng):
    """Backward of sum(out * w) for one fixed random w, in both libraries (a scalar out
    gets w = 1.5)."""
    shape = tuple(t_out.shape)
    w = rng.standard_normal(shape) if shape else np.array(1.5)
    (g_out * gg.tensor(w)).sum().backward()
    (t_out * torch.tensor(w)).sum().backward()


def assert_matches(g, t, rtol=RTOL, atol=ATOL):
    """A gpugrad tensor equals a torch tensor: shape and values."""
    expected = t.detach().numpy()
    got = values(g)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------------------
# Activations and softmax, float64
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh"])
def test_activations_match_torch_in_value_and_gradient(name):
    """F.relu/sigmoid/tanh on a (4, 5) input (kept away from relu's kink) match torch."""
    rng = np.random.default_rng(1)
    x = rng.choice([-1.0, 1.0], size=(4, 5)) * rng.uniform(0.2, 3.0, size=(4, 5))
    gx, tx = leaf(x)
    g_fn = getattr(F, name)
    t_fn = {"relu": tF.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}[name]
    gy, ty = g_fn(gx), t_fn(tx)
    assert gy.dtype == gg.float64
    assert_matches(gy, ty)
    backprop_both(gy, ty, rng)
    assert_matches(gx.grad, tx.grad)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [-1, 0, 1, 2])
def test_softmax_and_log_softmax_match_torch_along_every_axis(fn, axis):
    """softmax/log_softmax of a (2, 3, 4) input along each axis: values and gradients."""
    rng = np.random.default_rng(2 + axis)
    gx, tx = leaf(rng.standard_normal((2, 3, 4)) * 3)
    gy = getattr(F, fn)(gx, axis=axis)
    ty = getattr(tF, fn)(tx, dim=axis)
    assert_matches(gy, ty)
    backprop_both(gy, ty, rng)
    assert_matches(gx.grad, tx.grad)


def test_softmax_defaults_to_the_last_axis_and_rows_sum_to_one():
    """F.softmax(x) normalises over axis -1; every row sums to 1 and is positive."""
    x = np.random.default_rng(3).standard_normal((5, 7))
    y = values(F.softmax(gg.tensor(x)))
    expected = np.exp(x - x.max(axis=-1, keepdims=True))
    expected /= expected.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(y.sum(axis=-1), np.ones(5), rtol=1e-12)
    np.testing.assert_allclose(values(F.log_softmax(gg.tensor(x))), np.log(expected),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch_to_the_second_derivative(approximate):
    """F.gelu, exact (through erf) and tanh-approximated: values, gradients and the
    gradient's own gradient (a Hessian-vector product) equal torch's."""
    rng = np.random.default_rng(4)
    gx, tx = leaf(rng.standard_normal((4, 5)) * 2.5)
    v = rng.standard_normal((4, 5))
    gy, ty = F.gelu(gx, approximate=approximate), tF.gelu(tx, approximate=approximate)
    assert_matches(gy, ty)
    (g_grad,) = gg.grad(gy.sum(), [gx], create_graph=True)
    (t_grad,) = torch.autograd.grad(ty.sum(), [tx], create_graph=True)
    assert_matches(g_grad, t_grad)
    (g_hvp,) = gg.grad((g_grad * gg.tensor(v)).sum(), [gx])
    (t_hvp,) = torch.autograd.grad((t_grad * torch.tensor(v)).sum(), [tx])
    assert_matches(g_hvp, t_hvp)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_passes_gradcheck(approximate):
    x = gg.tensor(np.linspace(-4.0, 4.0, 12).reshape(3, 4) + 0.05, requires_grad=True)
    assert gg.gradcheck(lambda t: F.gelu(t, approximate=approximate), [x])


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_keeps_float32_and_matches_torchs_float32(approximate):
    x = np.random.default_rng(5).standard_normal((8, 16)).astype(np.float32) * 3
    gx = gg.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    gy, ty = F.gelu(gx, approximate=approximate), tF.gelu(tx, approximate=approximate)
    assert gy.dtype == gg.float32 and gy.numpy().dtype == np.float32
    # For x << 0 both round 1 + erf(x / sqrt(2)) (or 1 + tanh, and 1 - tanh^2 in the
    # gradient) near 0 to float32's steps of 6e-8, times x (and the inner derivative, up
    # to ~4 for x ~ -5): so far apart, absolutely, and no more.
    np.testing.assert_allclose(gy.numpy(), ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    gy.sum().backward()
    ty.sum().backward()
    assert gx.grad.dtype == gg.float32
    np.testing.assert_allclose(gx.grad.numpy(), tx.grad.numpy(), rtol=1e-6, atol=4e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_compiled_equals_eager(approximate, dtype):
    """Under gg.compile the GELU of a layer and its gradient run from a plan (erf's
    kernel writing into a reused buffer, inside a fused chain): the eager bits."""
    rng = np.random.default_rng(6)
    x = gg.tensor(rng.standard_normal((64, 8)), dtype=dtype)
    w = gg.tensor(rng.standard_normal((8, 8)), dtype=dtype, requires_grad=True)

    def step(x, w):
        y = F.gelu(x @ w, approximate=approximate)
        loss = (y * y).mean()
        (g,) = gg.grad(loss, [w])
        return loss, g

    compiled = gg.compile(step)
    for _ in range(3):
        got = compiled(x, w)
    want = step(x, w)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    if approximate == "none":  # erf runs inside a fused chain, not as an op of its own
        names = [n.name for n in compiled.plan.program.op_nodes()]
        assert "erf" not in names and "fused" in names


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_of_float16_is_computed_in_float32_as_torchs(approximate):
    # For x < 0, 1 + erf(x / sqrt(2)) is a small difference of two numbers near 1: rounded
    # to float16's 11 bits it lost the result (gelu(-4) came out 0, gelu(-3) 8% off).
    # PyTorch computes float16 in float32 and rounds once. Measured over this range:
    # ours within 2 (tanh: 3) float16 ulps of the float64 result, PyTorch's within 6 (3)
    # of it and of ours; before, ours was 2042 ulps off.
    x = np.linspace(-6.0, 6.0, 2001).astype(np.float16)
    got = F.gelu(gg.tensor(x), approximate=approximate)
    assert got.dtype == np.float16
    exact = F.gelu(gg.tensor(x.astype(np.float64)), approximate=approximate).numpy()
    np.testing.assert_array_max_ulp(got.numpy(), exact.astype(np.float16), maxulp=3)
    want = tF.gelu(torch.from_numpy(x), approximate=approximate).numpy()
    np.testing.assert_array_max_ulp(got.numpy(), want, maxulp=6)


@pytest.mark.parametrize("call, name", [
    (lambda: F.softmax(gg.tensor([True, False])), "softmax"),
    (lambda: F.log_softmax(gg.tensor([[True, False]]), axis=1), "log_softmax"),
    (lambda: F.dropout(gg.tensor([1, 2, 3]), p=0.5), "dropout"),
    (lambda: nn.Dropout(0.5)(gg.tensor([1, 2, 3])), "dropout"),
], ids=["softmax-bool", "log_softmax-bool", "dropout-int", "Dropout-int"])
def test_an_input_of_a_dtype_a_function_cannot_take_is_refused_under_its_name(call, name):
    """As PyTorch refuses them, but naming the function called and the line, not an op
    or a random draw inside it."""
    with pytest.raises(gg.DTypeError, match=rf"^{name}: .*\(at test_functional.py:\d+\)"):
        call()


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [0, 1])
def test_softmax_of_an_empty_tensor_is_empty_along_any_axis_as_torchs(name, axis):
    """Along an empty axis there is no maximum to shift by: the result is empty, as
    PyTorch's, not an error blaming a max the user never called."""
    x = gg.zeros((0, 3), requires_grad=True)
    y = getattr(F, name)(x, axis=axis)
    assert y.shape == tuple(getattr(torch, name)(torch.zeros(0, 3), dim=axis).shape) == (0, 3)
    y.sum().backward()
    assert x.grad.shape == (0, 3)


def test_dropout_outside_training_passes_any_dtype_through_as_torchs():
    x = gg.tensor([1, 2, 3])
    assert F.dropout(x, p=0.5, training=False) is x


def test_gelu_refuses_an_unknown_approximation_naming_the_choices():
    x = gg.tensor([1.0])
    with pytest.raises(ValueError, match=r"gelu: approximate must be 'none' or 'tanh', "
                                         r"got 'erf'"):
        F.gelu(x, approximate="erf")
    with pytest.raises(ValueError, match="got True"):
        F.gelu(x, approximate=True)


# --------------------------------------------------------------------------------------
# Losses, float64, every reduction
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss_matches_torch(reduction):
    """mse_loss on (6, 3) predictions: value, shape and gradient for each reduction."""
    rng = np.random.default_rng(10)
    gp, tp = leaf(rng.standard_normal((6, 3)))
    gt, tt = const(rng.standard_normal((6, 3)))
    gl = F.mse_loss(gp, gt, reduction=reduction)
    tl = tF.mse_loss(tp, tt, reduction=reduction)
    assert_matches(gl, tl)
    backprop_both(gl, tl, rng)
    assert_matches(gp.grad, tp.grad)


def test_mse_loss_default_is_the_mean_of_squared_errors():
    """Closed form: mean((p - t)^2) for p = [1, 2, 3], t = [0, 0, 5] is (1 + 4 + 4)/3 = 3."""
    loss = F.mse_loss(gg.tensor([1.0, 2.0, 3.0]), gg.tensor([0.0, 0.0, 5.0]))
    assert loss.shape == ()
    assert loss.item() == pytest.approx(3.0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_matches_torch(reduction):
    """binary_cross_entropy on probabilities in (0.02, 0.98), soft and hard targets."""
    rng = np.random.default_rng(11)
    gp, tp = leaf(rng.uniform(0.02, 0.98, size=(8, 2)))
    target = rng.uniform(0.0, 1.0, size=(8, 2))
    target[:4] = np.round(target[:4])  # half hard labels, half soft ones
    gt, tt = const(target)
    gl = F.binary_cross_entropy(gp, gt, reduction=reduction)
    tl = tF.binary_cross_entropy(tp, tt, reduction=reduction)
    assert_matches(gl, tl)
    backprop_both(gl, tl, rng)
    assert_matches(gp.grad, tp.grad)


def test_binary_cross_entropy_gives_the_lecture_gradient_through_a_sigmoid():
    """Lecture: for a = sigmoid(z) and mean BCE over m examples, dL/dz = (a - y) / m."""
    rng = np.random.default_rng(12)
    z = rng.standard_normal(6)
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    gz = gg.tensor(z, requires_grad=True)
    F.binary_cross_entropy(F.sigmoid(gz), gg.tensor(y)).backward()
    a = 1.0 / (1.0 + np.exp(-z))
    np.testing.assert_allclose(values(gz.grad), (a - y) / 6, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits_matches_torch(reduction):
    """binary_cross_entropy_with_logits on logits of either sign, soft and hard targets."""
    rng = np.random.default_rng(13)
    gz, tz = leaf(rng.standard_normal((5, 3)) * 4)
    target = rng.uniform(0.0, 1.0, size=(5, 3))
    target[:2] = np.round(target[:2])
    gt, tt = const(target)
    gl = F.binary_cross_entropy_with_logits(gz, gt, reduction=reduction)
    tl = tF.binary_cross_entropy_with_logits(tz, tt, reduction=reduction)
    assert_matches(gl, tl)
    backprop_both(gl, tl, rng)
    assert_matches(gz.grad, tz.grad)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.35])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_matches_torch(reduction, label_smoothing):
    """cross_entropy of (7, 4) logits and int64 class indices, with label smoothing."""
    rng = np.random.default_rng(14)
    gz, tz = leaf(rng.standard_normal((7, 4)) * 2)
    classes = rng.integers(0, 4, size=7).astype(np.int64)
    gc, tc = const(classes, dtype=np.int64)
    assert gc.dtype == gg.int64
    gl = F.cross_entropy(gz, gc, label_smoothing=label_smoothing, reduction=reduction)
    tl = tF.cross_entropy(tz, tc, label_smoothing=label_smoothing, reduction=reduction)
    if reduction == "none":
        assert gl.shape == (7,)
    else:
        assert gl.shape == ()
    assert_matches(gl, tl)
    backprop_both(gl, tl, rng)
    assert_matches(gz.grad, tz.grad)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("index", [2, "0-d tensor", "tensor of shape (1,)", "[2]"])
def test_cross_entropy_of_one_example_matches_torch(reduction, label_smoothing, index):
    """Single-example SGD, as the lecture has it: logits (C,) and one class index (also
    in a 1-element vector, as PyTorch takes it)."""
    rng = np.random.default_rng(3)
    gz, tz = leaf(rng.standard_normal(4))
    gi = {"0-d tensor": gg.tensor(2), "tensor of shape (1,)": gg.tensor([2]),
          "[2]": [2]}.get(index, index)
    gl = F.cross_entropy(gz, gi, label_smoothing=label_smoothing, reduction=reduction)
    tl = tF.cross_entropy(tz, torch.tensor(2), label_smoothing=label_smoothing,
                          reduction=reduction)
    assert gl.shape == tuple(tl.shape) == ()
    assert_matches(gl, tl)
    backprop_both(gl, tl, rng)
    assert_matches(gz.grad, tz.grad)
    with pytest.raises(gg.ShapeError, match="one example: it takes one class index"):
        F.cross_entropy(gz, [1, 2])


def test_nll_loss_of_one_example_and_mse_against_a_number():
    rng = np.random.default_rng(5)
    gz, tz = leaf(rng.standard_normal(4))
    assert_matches(F.nll_loss(F.log_softmax(gz), 1),
                   tF.nll_loss(tF.log_softmax(tz, dim=-1), torch.tensor(1)))
    gp, tp = leaf(rng.standard_normal((3, 2)))
    assert_matches(F.mse_loss(gp, 0.5), tF.mse_loss(tp, torch.full((3, 2), 0.5)))


def test_cross_entropy_defaults_to_the_mean_negative_log_likelihood():
    """Closed form: uniform logits over k classes give log(k) whatever the labels; the
    gradient of the mean is (softmax - onehot) / N."""
    logits = gg.tensor(np.zeros((3, 5)), requires_grad=True)
    labels = gg.tensor(np.array([0, 4, 2], dtype=np.int64))
    loss = F.cross_entropy(logits, labels)
    assert loss.item() == pytest.approx(math.log(5), rel=1e-12)
    loss.backward()
    onehot = np.eye(5)[[0, 4, 2]]
    np.testing.assert_allclose(values(logits.grad), (0.2 - onehot) / 3, rtol=1e-12,
                               atol=1e-15)


def test_losses_default_to_the_mean_reduction():
    """Without reduction=, every loss equals its reduction="mean" value."""
    rng = np.random.default_rng(15)
    p = gg.tensor(rng.uniform(0.1, 0.9, size=(4, 3)))
    t = gg.tensor(rng.uniform(0.0, 1.0, size=(4, 3)))
    z = gg.tensor(rng.standard_normal((4, 3)))
    c = gg.tensor(np.array([0, 2, 1, 2], dtype=np.int64))
    pairs = [
        (F.mse_loss(p, t), F.mse_loss(p, t, reduction="mean")),
        (F.binary_cross_entropy(p, t), F.binary_cross_entropy(p, t, reduction="mean")),
        (F.binary_cross_entropy_with_logits(z, t),
         F.binary_cross_entropy_with_logits(z, t, reduction="mean")),
        (F.cross_entropy(z, c), F.cross_entropy(z, c, reduction="mean")),
    ]
    for default, mean in pairs:
        assert default.shape == ()
        assert default.item() == mean.item()


def loss_inputs(loss, rng):
    """An input and a target fit for `loss`, as (gpugrad, torch) pairs: probabilities
    for binary_cross_entropy, log-probabilities for nll_loss, class indices as the
    targets of the class losses."""
    scores = rng.standard_normal((4, 3))
    if loss == "binary_cross_entropy":
        scores = 1 / (1 + np.exp(-scores))
    if loss == "nll_loss":
        scores = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    if loss in ("cross_entropy", "nll_loss"):
        return leaf(scores), const(np.array([0, 2, 1, 2]), dtype=np.int64)
    return leaf(scores), const(rng.uniform(0.0, 1.0, (4, 3)))


LOSSES = ["mse_loss", "l1_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
          "cross_entropy", "nll_loss"]


@pytest.mark.parametrize("loss", LOSSES)
def test_losses_take_pytorchs_keywords_input_and_target(loss):
    """F.loss(input=..., target=...) as PyTorch users write it: torch's value and
    gradient, and the same as the positional call."""
    rng = np.random.default_rng(16)
    (gx, tx), (gy, ty) = loss_inputs(loss, rng)
    got = getattr(F, loss)(input=gx, target=gy, reduction="sum")
    want = getattr(tF, loss)(input=tx, target=ty, reduction="sum")
    assert_matches(got, want)
    got.backward()
    want.backward()
    assert_matches(gx.grad, tx.grad)
    assert got.item() == getattr(F, loss)(gx, gy, reduction="sum").item()


@pytest.mark.parametrize("loss", LOSSES)
def test_a_losss_own_keyword_names_still_work_beside_pytorchs(loss):
    rng = np.random.default_rng(17)
    (gx, _), (gy, _) = loss_inputs(loss, rng)
    first, second = list(inspect.signature(getattr(F, loss)).parameters)[:2]
    positional = getattr(F, loss)(gx, gy).item()
    assert getattr(F, loss)(**{first: gx, second: gy}).item() == positional
    assert getattr(F, loss)(input=gx, **{second: gy}).item() == positional
    assert getattr(F, loss)(gx, target=gy).item() == positional


@pytest.mark.parametrize("loss", LOSSES)
def test_an_input_given_both_by_name_and_as_input_is_a_type_error_naming_the_loss(loss):
    rng = np.random.default_rng(18)
    (gx, _), (gy, _) = loss_inputs(loss, rng)
    first = next(iter(inspect.signature(getattr(F, loss)).parameters))
    for call in (lambda: getattr(F, loss)(gx, gy, input=gx),
                 lambda: getattr(F, loss)(**{first: gx}, input=gx, target=gy)):
        with pytest.raises(TypeError, match=rf"^{loss}: give {first} or input=, not both "
                           r"\(at .*test_functional.py"):
            call()


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_class_indices_given_both_as_class_index_and_target_are_a_type_error(loss):
    rng = np.random.default_rng(19)
    (gx, _), (gy, _) = loss_inputs(loss, rng)
    with pytest.raises(TypeError, match=rf"^{loss}: give class_index or target=, not both"):
        getattr(F, loss)(gx, gy, target=gy)
    with pytest.raises(TypeError, match=rf"^{loss}: give class_index or target=, not both"):
        getattr(F, loss)(input=gx, class_index=gy, target=gy)


@pytest.mark.parametrize("loss", ["mse_loss", "binary_cross_entropy",
                                  "binary_cross_entropy_with_logits", "cross_entropy",
                                  "nll_loss"])
@pytest.mark.parametrize("reduction", ["avg", "Mean", "", None])
def test_an_unknown_reduction_is_a_value_error(loss, reduction):
    """reduction must be one of "mean", "sum", "none"; anything else raises ValueError
    naming the loss and the line."""
    p = gg.tensor([[0.2, 0.7], [0.6, 0.4]])
    if loss in ("cross_entropy", "nll_loss"):
        target = gg.tensor(np.array([0, 1], dtype=np.int64))
    else:
        target = gg.tensor([[0.0, 1.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match=rf"^{loss}: reduction must be one of .* \(at "
                       r".*test_functional.py"):
        getattr(F, loss)(p, target, reduction=reduction)


# --------------------------------------------------------------------------------------
# Numerical stability, float32
# --------------------------------------------------------------------------------------

HUGE = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0]], dtype=np.float32)


def f32_leaf(array):
    array = np.asarray(array, dtype=np.float32)
    return (gg.tensor(array.copy(), requires_grad=True),
            torch.tensor(array.copy(), requires_grad=True))


def assert_finite_and_matches(g, t, rtol=1e-5, atol=1e-6):
    got = values(g)
    assert np.all(np.isfinite(got)), got
    np.testing.assert_allclose(got, t.detach().double().numpy(), rtol=rtol, atol=atol)


def test_binary_cross_entropy_with_logits_is_stable_for_huge_logits():
    """Logits of +-1000 (float32) give a finite loss and gradient, equal to torch's:
    confidently wrong costs exactly 1000, confidently right costs 0."""
    z = np.array([1000.0, -1000.0, 1000.0, -1000.0, 0.0], dtype=np.float32)
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0], dtype=np.float32)
    gz, tz = f32_leaf(z)
    gl = F.binary_cross_entropy_with_logits(gz, gg.tensor(y), reduction="none")
    tl = tF.binary_cross_entropy_with_logits(tz, torch.tensor(y), reduction="none")
    assert gl.dtype == gg.float32
    assert_finite_and_matches(gl, tl)
    np.testing.assert_allclose(values(gl)[:4], [1000.0, 1000.0, 0.0, 0.0], atol=1e-3)
    gl.sum().backward()
    tl.sum().backward()
    assert_finite_and_matches(gz.grad, tz.grad)


def test_binary_cross_entropy_with_logits_of_masked_infinite_logits_has_torch_gradients():
    """Logits masked with -inf or +inf, their losses then dropped by a where(): the
    gradient is torch's, 0 there and finite elsewhere (the branch of the loss that the
    where() inside leaves unused took softplus's gradient as e^(inf - inf), NaN, which
    0 times NaN kept). softplus's own gradient at +inf is 1, as torch's."""
    z = np.array([0.5, -np.inf, 2.0, np.inf, -3.0], dtype=np.float32)
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0], dtype=np.float32)
    kept = np.array([True, False, True, False, True])
    gz, tz = f32_leaf(z)
    gl = gg.where(gg.tensor(kept), F.binary_cross_entropy_with_logits(
        gz, gg.tensor(y), reduction="none"), 0.0).sum()
    tl = torch.where(torch.tensor(kept), tF.binary_cross_entropy_with_logits(
        tz, torch.tensor(y), reduction="none"), 0.0).sum()
    assert_finite_and_matches(gl, tl)
    gl.backward()
    tl.backward()
    assert_finite_and_matches(gz.grad, tz.grad)
    gz, tz = f32_leaf([np.inf, -np.inf, 30.0, -30.0])
    F.softplus(gz).sum().backward()
    tF.softplus(tz).sum().backward()
    assert_finite_and_matches(gz.grad, tz.grad)


def test_logaddexps_gradients_are_torchs_where_both_inputs_are_equal():
    """d/dt logaddexp(t, t) = d/dt (t + log 2) = 1, half from each input, also where the
    output rounds to t (float32 1e30; e^(t - out) gave each input all of it: 2); at the
    same infinity twice NaN, as torch's (it was 2). Second derivatives as torch's."""
    gt, tt = f32_leaf([-np.inf, -3.0, 0.0, 1e30, np.inf])
    gg.logaddexp(gt, gt).backward(gg.ones(5))  # (a sum of -inf and inf would be NaN)
    torch.logaddexp(tt, tt).backward(torch.ones(5))
    np.testing.assert_array_equal(gt.grad.numpy(), tt.grad.numpy())
    np.testing.assert_array_equal(gt.grad.numpy()[1:4], [1.0, 1.0, 1.0])
    x, tx = f32_leaf([0.5, 2.0])
    (g,) = gg.grad(gg.logaddexp(x, gg.tensor([1.0, 2.0])).sum(), [x], create_graph=True)
    (tg,) = torch.autograd.grad(torch.logaddexp(tx, torch.tensor([1.0, 2.0])).sum(), [tx],
                                create_graph=True)
    np.testing.assert_allclose(gg.grad(g.sum(), [x])[0].numpy(),
                               torch.autograd.grad(tg.sum(), [tx])[0].numpy(), rtol=1e-6)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_and_log_softmax_are_stable_for_huge_logits(fn):
    """softmax/log_softmax of rows with +-1000 entries: finite values and gradients that
    match torch (log_softmax of the -1000 entry is about -2000, not -inf)."""
    gx, tx = f32_leaf(HUGE)
    gy = getattr(F, fn)(gx, axis=-1)
    ty = getattr(tF, fn)(tx, dim=-1)
    assert_finite_and_matches(gy, ty)
    w = np.array([[1.0, 2.0, -1.0], [0.5, -0.5, 3.0]], dtype=np.float32)
    (gy * gg.tensor(w)).sum().backward()
    (ty * torch.tensor(w)).sum().backward()
    assert_finite_and_matches(gx.grad, tx.grad)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_is_stable_for_huge_logits(reduction, label_smoothing):
    """cross_entropy with +-1000 logits (right and wrong labels): finite, equal to torch."""
    gz, tz = f32_leaf(HUGE)
    labels = np.array([1, 1], dtype=np.int64)  # wrong for row 0, right for row 1
    gl = F.cross_entropy(gz, gg.tensor(labels), label_smoothing=label_smoothing,
                         reduction=reduction)
    tl = tF.cross_entropy(tz, torch.tensor(labels), label_smoothing=label_smoothing,
                          reduction=reduction)
    assert_finite_and_matches(gl, tl)
    gl.sum().backward()
    tl.sum().backward()
    assert_finite_and_matches(gz.grad, tz.grad)


def test_sigmoid_and_tanh_saturate_without_nans():
    """sigmoid/tanh of +-1000 (float32): exactly the limits, gradients 0, no NaN."""
    gx, tx = f32_leaf([-1000.0, 1000.0])
    s = F.sigmoid(gx)
    np.testing.assert_allclose(values(s), [0.0, 1.0], atol=1e-7)
    s.sum().backward()
    assert np.all(np.isfinite(values(gx.grad)))
    gx2, _ = f32_leaf([-1000.0, 1000.0])
    t = F.tanh(gx2)
    np.testing.assert_allclose(values(t), [-1.0, 1.0], atol=1e-7)
    t.sum().backward()
    np.testing.assert_allclose(values(gx2.grad), [0.0, 0.0], atol=1e-7)


def test_binary_cross_entropy_of_saturated_probabilities_stays_finite():
    """Probabilities of exactly 0 and 1 (what a float32 sigmoid returns for |z| > ~17):
    the loss is finite and equals torch's (logs clamped at -100), and the gradient is
    finite -- 0 where the prediction is exactly right, as in torch -- so one saturated
    output cannot turn a whole training run into NaN."""
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.5])
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    gp, tp = leaf(p)
    gl = F.binary_cross_entropy(gp, gg.tensor(y), reduction="none")
    tl = tF.binary_cross_entropy(tp, torch.tensor(y), reduction="none")
    assert_matches(gl, tl)
    gl.sum().backward()
    tl.sum().backward()
    grad = values(gp.grad)
    assert np.all(np.isfinite(grad)), grad
    np.testing.assert_array_equal(grad[:2], [0.0, 0.0])
    np.testing.assert_allclose(grad[4], tp.grad.numpy()[4], rtol=RTOL)


def test_sigmoid_then_binary_cross_entropy_survives_saturation_in_float32():
    """sigmoid(+-40) is exactly 1 or 0 in float32; BCE on top must keep the gradient
    with respect to the logits finite."""
    gz = gg.tensor(np.array([40.0, -40.0, 40.0, -40.0], dtype=np.float32),
                   requires_grad=True)
    y = gg.tensor(np.array([1.0, 0.0, 0.0, 1.0], dtype=np.float32))
    loss = F.binary_cross_entropy(F.sigmoid(gz), y)
    assert np.isfinite(loss.item())
    loss.backward()
    assert np.all(np.isfinite(values(gz.grad))), values(gz.grad)


# --------------------------------------------------------------------------------------
# Every backend
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", device_params())
def test_losses_run_on_every_device_and_match_torch(device):
    """Each loss (and softmax) with its inputs on the device: the result and the
    gradient stay there and equal torch's float64 values."""
    rng = np.random.default_rng(40)
    z = rng.standard_normal((5, 3)) * 2
    prob = rng.uniform(0.05, 0.95, size=(5, 3))
    target = rng.uniform(0.0, 1.0, size=(5, 3))
    classes = np.array([0, 2, 1, 1, 2], dtype=np.int64)
    cases = [
        (lambda a: F.mse_loss(a, gg.tensor(target, device=device)),
         lambda a: tF.mse_loss(a, torch.tensor(target)), z),
        (lambda a: F.binary_cross_entropy(a, gg.tensor(target, device=device)),
         lambda a: tF.binary_cross_entropy(a, torch.tensor(target)), prob),
        (lambda a: F.binary_cross_entropy_with_logits(a, gg.tensor(target, device=device)),
         lambda a: tF.binary_cross_entropy_with_logits(a, torch.tensor(target)), z),
        (lambda a: F.cross_entropy(a, gg.tensor(classes, device=device),
                                   label_smoothing=0.1),
         lambda a: tF.cross_entropy(a, torch.tensor(classes), label_smoothing=0.1), z),
        (lambda a: (F.softmax(a) * gg.tensor(target, device=device)).sum(),
         lambda a: (tF.softmax(a, dim=-1) * torch.tensor(target)).sum(), z),
    ]
    for g_fn, t_fn, x in cases:
        gx = gg.tensor(x.copy(), device=device, requires_grad=True)
        tx = torch.tensor(x.copy(), requires_grad=True)
        gl, tl = g_fn(gx), t_fn(tx)
        assert gl.device == device
        assert_matches(gl, tl)
        gl.backward()
        tl.backward()
        assert gx.grad.device == device
        assert_matches(gx.grad, tx.grad)


@pytest.mark.parametrize("probabilities, example", [([1.5, 0.2], "1.5"), ([0.5, float("nan")],
                                                                          "nan")])
def test_bce_on_probabilities_refuses_values_outside_0_1_eagerly_and_compiled(
        probabilities, example):
    # As PyTorch: outside [0, 1] the loss would be silently wrong (negative for 1.5), and
    # a NaN would vanish into the clamped log.
    target = gg.tensor([1.0, 0.0])
    with pytest.raises(ValueError, match=rf"^binary_cross_entropy: probabilities must be in "
                       rf"\[0, 1\]; 1 of 2 are not, e.g. {example} .*test_functional.py"):
        F.binary_cross_entropy(gg.tensor(probabilities), target)
    step = gg.compile(F.binary_cross_entropy)
    good = step(gg.tensor([0.5, 0.2]), target)
    assert good.item() == F.binary_cross_entropy(gg.tensor([0.5, 0.2]), target).item()
    with pytest.raises(ValueError, match="probabilities must be in"):
        step(gg.tensor(probabilities), target)  # the plan checks every run's values
    assert F.binary_cross_entropy(gg.tensor([0.0, 1.0]), target).item() == 100.0  # the ends


# --- one_hot, dropout: PyTorch's spellings ----------------------------------------------
def test_one_hot_matches_torch_and_takes_its_class_count_from_the_largest_index():
    labels = np.array([[0, 3], [2, 2]])
    for num_classes in (-1, 6):
        got = F.one_hot(gg.tensor(labels), num_classes)
        want = tF.one_hot(torch.from_numpy(labels), num_classes).numpy()
        assert got.dtype == np.int64 and got.shape == want.shape
        np.testing.assert_array_equal(got.numpy(), want)
    assert F.one_hot(gg.tensor(np.zeros(0, np.int64)), 3).shape == (0, 3)


def test_one_hot_refuses_indices_outside_the_classes_floats_and_guessing_from_nothing():
    with pytest.raises(gg.OutOfBoundsError, match=r"one_hot: class indices must be in \[0, 3"):
        F.one_hot(gg.tensor([0, 3]), 3)
    with pytest.raises(gg.OutOfBoundsError, match="got values from -1"):
        F.one_hot(gg.tensor([-1, 2]), 3)
    with pytest.raises(gg.DTypeError, match="one_hot: class indices must be integers"):
        F.one_hot(gg.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="give num_classes"):
        F.one_hot(gg.tensor(np.zeros(0, np.int64)))


def test_functional_dropout_scales_what_it_keeps_and_is_the_identity_outside_training():
    gg.manual_seed(0)
    x = gg.ones(200, 50, requires_grad=True)
    assert F.dropout(x, 0.3, training=False) is x and F.dropout(x, 0.0) is x
    y = F.dropout(x, 0.3)
    kept = y.numpy() != 0
    assert abs(kept.mean() - 0.7) < 0.02  # 10,000 draws: 0.02 is 4.4 standard deviations
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy() != 0, kept)  # no gradient where dropped
    assert not F.dropout(x, 1.0).numpy().any()
    for p in (-0.1, 1.5, "0.5", None):
        with pytest.raises(ValueError, match="dropout: dropout probability must be a number"):
            F.dropout(x, p)


# --- class weights and an ignored class index, as PyTorch's -------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("options", [
    {"weight": True}, {"ignore_index": 1}, {"weight": True, "ignore_index": -100}])
def test_cross_entropy_with_class_weights_or_an_ignored_index_matches_torch(
        options, smoothing, reduction):
    rng = np.random.default_rng(7)
    logits = rng.standard_normal((6, 4))
    labels = np.array([0, 1, 3, -100, 1, 2]) if options.get("ignore_index") == -100 \
        else np.array([0, 1, 3, 2, 1, 2])
    weight = rng.uniform(0.2, 2.0, 4) if options.get("weight") else None
    ignore = options.get("ignore_index")
    x = gg.tensor(logits, requires_grad=True)
    got = F.cross_entropy(x, labels, weight=weight, ignore_index=ignore,
                          label_smoothing=smoothing, reduction=reduction)
    xt = torch.tensor(logits, requires_grad=True)
    want = tF.cross_entropy(xt, torch.from_numpy(labels),
                            weight=None if weight is None else torch.from_numpy(weight),
                            ignore_index=-100 if ignore is None else ignore,
                            label_smoothing=smoothing, reduction=reduction)
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-12)
    g = rng.standard_normal(want.shape)
    (got * gg.tensor(g)).sum().backward()
    (want * torch.from_numpy(g)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_nll_loss_with_weights_and_ignore_index_matches_torch_also_for_one_example():
    rng = np.random.default_rng(3)
    log_p = np.log(rng.dirichlet(np.ones(3), size=5))
    labels, weight = np.array([2, 0, 0, 1, 2]), np.array([0.5, 1.0, 3.0])
    got = F.nll_loss(gg.tensor(log_p), labels, weight=weight, ignore_index=0)
    want = tF.nll_loss(torch.from_numpy(log_p), torch.from_numpy(labels),
                       weight=torch.from_numpy(weight), ignore_index=0)
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    one = F.cross_entropy(gg.tensor(log_p[0]), 2, weight=weight, reduction="none")
    assert one.shape == () and one.item() == pytest.approx(tF.cross_entropy(
        torch.from_numpy(log_p[0]), torch.tensor(2), weight=torch.from_numpy(weight),
        reduction="none").item(), rel=1e-12)


def test_a_batch_whose_every_example_is_ignored_has_a_nan_mean_as_in_torch():
    loss = F.cross_entropy(gg.randn(2, 3), [-100, -100], ignore_index=-100)
    assert np.isnan(loss.item())


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_an_all_ignored_batch_has_a_nan_mean_yet_zero_gradients_as_in_torch(weighted,
                                                                           smoothing):
    # A batch of padding only: PyTorch's mean is 0 / 0, but its backward pass writes
    # nothing for ignored examples, so one such batch leaves the model as it was.
    rng = np.random.default_rng(11)
    logits, labels = rng.standard_normal((3, 4)), np.array([-100, -100, -100])
    weight = rng.uniform(0.5, 2.0, 4) if weighted else None
    x = gg.tensor(logits, requires_grad=True)
    got = F.cross_entropy(x, labels, weight=weight, ignore_index=-100,
                          label_smoothing=smoothing)
    got.backward()
    xt = torch.tensor(logits, requires_grad=True)
    want = tF.cross_entropy(xt, torch.from_numpy(labels), ignore_index=-100,
                            weight=None if weight is None else torch.from_numpy(weight),
                            label_smoothing=smoothing)
    want.backward()
    assert np.isnan(got.item()) and np.isnan(want.item())
    np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32"])
def test_an_ignore_index_the_labels_dtype_cannot_hold_ignores_nothing(dtype):
    # torch's -100 beside uint8 labels: no label equals it, so the loss is the one
    # without ignore_index (where comparing in uint8 overflowed).
    rng = np.random.default_rng(12)
    logits, labels = rng.standard_normal((4, 3)), np.array([0, 2, 1, 2])
    got = F.cross_entropy(gg.tensor(logits), gg.tensor(labels.astype(dtype)),
                          ignore_index=-100 if dtype != "int8" else 200)
    want = tF.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels))
    assert got.item() == pytest.approx(want.item(), rel=1e-12)


def test_class_indices_or_weights_on_another_device_name_the_loss():
    logits = gg.tensor(np.zeros((2, 3)), device="array_api_strict")
    with pytest.raises(gg.DeviceError, match="cross_entropy: class indices on cpu"):
        F.cross_entropy(logits, gg.tensor([0, 1]), ignore_index=-100)
    with pytest.raises(gg.DeviceError, match="nll_loss: class weights on cpu"):
        F.nll_loss(logits, [0, 1], weight=gg.tensor([1.0, 2.0, 3.0]))


@pytest.mark.parametrize("loss", ["mse_loss", "l1_loss", "binary_cross_entropy",
                                  "binary_cross_entropy_with_logits"])
def test_a_target_on_another_device_names_the_loss_not_an_op_inside_it(loss):
    pytest.importorskip("array_api_strict")
    x = gg.full((2, 3), 0.5)
    target = gg.full((2, 3), 0.5, device="array_api_strict")
    with pytest.raises(gg.DeviceError, match=rf"^{loss}: input of shape \(2, 3\) on cpu "
                                             r"and target of shape \(2, 3\) on "
                                             r"array_api_strict.*test_functional.py"):
        getattr(F, loss)(x, target)


@pytest.mark.parametrize("call, name, which", [
    (lambda x, s: F.layer_norm(x, (3,), weight=gg.ones(3, device=s)), "layer_norm",
     "weight on array_api_strict"),
    (lambda x, s: nn.LayerNorm(3).to(s)(x), "layer_norm", "weight on array_api_strict, "
     "bias on array_api_strict"),
    (lambda x, s: nn.BatchNorm1d(3).to(s)(x), "BatchNorm1d", "weight on array_api_strict, "
     "bias on array_api_strict, running_mean on array_api_strict"),
], ids=["layer_norm", "LayerNorm", "BatchNorm1d"])
def test_a_norms_parameters_on_another_device_name_the_norm(call, name, which):
    pytest.importorskip("array_api_strict")
    with pytest.raises(gg.DeviceError, match=rf"^{name}: input on cpu with {which}.*"
                                             r"test_functional.py"):
        call(gg.ones((2, 3)), "array_api_strict")


def test_a_layer_norms_numpy_weight_and_bias_are_taken_as_any_ops_argument():
    # A NumPy array's .device is the string "cpu", never a gpugrad device: not refused as
    # "on another device" (the ops inside take it as they take NumPy arguments).
    x = gg.randn(2, 3)
    weight, bias = np.array([1.0, 2.0, 3.0], np.float32), np.array([0.5, 0.0, -1.0], np.float32)
    got = F.layer_norm(x, (3,), weight=weight, bias=bias)
    want = F.layer_norm(x, (3,), weight=gg.tensor(weight), bias=gg.tensor(bias))
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_class_weights_and_ignore_index_are_checked():
    logits = gg.randn(3, 4)
    with pytest.raises(gg.ShapeError, match=r"cross_entropy: weight of shape \(3,\) for 4 "
                       "classes"):
        F.cross_entropy(logits, [0, 1, 2], weight=[1.0, 1.0, 1.0])
    with pytest.raises(gg.OutOfBoundsError, match=r"got values from -1 .*besides "
                       "ignore_index=-100"):
        F.cross_entropy(logits, [0, -1, -100], ignore_index=-100)
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        F.nll_loss(logits, [0, 1, 2], ignore_index=0.5)
    with pytest.raises(gg.DTypeError, match="class weights must be floats"):
        F.cross_entropy(logits, [0, 1, 2], weight=gg.tensor([1, 2, 3, 4]))


def test_a_compiled_weighted_loss_checks_each_runs_indices_and_equals_eager():
    weight = gg.tensor([1.0, 2.0, 0.5])

    def loss(x, y):
        return F.cross_entropy(x, y, weight=weight, ignore_index=-1)

    compiled = gg.compile(loss)
    x = gg.randn(4, 3)
    for labels in ([0, 1, 2, -1], [2, -1, -1, 0]):
        y = gg.tensor(labels)
        assert compiled(x, y).item() == loss(x, y).item()
    with pytest.raises(gg.OutOfBoundsError, match="class indices must be in"):
        compiled(x, gg.tensor([0, 5, 1, -1]))


@pytest.mark.parametrize("device", device_params())
def test_weighted_losses_one_hot_and_clone_run_on_every_backend_as_on_numpy(device):
    rng = np.random.default_rng(5)
    logits, labels = rng.standard_normal((5, 3)), np.array([0, 2, -1, 1, 2])
    weight = np.array([0.5, 1.0, 2.0])

    def run(where):
        x = gg.tensor(logits, device=where, requires_grad=True)
        loss = F.cross_entropy(x, gg.tensor(labels, device=where),
                               weight=gg.tensor(weight, device=where), ignore_index=-1,
                               label_smoothing=0.1)
        (loss * 2).backward()
        hot = F.one_hot(gg.tensor(labels[labels >= 0], device=where), 4)
        return loss.numpy(), x.grad.numpy(), hot.numpy(), x.clone().numpy()

    for got, want in zip(run(device), run("cpu"), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_class_weights_of_another_float_dtype_are_refused_as_torch_refuses_them():
    logits = gg.randn(3, 4)  # float32
    with pytest.raises(gg.DTypeError, match="class weights of dtype float64 for input of "
                       "dtype float32"):
        F.cross_entropy(logits, [0, 1, 2], weight=gg.tensor(np.ones(4)))
    as_list = F.cross_entropy(logits, [0, 1, 2], weight=[1.0, 2.0, 1.0, 1.0])
    assert as_list.dtype == np.float32  # numbers take the input's dtype


# The ways a batch of class indices reaches a loss: functions, modules, a compiled
# function, and the weighted path (with ignore_index), each as gpugrad and PyTorch.
CLASS_INDEX_LOSSES = {
    "cross_entropy": (F.cross_entropy, tF.cross_entropy),
    "nll_loss": (F.nll_loss, tF.nll_loss),
    "CrossEntropyLoss": (nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()),
    "NLLLoss": (nn.NLLLoss(), torch.nn.NLLLoss()),
    "compiled cross_entropy": (gg.compile(lambda x, y: F.cross_entropy(x, y)),
                               tF.cross_entropy),
    "weighted, ignore_index": (
        lambda x, y: F.cross_entropy(x, y, weight=gg.tensor([1.0, 2.0, 0.5]),
                                     ignore_index=-100),
        lambda x, y: tF.cross_entropy(x, y, weight=torch.tensor([1.0, 2.0, 0.5]))),
}


@pytest.mark.parametrize("loss", CLASS_INDEX_LOSSES, ids=str)
def test_a_column_of_class_indices_is_refused_as_torch_refuses_it(loss):
    # Class indices (N, 1) for logits (N, C): PyTorch refuses them ("multi-target not
    # supported"); taken as labels, they would hide a target of another kind.
    ours, theirs = CLASS_INDEX_LOSSES[loss]
    logits = np.random.default_rng(2).standard_normal((4, 3)).astype(np.float32)
    labels = np.array([[0], [2], [1], [1]])
    with pytest.raises(RuntimeError, match="0D or 1D target tensor expected"):
        theirs(torch.from_numpy(logits), torch.from_numpy(labels))
    name = "nll_loss" if "nll" in loss.lower() else "cross_entropy"
    with pytest.raises(gg.ShapeError, match=(
            rf"{name}: class indices of shape \(4, 1\) for a batch of 4 \(input of shape "
            r"\(4, 3\)\); expected shape \(4,\); flatten a column of labels with "
            r"\.reshape\(-1\) \(at test_functional.py:\d+\)")):
        ours(gg.tensor(logits), gg.tensor(labels))
    flat = ours(gg.tensor(logits), gg.tensor(labels[:, 0]))  # flattened: torch's loss
    want = theirs(torch.from_numpy(logits), torch.from_numpy(labels[:, 0]))
    assert flat.item() == pytest.approx(want.item(), rel=1e-6)


@pytest.mark.parametrize("name, options", [
    ("cross_entropy", {}), ("cross_entropy", {"ignore_index": 1}),
    ("cross_entropy", {"label_smoothing": 0.2}), ("cross_entropy", {"reduction": "none"}),
    ("nll_loss", {}), ("nll_loss", {"ignore_index": 1}), ("nll_loss", {"reduction": "sum"}),
], ids=str)
def test_class_weights_that_require_grad_are_refused_as_torch_refuses_them(name, options):
    # PyTorch has no gradient for a loss's class weights: weights that require grad are
    # a RuntimeError, whether or not the input requires grad; under no_grad both take
    # them (the same loss).
    ours, theirs = getattr(F, name), getattr(tF, name)
    logits = np.random.default_rng(4).standard_normal((4, 3))
    labels, weight = np.array([0, 2, 1, 1]), np.array([0.5, 2.0, 1.5])
    tw = torch.tensor(weight, requires_grad=True)
    for needs_grad in (True, False):
        with pytest.raises(RuntimeError, match="not differentiable with respect to "
                           "argument 'weight'"):
            theirs(torch.tensor(logits, requires_grad=needs_grad),
                   torch.from_numpy(labels), weight=tw, **options)
        gw = gg.tensor(weight, requires_grad=True)
        with pytest.raises(gg.GraphError, match=(
                rf"{name}: class weights of shape \(3,\) require grad, but the loss is not "
                r"differentiable with respect to them, as in PyTorch; pass "
                r"weight\.detach\(\) \(at test_functional.py:\d+\)")):
            ours(gg.tensor(logits, requires_grad=needs_grad), labels, weight=gw, **options)
        assert gw.grad is None
    module = {"cross_entropy": nn.CrossEntropyLoss, "nll_loss": nn.NLLLoss}[name]
    with pytest.raises(gg.GraphError, match="require grad"):  # the loss modules too
        module(weight=gw)(gg.tensor(logits), labels)
    with pytest.raises(gg.GraphError, match="require grad"):  # and one example (C,)
        ours(gg.tensor(logits[0]), 2, weight=gw)
    with torch.no_grad():
        want = theirs(torch.from_numpy(logits), torch.from_numpy(labels), weight=tw,
                      **options)
    with gg.no_grad():
        got = ours(gg.tensor(logits), labels, weight=gw, **options)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)
    detached = ours(gg.tensor(logits), labels, weight=gw.detach(), **options)
    np.testing.assert_allclose(detached.numpy(), want.numpy(), rtol=1e-12)
