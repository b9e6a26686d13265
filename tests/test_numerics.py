"""Numerical corners, against PyTorch: what precision and dtypes do at the edges.

- clip with NumPy scalar bounds keeps the tensor's dtype (the bound acts as the number
  it holds, as a Python number does);
- both binary cross-entropies keep the small losses of confident answers in float32
  (no cancellation in softplus(x) - x t; log1p(-p) for log(1 - p));
- a quotient's gradient with respect to the divisor neither overflows nor underflows
  where the quotient does not (a / b / b, not a / b^2);
- reductions of a 0-d tensor take axis 0 and -1, as PyTorch's do;
- clip takes tensor bounds, with clamp's gradients;
- a 0-d tensor is weak in dtype promotion, as in PyTorch (float32[3] * float64[] is
  float32), unless it is of a higher kind (int64[3] * float32[] is float32).
"""

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn.functional as F

torch = pytest.importorskip("torch")
tF = torch.nn.functional


@pytest.mark.parametrize("lo, hi", [(np.float64(0.5), 2.0), (None, np.float64(2.5)),
                                    (np.float32(0.5), np.float64(2.5)),
                                    (np.array(0.5), np.int64(2))])
def test_clip_with_numpy_scalar_bounds_keeps_the_tensors_dtype(lo, hi):
    x = gg.tensor(np.array([0.0, 1.0, 2.0, 3.0], np.float32), requires_grad=True)
    y = x.clip(lo, hi)
    assert y.dtype == np.float32 and y.numpy().dtype == np.float32
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.numpy().dtype == np.float32
    t = torch.tensor([0.0, 1.0, 2.0, 3.0], requires_grad=True)
    (t.clamp(None if lo is None else float(lo), float(hi)) ** 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy())


def test_clip_of_an_integer_tensor_with_a_numpy_float_bound_is_float32():
    y = gg.tensor([0, 1, 2, 3]).clip(np.float32(0.5), 2)
    assert y.dtype == np.float32 and y.numpy().dtype == np.float32
    assert y.numpy().tolist() == [0.5, 1.0, 2.0, 2.0]


def test_bce_with_logits_keeps_small_losses_of_confident_answers_in_float32():
    z = np.array([0.0, 5.0, 10.0, 15.0, 30.0, -30.0, -10.0, 1e4, -1e4, 2.0], np.float32)
    y = np.array([1, 1, 1, 1, 1, 0, 0, 0, 1, 0.3], np.float32)
    gz = gg.tensor(z, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(gz, gg.tensor(y), reduction="none")
    loss.sum().backward()
    z64, y64 = z.astype(np.float64), y.astype(np.float64)
    exact = np.maximum(z64, 0) - z64 * y64 + np.log1p(np.exp(-np.abs(z64)))
    np.testing.assert_allclose(loss.numpy(), exact, rtol=1e-6)
    tz = torch.tensor(z, requires_grad=True)
    tF.binary_cross_entropy_with_logits(tz, torch.tensor(y), reduction="none").sum().backward()
    np.testing.assert_allclose(gz.grad.numpy(), tz.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_bce_with_logits_second_derivative_matches_torch():
    z = np.array([-3.0, -0.5, 0.0, 0.5, 3.0, 40.0])
    y = np.array([0.0, 1.0, 0.5, 0.0, 1.0, 1.0])
    gz = gg.tensor(z, requires_grad=True)
    (g,) = gg.grad(F.binary_cross_entropy_with_logits(gz, gg.tensor(y)), [gz], create_graph=True)
    (h,) = gg.grad((g * g).sum(), [gz])
    tz = torch.tensor(z, requires_grad=True)
    (tg,) = torch.autograd.grad(tF.binary_cross_entropy_with_logits(tz, torch.tensor(y)), [tz],
                                create_graph=True)
    (th,) = torch.autograd.grad((tg * tg).sum(), [tz])
    np.testing.assert_allclose(g.numpy(), tg.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(h.numpy(), th.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name, ref", [("sum", torch.sum), ("mean", torch.mean),
                                       ("max", torch.amax), ("min", torch.amin)])
@pytest.mark.parametrize("axis", [0, -1, (0,)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions_of_a_0d_tensor_along_axis_0_or_minus_1_as_pytorch(name, ref, axis, keepdims):
    x = gg.tensor(np.array(2.5), requires_grad=True)
    y = getattr(x, name)(axis=axis, keepdims=keepdims)
    t = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    r = ref(t, dim=axis, keepdim=keepdims)
    assert y.shape == tuple(r.shape) and y.item() == r.item()
    (y * 3.0).backward()
    (r * 3.0).backward()
    assert x.grad.item() == t.grad.item()


def test_argmax_and_softmax_of_a_0d_tensor():
    x = gg.tensor(np.array(2.5), requires_grad=True)
    assert x.argmax(axis=0).item() == 0 and x.argmin(axis=-1).item() == 0
    assert F.softmax(x, axis=0).item() == 1.0 and F.log_softmax(x).item() == 0.0
    with pytest.raises(gg.ShapeError):
        x.sum(axis=1)


@pytest.mark.parametrize("dtype, a, b", [("float64", 1e-200, 1e-200), ("float64", 1e200, 1e200),
                                         ("float32", 1e-23, 1e-23), ("float32", 1e30, 1e20)])
def test_the_divisors_gradient_does_not_square_the_divisor_first(dtype, a, b):
    ga = gg.tensor(np.array([a], dtype), requires_grad=True)
    gb = gg.tensor(np.array([b], dtype), requires_grad=True)
    (ga / gb).sum().backward()
    ta = torch.tensor(np.array([a], dtype), requires_grad=True)
    tb = torch.tensor(np.array([b], dtype), requires_grad=True)
    (ta / tb).sum().backward()
    assert np.isfinite(gb.grad.numpy()).all() and gb.grad.numpy()[0] != 0
    np.testing.assert_allclose(gb.grad.numpy(), tb.grad.numpy(), rtol=1e-6)


def test_bce_on_small_probabilities_keeps_float32_precision():
    p = np.array([1e-3, 1e-4, 1e-6, 3e-8, 0.0, 1.0, 0.5], np.float32)
    t = np.array([0, 0, 0, 0, 0, 0, 0.2], np.float32)
    got = F.binary_cross_entropy(gg.tensor(p), gg.tensor(t), reduction="none").numpy()
    want = tF.binary_cross_entropy(torch.tensor(p), torch.tensor(t), reduction="none").numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_clip_takes_tensor_bounds_as_pytorchs_clamp_does():
    # Broadcast against x; the gradient goes to x inside [lo, hi] (bounds included) and
    # to the bound that was taken elsewhere.
    values, lows, weights = [-1.0, 0.5, 3.0, 1.0], [0.0, 0.0, 0.0, 1.0], [1.0, 2.0, 3.0, 4.0]
    x = gg.tensor(values, dtype="float64", requires_grad=True)
    lo = gg.tensor(lows, dtype="float64", requires_grad=True)
    hi = gg.tensor(2.0, dtype="float64", requires_grad=True)
    y = x.clip(lo, hi)
    (y * gg.tensor(weights, dtype="float64")).sum().backward()
    tx, tlo, thi = (torch.tensor(v, dtype=torch.float64, requires_grad=True)
                    for v in (values, lows, 2.0))
    ty = tx.clamp(tlo, thi)
    (ty * torch.tensor(weights, dtype=torch.float64)).sum().backward()
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    for mine, theirs in ((x, tx), (lo, tlo), (hi, thi)):
        np.testing.assert_array_equal(mine.grad.numpy(), theirs.grad.numpy())
    assert x.clip(None, 0.5).numpy().tolist() == x.clip(None, gg.tensor(0.5)).numpy().tolist()



@pytest.mark.parametrize("bounds", [{"min": 0.5}, {"max": 1.5}, {"min": 0.5, "max": 1.5},
                                    {"min": gg.tensor([2.0, 0.0, 0.0])}])
def test_clamp_and_clip_take_the_bounds_by_pytorchs_and_numpys_keywords(bounds):
    values = [-1.0, 1.0, 3.0]
    theirs = {k: torch.tensor(v.numpy()) if isinstance(v, gg.Tensor) else v
              for k, v in bounds.items()}
    want = torch.tensor(values).clamp(**theirs).numpy()
    x = gg.tensor(values)
    for got in (x.clamp(**bounds), x.clip(**bounds), gg.clamp(x, **bounds),
                gg.clip(x, **bounds)):
        np.testing.assert_array_equal(got.numpy(), want)
    np.testing.assert_array_equal(np.clip(np.array(values, np.float32), **{
        k: v.numpy() if isinstance(v, gg.Tensor) else v for k, v in bounds.items()}), want)


def test_a_bound_given_twice_is_refused():
    with pytest.raises(TypeError, match="both lo and min"):
        gg.tensor([1.0]).clip(0.0, min=0.5)


def test_tensor_bounds_that_do_not_fit_the_input_name_clip_and_the_line():
    x = gg.ones((2, 3))
    with pytest.raises(gg.ShapeError, match=r"^clip: bounds that do not fit the input: "
                                            r"shapes \(2, 3\) and \(4,\) .*test_numerics"):
        x.clip(gg.zeros(4), 1.0)
    pytest.importorskip("array_api_strict")
    with pytest.raises(gg.DeviceError, match=r"^clip: a bound on array_api_strict for an "
                                             r"input on cpu.*test_numerics"):
        x.clamp(max=gg.ones(3, device="array_api_strict"))

DTYPES = ["bool", "int32", "int64", "float32", "float64"]


@pytest.mark.parametrize("shapes", [((3,), ()), ((), (3,)), ((), ()), ((3,), (3,))],
                         ids=["shaped-0d", "0d-shaped", "0d-0d", "shaped-shaped"])
def test_mixed_dtypes_meet_where_pytorchs_do(shapes):
    ops = {"mul": (lambda a, b: a * b, lambda a, b: a * b),
           "div": (lambda a, b: a / b, lambda a, b: a / b),
           "maximum": (gg.maximum, torch.maximum),
           "where": (lambda a, b: gg.where(gg.tensor(True), a, b),
                     lambda a, b: torch.where(torch.tensor(True), a, b))}
    for a in DTYPES:
        for b in DTYPES:
            x, y = gg.ones(shapes[0], dtype=a), gg.ones(shapes[1], dtype=b)
            tx = torch.ones(shapes[0], dtype=getattr(torch, a))
            ty = torch.ones(shapes[1], dtype=getattr(torch, b))
            for name, (mine, theirs) in ops.items():
                expected = str(theirs(tx, ty).dtype).removeprefix("torch.")
                assert mine(x, y).dtype.name == expected, (name, a, b)


def test_a_0d_tensor_of_another_float_dtype_gets_its_gradient_in_its_own_dtype():
    x = gg.tensor(np.array([1.0, 2.0, 3.0], np.float32), requires_grad=True)
    w = gg.tensor(np.array(0.5), requires_grad=True)  # float64, 0-d: a weak operand
    y = (x * w).sum()
    y.backward()
    assert (y.dtype, x.grad.dtype, w.grad.dtype) == (np.float32, np.float32, np.float64)
    assert w.grad.item() == 6.0 and x.grad.numpy().tolist() == [0.5, 0.5, 0.5]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # 0 ** -1 is inf, as meant
def test_pows_gradients_at_a_zero_base_are_pytorchs():
    # d(a^b)/db = a^b log a: 0 at a = 0 for b >= 0 (the limit), -inf for b < 0.
    base = [0.0, 0.0, 0.0, 0.0, 2.0, 0.5]
    exponent = [-1.0, -0.5, 0.0, 2.0, -1.0, 0.5]
    a = gg.tensor(base, dtype="float64", requires_grad=True)
    b = gg.tensor(exponent, dtype="float64", requires_grad=True)
    (a ** b).sum().backward()
    ta = torch.tensor(base, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(exponent, dtype=torch.float64, requires_grad=True)
    (ta ** tb).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), ta.grad.numpy())
    np.testing.assert_array_equal(b.grad.numpy(), tb.grad.numpy())


def test_var_and_std_divide_by_n_minus_ddof_zero_by_default_as_numpy():
    x = np.random.default_rng(0).standard_normal((4, 5))
    t = gg.tensor(x)
    np.testing.assert_allclose(t.var().numpy(), np.var(x), rtol=1e-12)
    np.testing.assert_allclose(gg.std(t, axis=0, ddof=1).numpy(), np.std(x, axis=0, ddof=1),
                               rtol=1e-12)
    np.testing.assert_allclose(t.var(dim=1, correction=1, keepdim=True).numpy(),
                               np.var(x, axis=1, ddof=1, keepdims=True), rtol=1e-12)
    assert t.var(unbiased=True).item() == pytest.approx(np.var(x, ddof=1), rel=1e-12)


def test_var_of_float32_far_from_zero_keeps_its_spread():
    # Centred before squaring: E[x^2] - E[x]^2 of values 10,000 +- 1 in float32 is noise.
    x = (10_000 + np.random.default_rng(1).standard_normal(1000)).astype(np.float32)
    assert gg.var(gg.tensor(x)).item() == pytest.approx(np.var(x.astype(np.float64)),
                                                        rel=1e-3)


def test_var_with_no_degrees_of_freedom_left_is_inf_or_nan_as_numpy():
    with np.errstate(all="ignore"):
        assert np.isnan(gg.tensor([3.0]).var(ddof=1).item())  # 0 / 0
        assert gg.tensor([3.0, 4.0]).var(ddof=2).item() == np.inf


def test_var_takes_one_of_ddof_correction_and_unbiased():
    t = gg.tensor([1.0, 2.0])
    with pytest.raises(TypeError, match="give one of ddof=, correction="):
        t.var(ddof=1, correction=1)
    with pytest.raises(TypeError, match="ddof must be a number >= 0"):
        t.std(ddof=-1)


def test_std_of_equal_values_has_a_zero_gradient_as_torchs():
    # sqrt's slope at 0 is infinite and the deviations are 0: sqrt(var) alone gives NaN,
    # which would spread through a training step; PyTorch's std gives 0 there.
    values = np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]])
    x = gg.tensor(values, requires_grad=True)
    x.std(axis=1, ddof=1).sum().backward()
    tx = torch.tensor(values, requires_grad=True)
    tx.std(dim=1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy()[0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    assert np.isnan(gg.tensor([3.0]).std(ddof=1).item())  # no spread to take: still NaN


@pytest.mark.parametrize("method", ["var", "std"])
def test_var_and_std_errors_name_the_function_called_and_the_users_line(method):
    t = gg.tensor([[1.0, 2.0], [3.0, 5.0]])
    call = getattr(t, method)
    with pytest.raises(gg.ShapeError, match=rf"^{method}: axis 2 is out of range .* "
                                            r"\(at test_numerics.py:\d+\)$"):
        call(axis=2)
    with pytest.raises(TypeError, match=rf"^{method}: give axis= or dim=, not both"):
        call(axis=0, dim=0)
    with pytest.raises(TypeError, match=rf"^{method}: correction must be a number >= 0, "
                                        r"got -1 \(at test_numerics.py:\d+\)$"):
        call(correction=-1)


@pytest.mark.parametrize("shape", [(256, 10), (32, 32), (31, 10), (256, 33), (4096, 2)])
@pytest.mark.parametrize("name", ["max", "min"])
def test_max_and_min_over_short_rows_give_numpys_bits_nan_included(shape, name):
    """Short rows of a tall matrix are reduced from a transposed copy (see
    ops.reduction.extremum): the same values, NaN and -0.0 included, as NumPy's."""
    x = np.random.default_rng(7).standard_normal(shape).astype(np.float32)
    x[3, 1], x[5] = np.nan, -0.0
    for axis in (-1, 1):
        for keepdims in (False, True):
            got = getattr(gg.tensor(x), name)(axis=axis, keepdims=keepdims).numpy()
            want = getattr(x, name)(axis=axis, keepdims=keepdims)
            assert got.shape == want.shape
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    logits = gg.tensor(x[6:], requires_grad=True)  # (the softmax's shift takes it too)
    np.testing.assert_allclose(F.log_softmax(logits).numpy(),
                               torch.log_softmax(torch.tensor(x[6:]), -1).numpy(), rtol=1e-6,
                               atol=1e-6)


def test_float16_means_and_variances_over_more_elements_than_float16_counts():
    """70,000 elements: the count itself is past float16's 65,504 (a constant of it was
    inf, and every gradient 0); var and std sum their squares in float32, as PyTorch."""
    values = (np.arange(70_000) % 3).astype(np.float16)
    for reduce in ("mean", "var", "std"):
        mine = gg.tensor(values, requires_grad=True)
        theirs = torch.tensor(values, requires_grad=True)
        out = getattr(mine, reduce)()
        ref = getattr(theirs, reduce)(**({} if reduce == "mean" else {"correction": 0}))
        out.backward()
        ref.backward()
        assert out.dtype == np.float16
        np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-3)
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-2,
                                   atol=1e-7)
        assert np.abs(mine.grad.numpy()).max() > 0
    loss = F.mse_loss(gg.tensor(values, requires_grad=True), gg.zeros(70_000, dtype="float16"))
    assert np.isfinite(loss.numpy())
