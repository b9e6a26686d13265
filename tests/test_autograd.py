"""Semantics of reverse-mode differentiation: .backward(), gg.grad, graph lifetime,
higher-order gradients and the gradient rules of the everyday ops.

Expected values come from closed forms or NumPy, never from gpugrad itself. Most tests
use float64 leaves (a NumPy float64 array keeps its dtype) so tolerances can be tight.
"""

import gc
import math
import weakref

import numpy as np
import pytest

import gpugrad as gg


def values(t):
    """The tensor's values as a float64 NumPy array."""
    return np.asarray(t.numpy(), dtype=np.float64)


def leaf(v):
    """A float64 leaf tensor that requires grad."""
    return gg.tensor(np.asarray(v, dtype=np.float64), requires_grad=True)


def const(v):
    """A float64 tensor that does not require grad."""
    return gg.tensor(np.asarray(v, dtype=np.float64))


def assert_close(t, expected, rtol=1e-10, atol=1e-12):
    """t's values and shape equal the expected NumPy values."""
    expected = np.asarray(expected, dtype=np.float64)
    assert tuple(t.shape) == expected.shape
    np.testing.assert_allclose(values(t), expected, rtol=rtol, atol=atol)


def random(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


# ---------------------------------------------------------------------------
# .backward()
# ---------------------------------------------------------------------------


def test_backward_of_a_scalar_needs_no_grad_argument():
    """A scalar output seeds the backward pass with 1; leaves get d(sum x^2)/dx = 2x."""
    x_np = np.array([1.0, -2.0, 3.0])
    x = leaf(x_np)
    assert x.grad is None

    (x * x).sum().backward()

    assert isinstance(x.grad, type(x))  # .grad is a Tensor
    assert x.grad.requires_grad is False
    assert_close(x.grad, 2 * x_np)


def test_backward_of_a_non_scalar_without_grad_raises():
    """Backward from a non-scalar needs an explicit grad; the error says it must be scalar."""
    x = leaf([1.0, 2.0, 3.0])
    y = x * 2.0
    with pytest.raises(RuntimeError, match="scalar"):
        y.backward()


def test_each_call_on_a_non_scalar_names_its_own_keyword_for_the_output_gradient():
    """backward() takes grad=, gg.grad takes grad_outputs=: the error says the right one."""
    x = leaf([1.0, 2.0, 3.0])
    y = x * 2.0
    with pytest.raises(gg.GraphError, match=r"^gg\.grad of a tensor of shape \(3,\)") \
            as excinfo:
        gg.grad(y, x)
    assert "grad_outputs=" in str(excinfo.value)
    with pytest.raises(gg.GraphError, match=r"^backward\(\) of a tensor") as excinfo:
        y.backward()
    assert "pass grad= " in str(excinfo.value) and "grad_outputs" not in str(excinfo.value)


def test_backward_with_an_explicit_grad_tensor():
    """A non-scalar output takes the upstream gradient as `grad` (positional or keyword)."""
    upstream = np.array([1.0, 10.0, 100.0])

    x = leaf([1.0, 2.0, 3.0])
    (x * 3.0).backward(const(upstream))
    assert_close(x.grad, 3.0 * upstream)

    x = leaf([1.0, 2.0, 3.0])
    (x * 3.0).backward(grad=const(upstream))
    assert_close(x.grad, 3.0 * upstream)


def test_gradients_accumulate_into_leaf_grad_over_two_backward_calls():
    """Backward twice over a retained graph adds the second gradient to the first."""
    x_np = np.array([1.0, -2.0, 3.0])
    x = leaf(x_np)
    y = (x * x).sum()

    y.backward(retain_graph=True)
    assert_close(x.grad, 2 * x_np)
    y.backward()
    assert_close(x.grad, 4 * x_np)


def test_gradients_accumulate_across_separate_graphs():
    """Two different losses over the same leaf accumulate into one .grad."""
    x = leaf([1.0, 2.0])
    (x * 2.0).sum().backward()
    (x * 3.0).sum().backward()
    assert_close(x.grad, [5.0, 5.0])


def test_backward_twice_without_retain_graph_raises():
    """The first backward frees the graph; a second one says to use retain_graph."""
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_leaves_that_do_not_require_grad_get_no_grad():
    """Only tensors with requires_grad=True receive a .grad."""
    x = leaf([1.0, 2.0])
    c = const([3.0, 4.0])
    (x * c).sum().backward()
    assert c.grad is None
    assert_close(x.grad, [3.0, 4.0])


def test_requires_grad_propagates_through_ops():
    """A result requires grad when any input does; constants alone give constants."""
    x, c = leaf([1.0, 2.0]), const([3.0, 4.0])
    assert (x * c).requires_grad
    assert (x * 2.0).exp().requires_grad
    assert not (c * c).requires_grad
    assert not (c + 1.0).requires_grad


# ---------------------------------------------------------------------------
# Higher-order gradients (create_graph=True)
# ---------------------------------------------------------------------------


def second_derivative(fn, x_np):
    """d2/dx2 of sum(fn(x)) elementwise, via two gg.grad calls."""
    x = leaf(x_np)
    (g,) = gg.grad(fn(x).sum(), [x], create_graph=True)
    assert g.requires_grad
    (g2,) = gg.grad(g.sum(), [x])
    return g, g2


X_POINTS = np.array([-1.5, -0.3, 0.4, 2.0])


def test_second_derivative_of_cube_is_6x():
    g, g2 = second_derivative(lambda x: x**3, X_POINTS)
    assert_close(g, 3 * X_POINTS**2)
    assert_close(g2, 6 * X_POINTS)


def test_second_derivative_of_tanh():
    """tanh' = 1 - t^2, tanh'' = -2 t (1 - t^2)."""
    t = np.tanh(X_POINTS)
    g, g2 = second_derivative(lambda x: x.tanh(), X_POINTS)
    assert_close(g, 1 - t**2)
    assert_close(g2, -2 * t * (1 - t**2))


def test_second_derivative_of_sigmoid():
    """s' = s (1 - s), s'' = s (1 - s)(1 - 2 s)."""
    s = 1 / (1 + np.exp(-X_POINTS))
    g, g2 = second_derivative(lambda x: x.sigmoid(), X_POINTS)
    assert_close(g, s * (1 - s))
    assert_close(g2, s * (1 - s) * (1 - 2 * s))


def test_third_derivative_of_cube_is_6():
    x = leaf(X_POINTS)
    (g,) = gg.grad((x**3).sum(), [x], create_graph=True)
    (g2,) = gg.grad(g.sum(), [x], create_graph=True)
    (g3,) = gg.grad(g2.sum(), [x])
    assert_close(g3, np.full_like(X_POINTS, 6.0))


def test_mixed_partials_of_x_y_y():
    """f = x y^2: d2f/dydx = d2f/dxdy = 2y, d2f/dy2 = 2x."""
    x, y = leaf(1.5), leaf(-2.0)
    f = x * y * y
    dfdx, dfdy = gg.grad(f, [x, y], create_graph=True)
    assert dfdx.item() == pytest.approx(4.0)  # y^2
    assert dfdy.item() == pytest.approx(-6.0)  # 2xy

    (d2f_dydx,) = gg.grad(dfdx, [y], retain_graph=True)
    d2f_dxdy, d2f_dy2 = gg.grad(dfdy, [x, y])
    assert d2f_dydx.item() == pytest.approx(-4.0)
    assert d2f_dxdy.item() == pytest.approx(-4.0)
    assert d2f_dy2.item() == pytest.approx(3.0)


def test_backward_with_create_graph_makes_grad_differentiable():
    """backward(create_graph=True) leaves a .grad that is itself part of a graph."""
    x = leaf(X_POINTS)
    (x**3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    assert_close(x.grad, 3 * X_POINTS**2)

    (g2,) = gg.grad(x.grad.sum(), [x])
    assert_close(g2, 6 * X_POINTS)


# ---------------------------------------------------------------------------
# gg.grad
# ---------------------------------------------------------------------------


def test_grad_returns_a_list_of_tensors_and_leaves_dot_grad_alone():
    x, y = leaf([1.0, 2.0]), leaf([3.0, -1.0])
    f = (x * y).sum()

    grads = gg.grad(f, [x, y])

    assert isinstance(grads, list)
    assert len(grads) == 2
    assert all(isinstance(g, type(x)) for g in grads)
    assert_close(grads[0], [3.0, -1.0])
    assert_close(grads[1], [1.0, 2.0])
    assert x.grad is None
    assert y.grad is None


def test_grad_with_grad_outputs_weights_a_non_scalar_output():
    x = leaf([1.0, 2.0, 3.0])
    v = np.array([0.5, -1.0, 2.0])
    (g,) = gg.grad(x * x, [x], grad_outputs=const(v))
    assert_close(g, 2 * np.array([1.0, 2.0, 3.0]) * v)


def test_grad_takes_create_graph_fourth_and_retain_graph_by_keyword():
    # gg.grad(outputs, inputs, grad_outputs=None, create_graph=False): the contract's order.
    x = leaf([1.0, 2.0])
    (g,) = gg.grad((x ** 3).sum(), [x], None, True)
    assert g.requires_grad  # differentiable: create_graph it was
    (gg_,) = gg.grad(g.sum(), [x])
    assert_close(gg_, 6 * np.array([1.0, 2.0]))
    y = (x * x).sum()
    gg.grad(y, [x], retain_graph=True)
    assert_close(gg.grad(y, [x])[0], [2.0, 4.0])  # the graph was kept for this one
    with pytest.raises(TypeError):
        gg.grad(y, [x], None, False, True)  # retain_graph is a keyword


def test_one_host_array_is_one_output_gradient():
    # grad_outputs may be one NumPy array for one output, as backward's grad may.
    x = leaf([1.0, 2.0])
    v = np.array([[3.0, 4.0]])
    (g,) = gg.grad(x[None] * x[None], [x], grad_outputs=v)
    assert_close(g, 2 * np.array([1.0, 2.0]) * v[0])


def test_a_wrong_output_gradient_names_the_call_and_the_users_line():
    x = leaf([1.0, 2.0])
    with pytest.raises(gg.ShapeError, match=r"backward\(\): the gradient has shape \(3,\) "
                       r"but the output has shape \(2,\) \(at .*test_autograd.py:\d+\)"):
        (x * 2).backward(gg.ones(3))
    with pytest.raises(gg.GraphError, match=r"gg.grad: 2 output gradients for 1 outputs "
                       r"\(at .*test_autograd.py:\d+\)"):
        gg.grad(x * 2, [x], grad_outputs=[gg.ones(2), gg.ones(2)])


def test_grad_with_several_outputs_sums_their_vector_jacobian_products():
    x = leaf([1.0, 2.0])
    y1, y2 = x * 3.0, x * x
    v1, v2 = np.array([1.0, 10.0]), np.array([-1.0, 0.5])
    (g,) = gg.grad([y1, y2], [x], grad_outputs=[const(v1), const(v2)])
    assert_close(g, 3.0 * v1 + 2 * np.array([1.0, 2.0]) * v2)


def test_grad_with_respect_to_an_intermediate_tensor():
    """gg.grad takes non-leaf inputs: here d/dh of sum(3h) with h = x*x."""
    x_np = np.array([1.0, -2.0])
    x = leaf(x_np)
    h = x * x
    f = (h * 3.0).sum()

    dh, dx = gg.grad(f, [h, x])

    assert_close(dh, [3.0, 3.0])
    assert_close(dx, 6.0 * x_np)
    assert x.grad is None


# ---------------------------------------------------------------------------
# Switching the graph off: no_grad, detach, comparisons
# ---------------------------------------------------------------------------


def test_no_grad_results_do_not_require_grad_and_cannot_backpropagate():
    x = leaf([1.0, 2.0])
    with gg.no_grad():
        y = (x * 2.0).sum()
    assert y.requires_grad is False
    assert y.item() == pytest.approx(6.0)
    with pytest.raises(RuntimeError):
        y.backward()
    assert x.grad is None


def test_grad_recording_resumes_after_no_grad():
    x = leaf([1.0, 2.0])
    with gg.no_grad():
        pass
    y = (x * 2.0).sum()
    assert y.requires_grad
    y.backward()
    assert_close(x.grad, [2.0, 2.0])


def test_no_grad_and_enable_grad_decorate_with_or_without_parentheses_as_pytorchs():
    x = leaf([1.0, 2.0])

    @gg.no_grad
    def bare(t):
        return t * 2.0

    @gg.no_grad()
    def called(t):
        return t * 2.0

    @gg.enable_grad
    def recorded(t):
        return t * 2.0

    assert not bare(x).requires_grad and not called(x).requires_grad
    assert bare.__name__ == "bare" and gg.is_grad_enabled()
    with gg.no_grad():
        assert recorded(x).requires_grad and not gg.is_grad_enabled()
    mode = gg.no_grad()  # one object entered again inside its own block
    with mode:
        with mode:
            pass
        assert not gg.is_grad_enabled()
    assert gg.is_grad_enabled()


def test_set_grad_enabled_switches_from_the_call_on_as_pytorchs():
    """A plain call sets the mode, as torch.set_grad_enabled(False) does; a with block
    or a decorated function gets the mode inside only."""
    x = leaf([1.0, 2.0])
    try:
        gg.set_grad_enabled(False)
        assert not gg.is_grad_enabled() and not (x * 2.0).requires_grad
        gg.set_grad_enabled(True)
        assert (x * 2.0).requires_grad
        with gg.set_grad_enabled(False):
            assert not (x * 2.0).requires_grad
        assert gg.is_grad_enabled()

        @gg.set_grad_enabled(False)
        def off(t):
            return t * 2.0

        assert gg.is_grad_enabled() and not off(x).requires_grad and gg.is_grad_enabled()
    finally:
        gg.set_grad_enabled(True)


def test_a_set_grad_enabled_object_entered_again_sets_its_mode_again_as_pytorchs():
    mode = gg.set_grad_enabled(False)
    with mode:
        assert not gg.is_grad_enabled()
    assert gg.is_grad_enabled()
    with mode:
        assert not gg.is_grad_enabled()
    assert gg.is_grad_enabled()


def test_one_no_grad_object_shared_by_threads_restores_each_threads_own_mode():
    """A block's previous mode is its thread's: a thread leaving the shared object's
    block first must not take the other thread's mode with it."""
    import threading

    shared = gg.no_grad()
    a_inside, b_inside, a_left = threading.Event(), threading.Event(), threading.Event()
    after = {}

    def a():  # grad mode on
        with shared:
            a_inside.set()
            b_inside.wait(5)
        a_left.set()
        after["a"] = gg.is_grad_enabled()

    def b():  # grad mode off before the block
        gg.set_grad_enabled(False)
        a_inside.wait(5)
        with shared:
            b_inside.set()
            a_left.wait(5)
        after["b"] = gg.is_grad_enabled()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert after == {"a": True, "b": False}


def test_detach_cuts_the_graph():
    """d/dx of sum(detach(x) * x) treats the detached factor as a constant."""
    x_np = np.array([1.0, -2.0, 3.0])
    x = leaf(x_np)
    d = x.detach()
    assert d.requires_grad is False
    assert_close(d, x_np)

    (d * x).sum().backward()
    assert_close(x.grad, x_np)  # not 2x


def test_comparisons_give_boolean_tensors_without_grad():
    x_np = np.array([1.0, 2.0, 3.0])
    x = leaf(x_np)
    for result, expected in [(x < 2.0, x_np < 2.0), (x > 2.0, x_np > 2.0), (x == 2.0, x_np == 2.0)]:
        assert result.requires_grad is False
        assert result.dtype == np.bool_
        np.testing.assert_array_equal(result.numpy(), expected)


# ---------------------------------------------------------------------------
# Indexing
# ---------------------------------------------------------------------------


def test_integer_array_indexing_accumulates_repeated_indices():
    """x[[0, 2, 0]]: element 0 is read twice, so it receives both upstream gradients."""
    x = leaf([1.0, 2.0, 3.0, 4.0])
    y = x[gg.tensor([0, 2, 0])]
    assert_close(y, [1.0, 3.0, 1.0])

    y.backward(const([1.0, 10.0, 100.0]))
    assert_close(x.grad, [101.0, 0.0, 10.0, 0.0])


def test_slicing_and_integer_indexing_gradients():
    x_np = random(3, 4)
    upstream = random(3, 2, seed=1)

    x = leaf(x_np)
    x[:, 1:3].backward(const(upstream))
    expected = np.zeros((3, 4))
    expected[:, 1:3] = upstream
    assert_close(x.grad, expected)

    x = leaf(x_np)
    x[1].sum().backward()
    expected = np.zeros((3, 4))
    expected[1] = 1.0
    assert_close(x.grad, expected)


def test_item_assignment_writes_values_and_routes_their_gradients():
    """x[key] = v, as in NumPy and PyTorch: the tensor takes the values (cast to its
    dtype, broadcast); gradients go to x where it was not overwritten and to v."""
    base, v = leaf(random(3, 4)), leaf([10.0, 20.0])
    x = base * 1.0
    x[1, 1:3] = v
    x[0] = 7  # a Python number, broadcast over the row
    x[[2, 2], [0, 3]] = v * 2.0
    expected = base.numpy().copy()
    expected[1, 1:3] = [10.0, 20.0]
    expected[0] = 7.0
    expected[2, [0, 3]] = [20.0, 40.0]
    assert_close(x, expected)
    upstream = random(3, 4, seed=2)
    x.backward(const(upstream))
    kept = np.ones((3, 4))
    kept[1, 1:3] = kept[0] = kept[2, [0, 3]] = 0.0
    assert_close(base.grad, upstream * kept)
    assert_close(v.grad, upstream[1, 1:3] + 2.0 * upstream[2, [0, 3]])


def test_item_assignment_by_a_mask_and_its_errors():
    x = gg.tensor([1.0, -2.0, 3.0, -4.0])
    x[x < 0] = 0.0  # PyTorch's habit for a ReLU by hand
    assert x.numpy().tolist() == [1.0, 0.0, 3.0, 0.0]
    ints = gg.zeros(3, dtype="int64")
    ints[1] = 2.7  # cast to the tensor's dtype, as NumPy and PyTorch do
    assert ints.numpy().tolist() == [0, 2, 0]
    with pytest.raises(gg.ShapeError, match=r"setitem: values of shape \(2,\) cannot be "
                                            r"broadcast to the \(3,\) positions"):
        gg.zeros((2, 3))[0] = gg.ones(2)
    with pytest.raises(gg.GraphError, match="in-place update of a leaf"):
        gg.zeros(2, requires_grad=True)[0] = 1.0
    with pytest.raises(gg.OutOfBoundsError):
        gg.zeros(2)[5] = 1.0


def test_item_assignment_into_a_view_of_a_tensor_still_held_is_refused():
    """NumPy and PyTorch write x[0][1] = v through to x; gpugrad's x[0] has values of its
    own, so the assignment would leave x as it was: refused, naming the way that works."""
    x = gg.zeros((2, 3))
    for view in (lambda: x[0], lambda: x.detach(), lambda: x.reshape(3, 2)[1], lambda: x.T):
        with pytest.raises(gg.GraphError, match=r"x\[0, 1\] = v, not x\[0\]\[1\] = v"):
            view()[0] = 5.0
    assert not x.numpy().any()
    x[0, 1] = 5.0  # the way that works
    copy = x.clone()
    copy[0] = 1.0  # a copy is a tensor of its own
    matrix = gg.arange(6.0).reshape(2, 3)  # a view of a temporary: nobody to differ for
    matrix[1, 1] = -1.0
    assert x.numpy().tolist() == [[0.0, 5.0, 0.0], [0.0, 0.0, 0.0]]
    assert matrix.numpy().tolist() == [[0.0, 1.0, 2.0], [3.0, -1.0, 5.0]]
    for copy in (matrix[gg.tensor([0, 1])], matrix[matrix > 2], matrix.T.reshape(6)):
        copy[0] = 9.0  # copies in NumPy and PyTorch too: nothing to write through to
    assert matrix.numpy().tolist() == [[0.0, 1.0, 2.0], [3.0, -1.0, 5.0]]

    def into_a_view_of_its_own(x):
        z = gg.zeros(6).reshape(2, 3)
        z[0] = x
        return z

    np.testing.assert_array_equal(gg.compile(into_a_view_of_its_own)(gg.ones(3)).numpy(),
                                  into_a_view_of_its_own(gg.ones(3)).numpy())


@pytest.mark.parametrize("key", [
    (slice(None), [0, 1], Ellipsis, 0),  # a '...' for no axis parts the index arrays
    (slice(None), np.array([True, False, True]), Ellipsis, 0),
    (slice(None), [0, 1], None, 0),  # so does a None
    ([0, 1], Ellipsis, [0, 1]),
    (slice(None), [0, 1], 0),  # adjacent: the picked axis stays where it stands
    (Ellipsis, [0, 1], 0),
], ids=["ellipsis-apart", "mask-ellipsis-apart", "none-apart", "ellipsis-between-arrays",
        "adjacent", "ellipsis-first"])
def test_advanced_indices_go_where_numpy_puts_them_and_gradients_follow(key):
    """NumPy puts the result of advanced indices in front when anything stands between
    them as written, an Ellipsis for no axis included; the gradient is NumPy's add.at
    of the upstream gradient at the same positions."""
    x_np = np.arange(60.0).reshape(5, 3, 4)
    x = leaf(x_np)
    y = x[key]
    assert y.shape == x_np[key].shape
    upstream = random(*y.shape)
    y.backward(const(upstream))
    expected = np.zeros_like(x_np)
    np.add.at(expected, key, upstream)
    assert_close(x.grad, expected)


def test_a_reshape_to_the_same_shape_is_a_tensor_of_its_own():
    # As PyTorch's view: gg.grad with respect to y is y's gradient (1), not x's (4).
    x = leaf([1.0, 2.0])
    y = x.reshape(x.shape)
    assert y is not x and y.shape == x.shape
    (gy,) = gg.grad([(x * 3 + y).sum()], [y])
    assert_close(gy, [1.0, 1.0])


# ---------------------------------------------------------------------------
# Broadcasting
# ---------------------------------------------------------------------------


def test_broadcast_add_sums_gradients_back_to_each_input_shape():
    """(3,1) + (1,4) -> (3,4); each input's gradient is summed over its broadcast axes."""
    a, b = leaf(random(3, 1)), leaf(random(1, 4, seed=1))
    upstream = random(3, 4, seed=2)

    out = a + b
    assert out.shape == (3, 4)
    out.backward(const(upstream))

    assert_close(a.grad, upstream.sum(axis=1, keepdims=True))
    assert_close(b.grad, upstream.sum(axis=0, keepdims=True))


def test_broadcast_mul_over_missing_leading_axes():
    """(4,) * (2,3,4): the vector's gradient sums over the two leading axes."""
    a_np, b_np = random(4), random(2, 3, 4, seed=1)
    upstream = random(2, 3, 4, seed=2)
    a, b = leaf(a_np), leaf(b_np)

    (a * b).backward(const(upstream))

    assert_close(a.grad, (upstream * b_np).sum(axis=(0, 1)))
    assert_close(b.grad, upstream * a_np)


def test_broadcast_with_a_scalar_tensor():
    """A 0-d tensor broadcast against a matrix gets the sum of all upstream gradients."""
    s, m_np = leaf(2.0), random(2, 3)
    m = leaf(m_np)
    (s * m).sum().backward()
    assert s.grad.shape == ()
    assert s.grad.item() == pytest.approx(m_np.sum())
    assert_close(m.grad, np.full((2, 3), 2.0))


# ---------------------------------------------------------------------------
# Matmul
# ---------------------------------------------------------------------------


def test_matmul_gradients():
    """C = A @ B: dA = G B^T, dB = A^T G."""
    A_np, B_np, G = random(2, 3), random(3, 4, seed=1), random(2, 4, seed=2)
    A, B = leaf(A_np), leaf(B_np)
    (A @ B).backward(const(G))
    assert_close(A.grad, G @ B_np.T)
    assert_close(B.grad, A_np.T @ G)


def test_batched_matmul_gradients():
    """(5,2,3) @ (5,3,4): the same rule per batch element."""
    A_np, B_np, G = random(5, 2, 3), random(5, 3, 4, seed=1), random(5, 2, 4, seed=2)
    A, B = leaf(A_np), leaf(B_np)
    C = A @ B
    assert_close(C, A_np @ B_np)
    C.backward(const(G))
    assert_close(A.grad, G @ B_np.transpose(0, 2, 1))
    assert_close(B.grad, A_np.transpose(0, 2, 1) @ G)


def test_batched_matmul_with_a_broadcast_matrix_sums_over_the_batch():
    """(5,2,3) @ (3,4): the shared matrix's gradient is summed over the batch."""
    A_np, W_np, G = random(5, 2, 3), random(3, 4, seed=1), random(5, 2, 4, seed=2)
    A, W = leaf(A_np), leaf(W_np)
    (A @ W).backward(const(G))
    assert_close(A.grad, G @ W_np.T)
    assert_close(W.grad, np.einsum("bij,bik->jk", A_np, G))


def test_matrix_vector_matmul_gradients():
    """(2,3) @ (3,) -> (2,) as in NumPy."""
    A_np, v_np, G = random(2, 3), random(3, seed=1), random(2, seed=2)
    A, v = leaf(A_np), leaf(v_np)
    out = A @ v
    assert_close(out, A_np @ v_np)
    out.backward(const(G))
    assert_close(A.grad, np.outer(G, v_np))
    assert_close(v.grad, A_np.T @ G)


# ---------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, out_shape",
    [
        (dict(), ()),
        (dict(axis=1), (2, 4)),
        (dict(axis=-1), (2, 3)),
        (dict(axis=(0, 2), keepdims=True), (1, 3, 1)),
        (dict(dim=1), (2, 4)),
        (dict(dim=0, keepdims=True), (1, 3, 4)),
    ],
)
def test_sum_gradient_is_the_upstream_broadcast_back(kwargs, out_shape):
    x_np = random(2, 3, 4)
    x = leaf(x_np)
    axis = kwargs.get("axis", kwargs.get("dim"))
    keepdims = kwargs.get("keepdims", False)

    s = x.sum(**kwargs)
    assert_close(s, x_np.sum(axis=axis, keepdims=keepdims))
    upstream = random(*out_shape, seed=1)
    s.backward(const(upstream))

    kept = upstream if keepdims or axis is None else np.expand_dims(upstream, axis)
    assert_close(x.grad, np.broadcast_to(kept, x_np.shape))


@pytest.mark.parametrize("kwargs", [dict(), dict(axis=0), dict(dim=2), dict(axis=1, keepdims=True)])
def test_mean_gradient_divides_by_the_count(kwargs):
    x_np = random(2, 3, 4)
    x = leaf(x_np)
    axis = kwargs.get("axis", kwargs.get("dim"))
    keepdims = kwargs.get("keepdims", False)

    m = x.mean(**kwargs)
    assert_close(m, x_np.mean(axis=axis, keepdims=keepdims))
    m.sum().backward()

    count = x_np.size if axis is None else x_np.shape[axis]
    assert_close(x.grad, np.full(x_np.shape, 1.0 / count))


def test_max_over_an_axis_routes_the_gradient_to_the_argmax():
    x_np = np.array([[1.0, 5.0, 2.0], [7.0, -1.0, 3.0]])
    x = leaf(x_np)
    m = x.max(axis=1)
    assert_close(m, [5.0, 7.0])
    m.backward(const([10.0, 20.0]))
    assert_close(x.grad, [[0.0, 10.0, 0.0], [20.0, 0.0, 0.0]])


def test_max_with_dim_and_keepdims():
    x_np = np.array([[1.0, 5.0, 2.0], [7.0, -1.0, 3.0]])
    x = leaf(x_np)
    m = x.max(dim=0, keepdims=True)
    assert_close(m, [[7.0, 5.0, 3.0]])
    m.sum().backward()
    assert_close(x.grad, [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])


def test_max_spreads_the_gradient_evenly_over_ties():
    x = leaf([[3.0, 1.0, 3.0], [2.0, 2.0, 2.0]])
    x.max(axis=1).sum().backward()
    assert_close(x.grad, [[0.5, 0.0, 0.5], [1 / 3, 1 / 3, 1 / 3]])


def test_max_of_everything():
    x = leaf([[3.0, 9.0], [-1.0, 4.0]])
    m = x.max()
    assert m.item() == pytest.approx(9.0)
    m.backward()
    assert_close(x.grad, [[0.0, 1.0], [0.0, 0.0]])


# ---------------------------------------------------------------------------
# Shape ops
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape_args", [(3, 2), ((3, 2),), (-1, 2), (6,), (1, 6, 1)])
def test_reshape_gradient_has_the_input_shape(shape_args):
    x_np = random(2, 3)
    upstream_flat = random(6, seed=1)
    x = leaf(x_np)

    y = x.reshape(*shape_args)
    expected_shape = x_np.reshape(*shape_args).shape
    assert y.shape == expected_shape
    y.backward(const(upstream_flat.reshape(expected_shape)))

    assert_close(x.grad, upstream_flat.reshape(2, 3))


def test_transpose_with_no_arguments_reverses_the_axes():
    x_np, upstream = random(2, 3, 4), random(4, 3, 2, seed=1)
    x = leaf(x_np)
    y = x.transpose()
    assert_close(y, x_np.transpose())
    y.backward(const(upstream))
    assert_close(x.grad, upstream.transpose())


@pytest.mark.parametrize("as_tuple", [False, True], ids=["varargs", "tuple"])
def test_transpose_with_a_permutation(as_tuple):
    perm = (2, 0, 1)
    x_np = random(2, 3, 4)
    upstream = random(4, 2, 3, seed=1)
    x = leaf(x_np)

    y = x.transpose(perm) if as_tuple else x.transpose(*perm)
    assert_close(y, x_np.transpose(perm))
    y.backward(const(upstream))
    assert_close(x.grad, upstream.transpose(np.argsort(perm)))


def test_dot_T_of_a_matrix():
    x_np, upstream = random(2, 3), random(3, 2, seed=1)
    x = leaf(x_np)
    assert_close(x.T, x_np.T)
    x.T.backward(const(upstream))
    assert_close(x.grad, upstream.T)


def test_concat_splits_the_gradient_back():
    a_np, b_np = random(2, 3), random(2, 2, seed=1)
    upstream = random(2, 5, seed=2)
    a, b = leaf(a_np), leaf(b_np)

    c = gg.concat([a, b], axis=1)
    assert_close(c, np.concatenate([a_np, b_np], axis=1))
    c.backward(const(upstream))

    assert_close(a.grad, upstream[:, :3])
    assert_close(b.grad, upstream[:, 3:])


def test_concat_along_the_default_first_axis():
    a, b = leaf([[1.0, 2.0]]), leaf([[3.0, 4.0], [5.0, 6.0]])
    c = gg.concat([a, b])
    assert c.shape == (3, 2)
    (c * const([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])).sum().backward()
    assert_close(a.grad, [[1.0, 1.0]])
    assert_close(b.grad, [[2.0, 2.0], [3.0, 3.0]])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_stack_gradient_unstacks(axis):
    a_np, b_np = random(2, 3), random(2, 3, seed=1)
    a, b = leaf(a_np), leaf(b_np)

    s = gg.stack([a, b], axis=axis)
    expected = np.stack([a_np, b_np], axis=axis)
    assert_close(s, expected)
    upstream = random(*expected.shape, seed=2)
    s.backward(const(upstream))

    assert_close(a.grad, np.take(upstream, 0, axis=axis))
    assert_close(b.grad, np.take(upstream, 1, axis=axis))


# ---------------------------------------------------------------------------
# Elementwise gradients at ordinary points (away from kinks)
# ---------------------------------------------------------------------------

POINTS = np.array([-2.5, -0.7, 0.3, 1.9])
POSITIVE_POINTS = np.array([0.2, 0.9, 1.7, 4.0])


ELEMENTWISE_CASES = [
    # name, op, closed-form derivative, points away from kinks and outside the domain edge
    ("neg", lambda x: -x, lambda v: -np.ones_like(v), POINTS),
    ("exp", lambda x: x.exp(), np.exp, POINTS),
    ("log", lambda x: x.log(), lambda v: 1 / v, POSITIVE_POINTS),
    ("tanh", lambda x: x.tanh(), lambda v: 1 - np.tanh(v) ** 2, POINTS),
    ("sigmoid", lambda x: x.sigmoid(), lambda v: np.exp(-v) / (1 + np.exp(-v)) ** 2, POINTS),
    ("relu", lambda x: x.relu(), lambda v: (v > 0).astype(float), POINTS),
    ("abs", lambda x: x.abs(), np.sign, POINTS),
    ("sqrt", lambda x: x.sqrt(), lambda v: 0.5 / np.sqrt(v), POSITIVE_POINTS),
    ("erf", lambda x: x.erf(), lambda v: 2 / np.sqrt(np.pi) * np.exp(-v * v), POINTS),
    ("clip", lambda x: x.clip(-1.0, 1.0), lambda v: (np.abs(v) < 1).astype(float), POINTS),
    ("square", lambda x: x**2, lambda v: 2 * v, POINTS),
    ("pow_2.5", lambda x: x**2.5, lambda v: 2.5 * v**1.5, POSITIVE_POINTS),
    ("reciprocal", lambda x: 1.0 / x, lambda v: -1 / v**2, POSITIVE_POINTS),
    ("rsub", lambda x: 3.0 - x, lambda v: -np.ones_like(v), POINTS),
]


@pytest.mark.parametrize(
    "fn, derivative, points",
    [pytest.param(*case[1:], id=case[0]) for case in ELEMENTWISE_CASES],
)
def test_elementwise_gradient_matches_closed_form(fn, derivative, points):
    x = leaf(points)
    fn(x).sum().backward()
    assert_close(x.grad, derivative(points))


def test_clip_values_and_gradient():
    x_np = np.array([-3.0, -0.5, 0.25, 2.0])
    x = leaf(x_np)
    y = x.clip(-1.0, 1.0)
    assert_close(y, np.clip(x_np, -1.0, 1.0))
    y.backward(const([1.0, 2.0, 3.0, 4.0]))
    assert_close(x.grad, [0.0, 2.0, 3.0, 0.0])


def test_division_gradients():
    """d(a/b)/da = 1/b, d(a/b)/db = -a/b^2."""
    a_np, b_np = np.array([1.0, -2.0, 3.0]), np.array([0.5, 4.0, -1.5])
    a, b = leaf(a_np), leaf(b_np)
    (a / b).sum().backward()
    assert_close(a.grad, 1 / b_np)
    assert_close(b.grad, -a_np / b_np**2)


def test_subtraction_gradients():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 5.0])
    (a - b).backward(const([1.0, 10.0]))
    assert_close(a.grad, [1.0, 10.0])
    assert_close(b.grad, [-1.0, -10.0])


def test_where_routes_the_gradient_by_the_condition():
    a_np, b_np = np.array([1.0, 2.0, 3.0, 4.0]), np.array([-1.0, -2.0, -3.0, -4.0])
    cond_np = np.array([True, False, False, True])
    upstream = np.array([1.0, 10.0, 100.0, 1000.0])
    a, b = leaf(a_np), leaf(b_np)

    y = gg.where(gg.tensor(cond_np), a, b)
    assert_close(y, np.where(cond_np, a_np, b_np))
    y.backward(const(upstream))

    assert_close(a.grad, np.where(cond_np, upstream, 0.0))
    assert_close(b.grad, np.where(cond_np, 0.0, upstream))


def test_where_with_a_comparison_as_condition():
    """A typical use: a hand-written leaky ReLU."""
    x_np = np.array([-2.0, -0.5, 0.5, 3.0])
    x = leaf(x_np)
    gg.where(x > 0.0, x, x * 0.1).sum().backward()
    assert_close(x.grad, np.where(x_np > 0, 1.0, 0.1))


def test_maximum_and_minimum_split_ties_equally():
    a, b = leaf([1.0, 2.0, 3.0]), leaf([1.0, 5.0, 0.0])
    gg.maximum(a, b).sum().backward()
    assert_close(a.grad, [0.5, 0.0, 1.0])
    assert_close(b.grad, [0.5, 1.0, 0.0])

    a, b = leaf([1.0, 2.0, 3.0]), leaf([1.0, 5.0, 0.0])
    gg.minimum(a, b).sum().backward()
    assert_close(a.grad, [0.5, 1.0, 0.0])
    assert_close(b.grad, [0.5, 0.0, 1.0])


# ---------------------------------------------------------------------------
# Graph lifetime and depth
# ---------------------------------------------------------------------------


def test_backward_frees_intermediate_tensors():
    """After backward (without retain_graph) nothing keeps the intermediates alive."""
    x_np = np.array([0.5, -1.0, 2.0])
    x = leaf(x_np)
    a = x * 2.0
    b = a.exp()
    c = b + 1.0
    d = c.log()
    y = d.sum()
    refs = [weakref.ref(t) for t in (a, b, c, d)]
    del a, b, c, d

    y.backward()
    gc.collect()

    alive = [i for i, r in enumerate(refs) if r() is not None]
    assert alive == [], f"intermediates still alive after backward: {alive}"
    # d/dx log(exp(2x) + 1) = 2 exp(2x) / (exp(2x) + 1)
    e = np.exp(2 * x_np)
    assert_close(x.grad, 2 * e / (e + 1))
    assert y.item() == pytest.approx(np.log(e + 1).sum())


@pytest.mark.slow
def test_a_million_op_chain_backpropagates_without_recursion():
    """y = x * c applied 1,000,000 times: dy/dx = c^1e6, no RecursionError.

    c = 1 + 2^-20 is exact in float32 and float64, so the only rounding is in the
    products themselves (float64 here)."""
    n, c = 1_000_000, 1.0 + 2.0**-20
    x = gg.tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(n):
        y = y * c

    y.backward()

    expected = math.exp(n * math.log1p(2.0**-20))  # c ** n, about 2.595
    assert y.item() == pytest.approx(expected, rel=1e-8)
    assert x.grad.item() == pytest.approx(expected, rel=1e-8)


# --- values changed in place after the forward pass ---------------------------------------
def test_changing_a_saved_input_in_place_before_backward_is_refused_with_the_line():
    w = gg.tensor([1.0, 2.0], requires_grad=True)
    x = gg.tensor([3.0, 4.0])
    y = (w * x).sum()  # mul keeps x for w's gradient
    x += 1.0  # the gradient would silently become the new x
    with pytest.raises(gg.GraphError, match=r"mul: a tensor it saved .* changed in place "
                                            r".*test_autograd.py"):
        y.backward()


@pytest.mark.parametrize("alias", [lambda w: w.detach().requires_grad_(),
                                   lambda w: gg.nn.Parameter(w),
                                   lambda w: w[:].detach().requires_grad_()],
                         ids=["detach", "Parameter", "view"])
def test_a_step_through_another_tensor_on_the_same_array_is_caught_too(alias):
    """An optimiser writes a parameter's array in place; a tensor made from w that shares
    it (nn.Parameter(w), w.detach()) changes w's values with it, so the graph that saved
    w refuses the backward, as PyTorch's does (the gradient was silently wrong)."""
    w = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (w * w).sum()  # saves w
    shared = alias(w)
    shared.grad = gg.ones(3)
    gg.optim.SGD([shared], lr=1.0).step()
    assert w.numpy().tolist() == [0.0, 1.0, 2.0]  # the same array
    with pytest.raises(gg.GraphError, match="changed in place"):
        y.backward()


def test_a_new_array_given_to_a_detached_copy_leaves_the_source_differentiable():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    d = x.detach()
    d += 1.0  # d takes a new array: x keeps its values (x.numpy() below)
    y.backward()
    assert x.grad.numpy().tolist() == [2.0, 4.0] and x.numpy().tolist() == [1.0, 2.0]

def test_what_the_backward_does_not_need_may_change_in_place():
    w = gg.tensor([1.0, 2.0], requires_grad=True)
    x = gg.tensor([3.0, 4.0])
    y = (w * x).sum()  # w's own values are not needed for w's gradient
    with gg.no_grad():
        w -= 1.0
    y.backward()
    np.testing.assert_array_equal(values(w.grad), [3.0, 4.0])
    x += 1.0  # changed before the next forward: nothing saved it yet
    (w * x).sum().backward()
    np.testing.assert_array_equal(values(w.grad), [7.0, 9.0])


def test_an_in_place_update_by_a_tensor_that_requires_grad_carries_its_gradient():
    """acc = zeros; acc += w * 3 is the accumulation users write: acc takes the op's
    node, as in PyTorch, so w's gradient flows through it (copying the values alone
    dropped it: w.grad was [1, 1]). loss = sum(acc^2) + sum(w), acc = 3w: dloss/dw =
    18 w + 1."""
    w = gg.tensor([1.0, 2.0], requires_grad=True)
    acc = gg.zeros(2)
    acc += w * 3.0
    assert acc.requires_grad and not acc.is_leaf
    ((acc * acc).sum() + w.sum()).backward()
    np.testing.assert_array_equal(values(w.grad), [19.0, 37.0])


def test_an_in_place_op_saves_the_value_it_read_not_the_one_it_wrote():
    # acc *= w keeps acc's old value for w's gradient: the value from before the update.
    w = gg.tensor([1.0, 2.0], requires_grad=True)
    acc = gg.full((2,), 2.0)
    acc *= w  # 2w: gradient 2 (the old acc), not the new acc's 2w
    acc.sum().backward()
    np.testing.assert_array_equal(values(w.grad), [2.0, 2.0])


def test_a_non_leaf_may_be_updated_in_place_and_is_then_checked_as_any_saved_value():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y += 1
    y *= x  # y = (2x + 1) x: dy/dx = 4x + 1
    y.sum().backward()
    np.testing.assert_array_equal(values(x.grad), [5.0, 9.0])
    z = x * 2
    square = z * z  # keeps z
    z += 1
    with pytest.raises(gg.GraphError, match="mul: a tensor it saved .* changed in place"):
        square.sum().backward()


def test_an_in_place_update_cannot_turn_an_int_tensor_into_floats():
    x = gg.tensor([1, 2])
    with pytest.raises(gg.DTypeError, match=r"mul in place: the float32 result cannot be "
                                            r"stored in the int64 tensor.*x = x \* y"):
        x *= 2.5  # truncated to [2, 5] before
    with pytest.raises(gg.DTypeError, match="div in place"):
        x /= 2
    x += gg.tensor([1, 1], dtype="int32")  # int into int: kept
    f = gg.ones(2)
    f += gg.ones(2, dtype="float64")  # float64 into float32: the tensor's dtype, as PyTorch
    assert x.numpy().tolist() == [2, 3] and f.dtype == np.float32


def test_an_optimiser_step_between_forward_and_backward_is_refused():
    model = gg.nn.Linear(3, 2)
    opt = gg.optim.SGD(model.parameters(), lr=0.1)
    x = gg.ones((4, 3), requires_grad=True)  # float32, as the weight: no cast between
    model(x).sum().backward()
    loss = model(x).sum()  # linear keeps the weight for x's gradient
    opt.step()  # changes the weight in place
    with pytest.raises(gg.GraphError, match="linear: a tensor it saved"):
        loss.backward()


def test_loading_a_state_dict_after_the_forward_pass_is_refused_by_backward():
    model = gg.nn.Linear(3, 2)
    x = gg.ones((4, 3), requires_grad=True)
    loss = model(x).sum()
    model.load_state_dict(gg.nn.Linear(3, 2).state_dict())
    with pytest.raises(gg.GraphError, match="changed in place"):
        loss.backward()


def test_a_view_of_a_tensor_changed_in_place_is_refused_as_the_tensor_is():
    w = gg.tensor(np.array([[1.0, 2.0]], dtype=np.float32), requires_grad=True)
    opt = gg.optim.SGD([w], lr=0.5)
    x = gg.tensor(np.array([[3.0, 4.0]], dtype=np.float32), requires_grad=True)
    (x @ w.T).sum().backward()
    for loss in ((x @ w.T).sum(), (x * w.detach()).sum()):  # a transpose, a detach
        opt.step()  # changes w's array, which the saved view shares
        with pytest.raises(gg.GraphError, match="changed in place"):
            loss.backward()


def test_retain_grad_keeps_an_intermediates_gradient_added_up_as_pytorchs():
    torch = pytest.importorskip("torch")
    x, tx = leaf([1.0, -2.0, 3.0]), torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64,
                                                  requires_grad=True)
    h, th = (x * x).tanh(), (tx * tx).tanh()
    h.retain_grad()
    th.retain_grad()
    y, ty = (h * h.exp()).sum(), (th * th.exp()).sum()
    for _ in range(2):  # a second backward adds to it, as to a leaf's
        y.backward(retain_graph=True)
        ty.backward(retain_graph=True)
        np.testing.assert_allclose(h.grad.numpy(), th.grad.numpy(), rtol=1e-12)
    # (1 - tanh^2 near tanh = 1 cancels: the two libraries' formulas round apart there)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-7)
    gg.grad(y, [x])  # gg.grad leaves every .grad alone
    np.testing.assert_allclose(h.grad.numpy(), th.grad.numpy(), rtol=1e-12)
    with pytest.raises(gg.GraphError, match="retain_grad.. of a tensor that does not "
                                            "require grad"):
        gg.tensor([1.0]).retain_grad()
