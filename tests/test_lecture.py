"""The backpropagation lecture's worked examples, reproduced with gpugrad.

Every expected number here comes from the lecture notes, a closed form, NumPy, or a
central finite difference computed in float64 with plain Python math -- never from
gpugrad itself.
"""

import math

import numpy as np
import pytest

import gpugrad as gg


def values(t):
    """The tensor's values as a float64 NumPy array (for comparisons)."""
    return np.asarray(t.numpy(), dtype=np.float64)


def scalar(v, dtype=np.float32):
    """A 0-d leaf tensor that requires grad."""
    return gg.tensor(np.asarray(v, dtype=dtype), requires_grad=True)


def py_sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


# ---------------------------------------------------------------------------
# Worked circuit 1: f(x, y, z) = (x + y) z
# ---------------------------------------------------------------------------


def test_add_then_multiply_circuit_gives_the_lecture_numbers():
    """f = (x+y)z at x=-2, y=5, z=-4: df/dx = -4, df/dy = -4, df/dz = 3, f = -12."""
    x = gg.tensor(-2.0, requires_grad=True)
    y = gg.tensor(5.0, requires_grad=True)
    z = gg.tensor(-4.0, requires_grad=True)

    q = x + y
    f = q * z
    f.backward()

    assert f.item() == pytest.approx(-12.0)
    assert x.grad.item() == pytest.approx(-4.0)
    assert y.grad.item() == pytest.approx(-4.0)
    assert z.grad.item() == pytest.approx(3.0)


# ---------------------------------------------------------------------------
# Worked circuit 2: the sigmoid neuron
# ---------------------------------------------------------------------------

LECTURE_DX = [0.393, -0.590]
LECTURE_DW = [-0.197, -0.393, 0.197]


@pytest.mark.parametrize(
    "sigmoid",
    [
        pytest.param(lambda z: z.sigmoid(), id="method"),
        pytest.param(lambda z: 1.0 / (1.0 + (-z).exp()), id="written-out"),
    ],
)
def test_sigmoid_neuron_gives_the_lecture_numbers(sigmoid):
    """f = sigmoid(w0 x0 + w1 x1 + w2) at w=[2,-3,-3], x=[-1,-2], one scalar per input."""
    w0, w1, w2 = scalar(2.0), scalar(-3.0), scalar(-3.0)
    x0, x1 = scalar(-1.0), scalar(-2.0)

    f = sigmoid(w0 * x0 + w1 * x1 + w2)
    f.backward()

    assert f.item() == pytest.approx(py_sigmoid(1.0), abs=1e-6)
    dx = [x0.grad.item(), x1.grad.item()]
    dw = [w0.grad.item(), w1.grad.item(), w2.grad.item()]
    np.testing.assert_allclose(dx, LECTURE_DX, atol=5e-4)  # the lecture's 3 decimals
    np.testing.assert_allclose(dw, LECTURE_DW, atol=5e-4)


def test_sigmoid_neuron_vectorised_gives_the_lecture_numbers():
    """The same neuron with w and x as vectors: z = w[:2] . x + w[2]."""
    w = gg.tensor([2.0, -3.0, -3.0], requires_grad=True)
    x = gg.tensor([-1.0, -2.0], requires_grad=True)

    f = ((w[0:2] * x).sum() + w[2]).sigmoid()
    f.backward()

    assert x.grad.shape == (2,)
    assert w.grad.shape == (3,)
    np.testing.assert_allclose(values(x.grad), LECTURE_DX, atol=5e-4)
    np.testing.assert_allclose(values(w.grad), LECTURE_DW, atol=5e-4)


# ---------------------------------------------------------------------------
# Worked circuit 3: the staged function
# ---------------------------------------------------------------------------


def staged_f_python(x, y):
    """f(x,y) = (x + sigmoid(y)) / (sigmoid(x) + (x+y)^2), in float64 Python math."""
    return (x + py_sigmoid(y)) / (py_sigmoid(x) + (x + y) ** 2)


def central_difference(f, x, y, h=1e-6):
    """(df/dx, df/dy) by central differences in float64."""
    dfdx = (f(x + h, y) - f(x - h, y)) / (2 * h)
    dfdy = (f(x, y + h) - f(x, y - h)) / (2 * h)
    return dfdx, dfdy


def staged_f_in_stages(x, y):
    """The lecture's staged forward pass: every intermediate is its own gate."""
    sigy = 1.0 / (1.0 + (-y).exp())  # sigmoid in the numerator
    num = x + sigy
    sigx = 1.0 / (1.0 + (-x).exp())  # sigmoid in the denominator
    xpy = x + y
    xpysqr = xpy**2
    den = sigx + xpysqr
    invden = 1.0 / den
    return num * invden


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-7), (np.float32, 1e-4)])
def test_staged_function_gradient_matches_finite_differences(dtype, rtol):
    """The staged f at x=3, y=-4: value and gradient agree with float64 central differences."""
    x, y = scalar(3.0, dtype), scalar(-4.0, dtype)

    f = staged_f_in_stages(x, y)
    f.backward()

    expected_dx, expected_dy = central_difference(staged_f_python, 3.0, -4.0)
    assert f.item() == pytest.approx(staged_f_python(3.0, -4.0), rel=rtol)
    assert x.grad.item() == pytest.approx(expected_dx, rel=rtol)
    assert y.grad.item() == pytest.approx(expected_dy, rel=rtol)


def test_staged_function_with_sigmoid_method_matches_the_staged_version():
    """Writing sigmoid as a single op gives the same gradient as the written-out gates."""
    x, y = scalar(3.0, np.float64), scalar(-4.0, np.float64)

    f = (x + y.sigmoid()) / (x.sigmoid() + (x + y) ** 2)
    f.backward()

    expected_dx, expected_dy = central_difference(staged_f_python, 3.0, -4.0)
    assert x.grad.item() == pytest.approx(expected_dx, rel=1e-7)
    assert y.grad.item() == pytest.approx(expected_dy, rel=1e-7)


# ---------------------------------------------------------------------------
# Gate intuition
# ---------------------------------------------------------------------------


def test_add_gate_distributes_the_upstream_gradient_unchanged():
    """d(x+y): both inputs receive the upstream gradient as it is."""
    x, y = scalar(3.0), scalar(-4.0)
    (x + y).backward(gg.tensor(2.5))
    assert x.grad.item() == pytest.approx(2.5)
    assert y.grad.item() == pytest.approx(2.5)


def test_mul_gate_swaps_its_inputs():
    """d(x*y): x receives upstream * y, y receives upstream * x."""
    x, y = scalar(3.0), scalar(-4.0)
    (x * y).backward(gg.tensor(2.0))
    assert x.grad.item() == pytest.approx(2.0 * -4.0)
    assert y.grad.item() == pytest.approx(2.0 * 3.0)


def test_max_gate_routes_the_gradient_to_the_larger_input():
    """gg.maximum(x, y): the larger input gets all the upstream gradient, the other none."""
    x, y = scalar(3.0), scalar(-4.0)
    gg.maximum(x, y).backward(gg.tensor(5.0))
    assert x.grad.item() == pytest.approx(5.0)
    assert y.grad.item() == pytest.approx(0.0)


def test_max_gate_routes_elementwise():
    """Elementwise maximum routes each element's gradient to whichever input won there."""
    a_np = np.array([1.0, 5.0, -2.0, 7.0])
    b_np = np.array([2.0, 3.0, -3.0, 8.0])
    a = gg.tensor(a_np, requires_grad=True)
    b = gg.tensor(b_np, requires_grad=True)
    upstream = np.array([1.0, 10.0, 100.0, 1000.0])

    gg.maximum(a, b).backward(gg.tensor(upstream))

    np.testing.assert_allclose(values(a.grad), np.where(a_np > b_np, upstream, 0.0))
    np.testing.assert_allclose(values(b.grad), np.where(b_np > a_np, upstream, 0.0))


def test_gradients_of_a_value_used_twice_add_up():
    """x*x uses x twice; the two paths' gradients add: d(x^2)/dx = x + x."""
    x = scalar(3.0)
    (x * x).backward()
    assert x.grad.item() == pytest.approx(6.0)


def test_gradients_from_several_consumers_add_up():
    """x feeds a mul, an add and a max gate: df/dx is the sum over the three paths."""
    x, y = scalar(3.0), scalar(1.0)
    f = x * y + x + gg.maximum(x, y)  # paths: y, 1, 1 (x is the larger)
    f.backward()
    assert x.grad.item() == pytest.approx(1.0 + 1.0 + 1.0)
    assert y.grad.item() == pytest.approx(3.0)  # only the mul path; max routed to x


def test_intermediate_value_used_twice_adds_up():
    """q = x+y feeds both factors of q*q, so df/dx = df/dy = 2q."""
    x, y = scalar(2.0), scalar(5.0)
    q = x + y
    (q * q).backward()
    assert x.grad.item() == pytest.approx(14.0)
    assert y.grad.item() == pytest.approx(14.0)


# ---------------------------------------------------------------------------
# Logistic regression with binary cross-entropy, written out by hand
# ---------------------------------------------------------------------------


def bce_by_hand(a, y):
    """Per-example binary cross-entropy -(y log a + (1-y) log(1-a)) in gpugrad ops."""
    return -(y * a.log() + (1.0 - y) * (1.0 - a).log())


def logistic_data(m=8, n=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, n))
    y = (rng.random(size=(m, 1)) < 0.5).astype(np.float64)
    w = rng.normal(size=(n, 1))
    b = np.array(0.3)
    return X, y, w, b


def numpy_forward(X, w, b):
    return 1.0 / (1.0 + np.exp(-(X @ w + b)))


def test_logistic_regression_single_example_gradients():
    """One example: dz = a - y, dw = (a - y) x, db = a - y."""
    X, y, w_np, b_np = logistic_data(m=1)
    X_t, y_t = gg.tensor(X), gg.tensor(y)
    w = gg.tensor(w_np, requires_grad=True)
    b = gg.tensor(b_np, requires_grad=True)

    z = X_t @ w + b
    a = z.sigmoid()
    loss = bce_by_hand(a, y_t).sum()
    dz, dw, db = gg.grad(loss, [z, w, b])

    a_np = numpy_forward(X, w_np, b_np)
    np.testing.assert_allclose(values(dz), a_np - y, rtol=1e-10)
    np.testing.assert_allclose(values(dw), (a_np - y).item() * X.T, rtol=1e-10)
    np.testing.assert_allclose(values(db), (a_np - y).item(), rtol=1e-10)


def test_logistic_regression_batch_gradients_match_numpy_formulas():
    """A batch of m examples and the 1/m mean: dz = (a - y)/m per example,
    dw = X^T (a - y) / m, db = mean(a - y)."""
    X, y, w_np, b_np = logistic_data(m=8, n=3)
    m = X.shape[0]
    X_t, y_t = gg.tensor(X), gg.tensor(y)
    w = gg.tensor(w_np, requires_grad=True)
    b = gg.tensor(b_np, requires_grad=True)

    z = X_t @ w + b
    a = z.sigmoid()
    loss = bce_by_hand(a, y_t).mean()
    (dz,) = gg.grad(loss, [z], retain_graph=True)
    loss.backward()

    a_np = numpy_forward(X, w_np, b_np)
    expected_loss = -np.mean(y * np.log(a_np) + (1 - y) * np.log(1 - a_np))
    assert loss.item() == pytest.approx(expected_loss, rel=1e-10)
    np.testing.assert_allclose(values(a), a_np, rtol=1e-10)
    np.testing.assert_allclose(m * values(dz), a_np - y, rtol=1e-10, atol=1e-14)
    assert w.grad.shape == (3, 1)
    np.testing.assert_allclose(values(w.grad), X.T @ (a_np - y) / m, rtol=1e-10, atol=1e-14)
    assert b.grad.shape == ()
    assert b.grad.item() == pytest.approx(np.mean(a_np - y), rel=1e-10)


def test_logistic_regression_with_the_hand_written_sigmoid_agrees():
    """Writing sigmoid as 1/(1+exp(-z)) gives the same dw and db as the formulas."""
    X, y, w_np, b_np = logistic_data(m=5, n=2, seed=1)
    m = X.shape[0]
    w = gg.tensor(w_np, requires_grad=True)
    b = gg.tensor(b_np, requires_grad=True)

    a = 1.0 / (1.0 + (-(gg.tensor(X) @ w + b)).exp())
    bce_by_hand(a, gg.tensor(y)).mean().backward()

    a_np = numpy_forward(X, w_np, b_np)
    np.testing.assert_allclose(values(w.grad), X.T @ (a_np - y) / m, rtol=1e-9, atol=1e-14)
    assert b.grad.item() == pytest.approx(np.mean(a_np - y), rel=1e-9)


def test_gradient_descent_on_logistic_regression_lowers_the_loss():
    """A few full-batch steps w -= lr * dw reduce the BCE on separable data."""
    X, _, _, _ = logistic_data(m=32, n=2, seed=2)
    y = (X[:, :1] + X[:, 1:] > 0).astype(np.float64)
    X_t, y_t = gg.tensor(X), gg.tensor(y)
    w_np, b_np = np.zeros((2, 1)), np.array(0.0)

    def loss_at(w_np, b_np):
        w = gg.tensor(w_np, requires_grad=True)
        b = gg.tensor(b_np, requires_grad=True)
        loss = bce_by_hand((X_t @ w + b).sigmoid(), y_t).mean()
        loss.backward()
        return loss.item(), values(w.grad), values(b.grad)

    first_loss, _, _ = loss_at(w_np, b_np)
    assert first_loss == pytest.approx(math.log(2.0))  # a = 0.5 everywhere at w=0, b=0
    for _ in range(20):
        loss, dw, db = loss_at(w_np, b_np)
        w_np, b_np = w_np - 1.0 * dw, b_np - 1.0 * db
    final_loss, _, _ = loss_at(w_np, b_np)
    assert final_loss < 0.5 * first_loss
