"""Edge cases a user runs into, each pinned down: dtypes at the edges, copies, axes,
NumPy scalars, higher derivatives through reductions, and what errors say."""

import copy
import pickle
import subprocess
import sys

import numpy as np
import pytest
from conftest import device_params

import gpugrad as gg


@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_second_derivatives_flow_through_reductions(reduce):
    """d/dx of the gradient of (reduce x)^2: the reduction's VJP is itself differentiable."""
    x = gg.tensor([0.5, 1.5], dtype="float64", requires_grad=True)
    (g,) = gg.grad(getattr(x, reduce)() ** 2, [x], create_graph=True)
    (h,) = gg.grad(g.sum(), [x])
    n = 2 if reduce == "mean" else 1
    np.testing.assert_allclose(h.numpy(), np.full(2, 2 * 2 / n**2 if n == 2 else 4.0))


def test_a_reduction_backward_broadcasts_without_making_tensors_of_shapes():
    x = gg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    (g,) = gg.grad(x.sum() ** 2, [x], create_graph=True)
    nodes = g.graph.nx.nodes(data=True)
    assert "broadcast_to" in g.graph.op_counts()
    assert all(d["dtype"] == "float32" for _, d in nodes), [d for _, d in nodes]


def test_a_shape_passed_by_position_to_an_op_is_refused():
    from gpugrad.ops.shape import broadcast_to

    with pytest.raises(gg.DTypeError, match="by keyword"):
        broadcast_to(gg.ones(3), (2, 3))


def test_numpy_arrays_made_from_a_tensor_are_copies():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    for made in (np.array(x), np.array(x, copy=True), np.asarray(x)):
        made[0] = 5.0
    y.backward()
    assert x.numpy().tolist() == [1.0, 2.0] and x.grad.numpy().tolist() == [2.0, 4.0]
    view = np.asarray(x, copy=False) if np.lib.NumpyVersion(np.__version__) >= "2.0.0" \
        else np.asarray(x)
    assert not view.flags.writeable


@pytest.mark.parametrize("make, dtype", [
    (lambda: gg.tensor([1, 2, 3], dtype="uint8").sum(), np.int64),
    (lambda: gg.tensor([True, False, True]).sum(), np.int64),
    (lambda: gg.tensor([1, 2, 3]).clip(0.5, 1.5), np.float32),
    (lambda: gg.tensor([1, 2, 3]).clip(0, 2), np.int64),
    (lambda: gg.tensor([1, 2]) / gg.tensor([2, 2]), np.float32),
    (lambda: gg.tensor([1, 2]) * 2.5, np.float32),
])
def test_the_declared_dtype_is_the_arrays_dtype(make, dtype):
    t = make()
    assert t.dtype == dtype and t.numpy().dtype == dtype


@pytest.mark.parametrize("op", [lambda b: -b, lambda b: b - b, lambda b: b ** b,
                                lambda b: b.relu(), lambda b: b.clip(0, 1)])
def test_arithmetic_bools_do_not_have_is_a_dtype_error(op):
    with pytest.raises(gg.DTypeError, match="bool"):
        op(gg.tensor([True, False]))


def test_copies_of_a_used_tensor_are_new_leaves():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    x.grad = None
    twin = copy.deepcopy(x)
    (twin * 2).sum().backward()
    assert x.grad is None and twin.grad.numpy().tolist() == [2.0, 2.0]
    assert copy.copy(x).node is None


def test_a_deep_non_leaf_deep_copies_without_walking_its_graph():
    y = gg.tensor(1.0, requires_grad=True)
    for _ in range(5000):
        y = y * 1.0
    twin = copy.deepcopy(y)
    assert twin.is_leaf and twin.item() == 1.0


def test_tensors_pickle_through_their_values():
    x = gg.tensor([[1.0, 2.0]], dtype="float64", requires_grad=True)
    back = pickle.loads(pickle.dumps(x * 2))
    assert back.dtype == np.float64 and back.numpy().tolist() == [[2.0, 4.0]]


def test_transpose_permutes_as_numpy_and_swaps_two_axes_as_pytorch():
    x = gg.zeros((2, 3, 4))
    assert x.transpose().shape == (4, 3, 2)
    assert x.transpose(1, 2, 0).shape == (3, 4, 2)
    assert x.transpose((0, -1, 1)).shape == (2, 4, 3)
    assert x.swapaxes(0, 2).shape == (4, 3, 2)
    # Two axes swap, as PyTorch's transpose(dim0, dim1): a matrix's transpose(0, 1) is
    # its transpose, not NumPy's identity permutation; as one tuple it is a permutation.
    assert x.transpose(0, 1).shape == x.transpose(-3, -2).shape == (3, 2, 4)
    m = gg.tensor([[1.0, 2.0, 3.0]])
    assert m.transpose(0, 1).numpy().tolist() == [[1.0], [2.0], [3.0]]
    assert m.transpose((0, 1)).shape == (1, 3)
    for bad in [(0, 4, 2), (0, 0, 1), ((0, 5, 1),)]:
        with pytest.raises(gg.ShapeError, match="permutation"):
            x.transpose(*bad)
    with pytest.raises(gg.ShapeError, match="axis 5 is out of range for 3"):
        x.transpose(0, 5)


# The same call on a gpugrad and on a torch tensor (or NumPy array): PyTorch's and
# NumPy's keyword spellings of the shape methods.
PYTORCH_KEYWORDS = {
    "transpose(dim0=0, dim1=2)": lambda x: x.transpose(dim0=0, dim1=2),
    "transpose(0, dim1=2)": lambda x: x.transpose(0, dim1=2),
    "transpose(dim1=-1, dim0=1)": lambda x: x.transpose(dim1=-1, dim0=1),
    "permute(dims=(2, 0, 1))": lambda x: x.permute(dims=(2, 0, 1)),
    "permute(dims=[-1, 0, 1])": lambda x: x.permute(dims=[-1, 0, 1]),
    "reshape(shape=(3, 2))": lambda x: x.reshape(shape=(3, 2)),
    "squeeze(dim=1)": lambda x: x.squeeze(dim=1),
    "unsqueeze(dim=0)": lambda x: x.unsqueeze(dim=0),
    "mT": lambda x: x.mT,
}
NUMPY_KEYWORDS = {
    "transpose(axes=...)": (lambda x: x.transpose(axes=(2, 0, 1)),
                            lambda a: np.transpose(a, axes=(2, 0, 1))),
    "gg.transpose(axes=array)": (lambda x: gg.transpose(x, axes=np.array([2, 0, 1])),
                                 lambda a: np.transpose(a, axes=np.array([2, 0, 1]))),
    "gg.transpose(tuple)": (lambda x: gg.transpose(x, (1, 0, 2)),
                            lambda a: np.transpose(a, (1, 0, 2))),
    "gg.transpose(None)": (lambda x: gg.transpose(x, None), lambda a: np.transpose(a, None)),
    "reshape(shape=...)": (lambda x: x.reshape(shape=(3, 2)),
                           lambda a: np.reshape(a, shape=(3, 2))),
    "gg.reshape(shape=...)": (lambda x: gg.reshape(x, shape=(3, 2)),
                              lambda a: np.reshape(a, shape=(3, 2))),
    "squeeze(axis=1)": (lambda x: x.squeeze(axis=1), lambda a: np.squeeze(a, axis=1)),
    "squeeze(axis=(1,))": (lambda x: x.squeeze(axis=(1,)), lambda a: np.squeeze(a, axis=(1,))),
    "unsqueeze(axis=-1)": (lambda x: x.unsqueeze(axis=-1),
                           lambda a: np.expand_dims(a, axis=-1)),
    "mT": (lambda x: x.mT, lambda a: a.mT),
}


@pytest.mark.parametrize("how", list(PYTORCH_KEYWORDS))
def test_pytorchs_keywords_of_the_shape_methods_give_pytorchs_results(how):
    torch = pytest.importorskip("torch")
    values = np.arange(6.0).reshape(2, 1, 3)
    call = PYTORCH_KEYWORDS[how]
    y, ty = call(gg.tensor(values)), call(torch.tensor(values))
    assert y.shape == tuple(ty.shape)
    np.testing.assert_array_equal(y.numpy(), ty.numpy())


@pytest.mark.parametrize("how", list(NUMPY_KEYWORDS))
def test_numpys_keywords_of_the_shape_methods_give_numpys_results(how):
    ours, numpys = NUMPY_KEYWORDS[how]
    values = np.arange(6.0).reshape(2, 1, 3)
    y, want = ours(gg.tensor(values)), numpys(values)
    assert y.shape == want.shape
    np.testing.assert_array_equal(y.numpy(), want)


def test_gg_transpose_swaps_two_axes_as_torch_transpose_does():
    torch = pytest.importorskip("torch")
    values = np.arange(24.0).reshape(2, 3, 4)
    x, t = gg.tensor(values), torch.tensor(values)
    for ours, theirs in [(gg.transpose(x, 0, 2), torch.transpose(t, 0, 2)),
                         (gg.transpose(x, dim0=2, dim1=1), torch.transpose(t, dim0=2, dim1=1))]:
        assert ours.shape == tuple(theirs.shape)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


WRONG_AXES = {
    "transpose(0, dim0=1)": (lambda x: x.transpose(0, dim0=1),
                             "dim0 and dim1 name the two axes to swap: give each once"),
    "transpose(0, 1, dim1=2)": (lambda x: x.transpose(0, 1, dim1=2),
                                "dim0 and dim1 name the two axes to swap: give each once"),
    "transpose(axes=..., dim0=0, dim1=1)": (
        lambda x: x.transpose(axes=(1, 0, 2), dim0=0, dim1=1), "no axes= beside them"),
    "transpose(dim0=1)": (lambda x: x.transpose(dim0=1),
                          "dim0 and dim1 name the two axes to swap: give both"),
    "transpose(1, 0, 2, axes=...)": (lambda x: x.transpose(1, 0, 2, axes=(1, 0, 2)),
                                     "give the axes as arguments or as axes=, not both"),
    "permute(1, 0, 2, dims=...)": (lambda x: x.permute(1, 0, 2, dims=(1, 0, 2)),
                                   "give the dims as arguments or as dims=, not both"),
    "reshape(3, 2, shape=...)": (lambda x: x.reshape(3, 2, shape=(3, 2)),
                                 "give the shape as arguments or as shape=, not both"),
    "squeeze(1, axis=1)": (lambda x: x.squeeze(1, axis=1), "give axis= or dim=, not both"),
    "unsqueeze(0, axis=0)": (lambda x: x.unsqueeze(0, axis=0),
                             "give axis= or dim=, not both"),
    "unsqueeze()": (lambda x: x.unsqueeze(), "missing the position of the new axis: give dim"),
}


@pytest.mark.parametrize("how", list(WRONG_AXES))
def test_an_axis_given_both_ways_or_half_given_is_a_type_error_naming_the_method(how):
    call, message = WRONG_AXES[how]
    with pytest.raises(TypeError) as excinfo:
        call(gg.zeros((2, 1, 3)))
    text = str(excinfo.value)
    assert text.startswith(how.split("(")[0] + ": ") and message in text
    assert "test_edge_cases.py" in text  # the user's line


def test_setting_requires_grad_again_changes_nothing():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2).sum()
    x.requires_grad_(True)
    assert gg.grad(y, [x])[0].numpy().tolist() == [2.0, 2.0]


def test_turning_requires_grad_on_later_starts_a_new_leaf():
    x = gg.tensor([1.0, 2.0])
    old = (x * 2).sum()  # recorded while x did not require grad
    x.requires_grad = True
    new = (x * 3).sum()
    new.backward()
    assert x.grad.numpy().tolist() == [3.0, 3.0]
    assert not old.requires_grad


def test_the_gradient_of_x_to_the_zero_is_zero_even_at_zero():
    with np.errstate(all="ignore"):
        a = gg.tensor([0.0, 2.0], requires_grad=True)
        (a ** 0).sum().backward()
        assert a.grad.numpy().tolist() == [0.0, 0.0]
        b = gg.tensor([0.0, 2.0], requires_grad=True)
        (b ** gg.tensor([0.0, 0.0])).sum().backward()
        assert b.grad.numpy().tolist() == [0.0, 0.0]


def test_the_gradient_of_x_to_the_zero_is_a_constant_without_nan_at_zero():
    x = gg.tensor([0.0, 1.0], dtype="float64", requires_grad=True)
    (g,) = gg.grad((x ** 0).sum(), [x], create_graph=True)
    assert g.numpy().tolist() == [0.0, 0.0]
    assert not g.requires_grad  # as PyTorch's: nothing left to differentiate (was NaN)
    (h,) = gg.grad((x ** 0 + x ** 2).sum(), [x], create_graph=True)
    (second,) = gg.grad(h.sum(), [x])
    assert second.numpy().tolist() == [2.0, 2.0]


def test_numpy_scalars_act_as_python_numbers():
    x = gg.tensor([1.0, 2.0], device="array_api_strict")
    assert (x * np.float32(2)).numpy().tolist() == [2.0, 4.0]
    assert (x * np.float64(2)).dtype == np.float32
    assert x[np.int64(1)].item() == 2.0
    assert gg.ones((2, 3)).sum(np.int64(1)).shape == (2,)


def test_graph_attributes_show_dtypes_by_name():
    g = gg.trace(lambda a: a.astype("float64"), gg.ones(2))
    (cast,) = [d for _, d in g.nx.nodes(data=True) if d["op"] == "cast"]
    assert cast["attrs"] == {"dtype": "float64"}
    assert "dtype=float64" in str(g) and "dtype=float64" in g.to_dot()


def test_an_explicit_output_gradient_must_live_on_the_outputs_device():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(gg.DeviceError, match="move it"):
        y.backward(gg.ones(2, device="array_api_strict"))
    y.backward(gg.ones(2, dtype="float64"), retain_graph=True)  # cast to the output's
    assert x.grad.dtype == np.float32


def test_dim_is_accepted_wherever_axis_is():
    x = gg.ones((2, 3))
    assert gg.sum(x, dim=1).shape == (2,) and gg.mean(x, dim=0).shape == (3,)
    assert gg.max(x, dim=1).shape == (2,) and x.argmax(dim=1).shape == (2,)


VALUES = np.array([[0.0, 1.5, 0.0], [2.0, -1.0, 0.0]])


@pytest.mark.parametrize("method", ["any", "all"])
@pytest.mark.parametrize("kwargs", [{}, {"axis": 0}, {"axis": 1, "keepdims": True},
                                    {"axis": (0, 1)}, {"axis": -1}])
def test_any_and_all_answer_as_numpys_in_a_bool_tensor_without_gradient(method, kwargs):
    x = gg.tensor(VALUES, requires_grad=True)
    got, want = getattr(x, method)(**kwargs), getattr(np, method)(VALUES, **kwargs)
    assert got.dtype == np.bool_ and not got.requires_grad
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.numpy(), want)
    np.testing.assert_array_equal(getattr(gg, method)(x, **kwargs).numpy(), want)


@pytest.mark.parametrize("method", ["any", "all"])
def test_any_and_all_take_pytorchs_dim_and_keepdim_and_answer_as_torch(method):
    torch = pytest.importorskip("torch")
    x, t = gg.tensor(VALUES > 0), torch.tensor(VALUES > 0)
    for dim, keepdim in [(0, False), (1, True), (-1, False)]:
        got = getattr(x, method)(dim=dim, keepdim=keepdim)
        want = getattr(t, method)(dim=dim, keepdim=keepdim)
        assert got.shape == tuple(want.shape)
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    empty = gg.zeros((0, 3), dtype="bool")
    assert empty.any(dim=0).numpy().tolist() == torch.zeros(0, 3).bool().any(dim=0).tolist()
    assert empty.all(dim=0).numpy().tolist() == [True, True, True]
    with pytest.raises(TypeError, match="axis= or dim="):
        getattr(x, method)(axis=0, dim=1)


def test_a_tensor_of_one_truth_value_from_any_or_all_decides_an_if():
    x = gg.tensor([[0.5, -1.0], [2.0, 3.0]])
    assert (x < 0).any() and not (x > 0).all()
    assert bool(gg.all(x > -2, axis=(0, 1))) is True
    with pytest.raises(ValueError, match=r"ambiguous; use \.any\(\) or \.all\(\)"):
        bool(x > 0)


def test_keepdim_is_accepted_wherever_dim_is():
    x = gg.tensor([[1.0, 5.0, 2.0], [4.0, 0.0, 6.0]])
    assert x.sum(dim=1, keepdim=True).numpy().tolist() == [[8.0], [10.0]]
    assert gg.max(x, dim=0, keepdim=True).numpy().tolist() == [[4.0, 5.0, 6.0]]
    assert gg.mean(x, keepdim=True).shape == (1, 1)
    assert gg.min(x, dim=1, keepdim=True).shape == (2, 1)
    assert x.argmax(dim=1, keepdim=True).numpy().tolist() == [[1], [2]]
    assert x.argmin(dim=0, keepdim=False).shape == (3,)
    assert gg.sum(x, 1, True, keepdim=True).shape == (2, 1)  # both, agreeing


def test_keepdims_and_keepdim_that_disagree_are_a_type_error():
    with pytest.raises(TypeError, match="keepdims= or keepdim="):
        gg.ones((2, 3)).sum(axis=1, keepdims=True, keepdim=False)


def test_concat_and_stack_take_dim_for_axis():
    a, b = gg.tensor([[1.0, 2.0]]), gg.tensor([[3.0, 4.0]])
    assert gg.concat([a, b], dim=1).numpy().tolist() == [[1.0, 2.0, 3.0, 4.0]]
    assert gg.cat([a, b], dim=0).numpy().tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert gg.stack([a, b], dim=-1).numpy().tolist() == [[[1.0, 3.0], [2.0, 4.0]]]
    assert gg.stack([a, b], axis=2, dim=2).shape == (1, 2, 2)  # both, agreeing
    with pytest.raises(TypeError, match="axis= or dim="):
        gg.concat([a, b], axis=1, dim=0)


def test_to_takes_a_dtype_name():
    assert gg.tensor([1.0]).to("float64").dtype == np.float64
    assert gg.tensor([1.0]).to(np.float64).dtype == np.float64


def test_to_takes_pytorchs_device_keyword():
    x = gg.tensor([1.0, 2.0])
    assert x.to(device="cpu").device == gg.device("cpu")
    moved = x.to("float64", device="cpu")
    assert moved.dtype == np.float64 and moved.device == gg.device("cpu")
    with pytest.raises(TypeError, match="give the device once"):
        x.to("cpu", device="cpu")


FLOOR_AND_REMAINDER_CASES = [
    ([-7, 7, -7, 7, 0], [2, 2, -2, -2, 3]),  # ints: rounded towards -inf
    ([-7.5, 7.5, -7.5, 7.5, 0.0], [2.0, 2.0, -2.0, -2.0, 3.0]),
    ([1.0, -1.0, 0.0, 3.0, -3.0], [0.0, 0.0, 0.0, float("inf"), float("inf")]),
]


@pytest.mark.parametrize("a, b", FLOOR_AND_REMAINDER_CASES)
@pytest.mark.parametrize("symbol", ["//", "%"])
def test_floor_division_and_remainder_give_pytorchs_values_and_dtypes(symbol, a, b):
    torch = pytest.importorskip("torch")
    ops = {"//": lambda x, y: x // y, "%": lambda x, y: x % y}
    op = ops[symbol]
    for ours, theirs in [(op(gg.tensor(a), gg.tensor(b)), op(torch.tensor(a), torch.tensor(b))),
                         (op(gg.tensor(a), 2.5), op(torch.tensor(a), 2.5)),
                         (op(gg.tensor(a), 2), op(torch.tensor(a), 2)),
                         (op(-7, gg.tensor(b[:2])), op(-7, torch.tensor(b[:2]))),
                         (op(gg.tensor(a), np.float64(1.5)), op(torch.tensor(a), 1.5))]:
        assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch.")
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_remainders_gradient_is_pytorchs_and_floor_division_has_none():
    torch = pytest.importorskip("torch")
    a_np, b_np = np.array([-7.5, 7.3, 2.2, -0.4]), np.array([2.0, -2.0, 0.7, 3.0])
    weights = np.arange(1.0, 5.0)
    a, b = gg.tensor(a_np, requires_grad=True), gg.tensor(b_np, requires_grad=True)
    ((a % b) * gg.tensor(weights)).sum().backward()
    ta, tb = torch.tensor(a_np, requires_grad=True), torch.tensor(b_np, requires_grad=True)
    ((ta % tb) * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy())
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy())
    assert not (a // b).requires_grad  # piecewise constant, as a comparison
    counts = gg.tensor([5, 6, 7])
    counts //= 2
    counts %= 2
    assert counts.numpy().tolist() == [0, 1, 1]
    with pytest.raises(gg.DTypeError, match=r"floor_divide in place: .* x = x // y"):
        counts //= 2.5
    x = gg.tensor([1.5, 3.5], requires_grad=True)
    y = x * 3.0
    halves = y * 1.0
    halves //= 2  # as halves = halves // 2: no gradient from here on (not y's old one)
    assert not halves.requires_grad
    (y.sum() + halves.sum()).backward()
    assert x.grad.numpy().tolist() == [3.0, 3.0]


def test_an_update_without_a_gradient_drops_it_in_a_compiled_function_as_in_eager_mode():
    def update(t):
        kept = t * 3.0
        halves = kept * 1.0
        halves //= 2
        return gg.grad(kept.sum() + halves.sum(), [t])[0], halves

    x = gg.tensor([1.5, 3.5], requires_grad=True)
    compiled = gg.compile(update)
    for grad, halves in (update(x), compiled(x), compiled(x)):
        assert grad.numpy().tolist() == [3.0, 3.0] and halves.numpy().tolist() == [2.0, 5.0]


def test_bool_operators_take_python_bools_on_either_side_and_xor():
    mask = gg.tensor([True, False])
    assert (True & mask).numpy().tolist() == [True, False]
    assert (False | mask).numpy().tolist() == [True, False]
    assert (mask ^ gg.tensor([True, True])).numpy().tolist() == [False, True]
    assert (True ^ mask).numpy().tolist() == [False, True]
    with pytest.raises(gg.DTypeError, match="logical_xor: .* must be a bool tensor"):
        gg.tensor([1, 2]) ^ gg.tensor([1, 1])


def test_in_looks_for_an_element_over_all_axes_as_pytorch_and_numpy():
    matrix = gg.tensor([[1, 2], [3, 4]])
    assert 2 in matrix and 7 not in matrix
    assert (2 in np.array([[1, 2], [3, 4]])) and 2.0 in gg.tensor([1.0, 2.0])


def test_a_tensor_compared_with_none_or_a_string_is_unequal_as_in_pytorch():
    x = gg.tensor(1.0)
    assert (x == None) is False and (x != None) is True  # noqa: E711  (the point)
    assert (x == "a") is False
    assert x not in [None, "a"] and x in [None, x]
    assert None not in gg.tensor([1, 2]) and "a" not in gg.tensor([1, 2])  # (as NumPy)


def test_iterating_over_a_0d_tensor_says_so_at_once():
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(gg.tensor(1.0))


def test_max_or_min_of_two_tensors_as_pytorch_writes_it_names_maximum_or_minimum():
    a, b = gg.tensor([1.0, 5.0]), gg.tensor([3.0, 2.0])
    with pytest.raises(TypeError, match=r"^max: .* is gg\.maximum\(x, y\).*test_edge_cases"):
        gg.max(a, b)
    with pytest.raises(TypeError, match=r"^min: .* is gg\.minimum\(x, y\)"):
        a.min(b)
    assert gg.tensor([[1.0, 5.0]]).max(gg.tensor(1)).numpy().tolist() == [5.0]  # an axis


def test_an_index_out_of_bounds_is_an_index_error_naming_the_op():
    x = gg.tensor([1.0, 2.0])
    for key in (5, [0, 5]):
        with pytest.raises(IndexError, match="getitem"):
            x[key]


@pytest.mark.parametrize("key", [5, [0, 9], np.array([0, 9]), "index tensor"])
def test_every_index_out_of_bounds_is_gpugrads_out_of_bounds_error(key):
    """An int is checked from the shape, an index array's values only by the kernel:
    both end as the same gg.OutOfBoundsError (a gg error, and still an IndexError)."""
    a = gg.tensor([1.0, 2.0, 3.0])
    key = gg.tensor([0, 9]) if isinstance(key, str) else key
    with pytest.raises(gg.OutOfBoundsError, match="getitem") as excinfo:
        a[key]
    assert "out of bounds" in str(excinfo.value) and "test_edge_cases.py" in str(excinfo.value)


@pytest.mark.parametrize("reduce, shape, axis", [
    ("max", (0,), None), ("min", (0,), None), ("max", (2, 0), 1), ("min", (0, 3), 0),
    ("argmax", (0,), None), ("argmin", (2, 0), 1),
])
def test_a_max_or_min_over_no_elements_is_a_shape_error_naming_the_op(reduce, shape, axis):
    with pytest.raises(gg.ShapeError) as excinfo:
        getattr(gg.zeros(shape), reduce)(axis=axis)
    message = str(excinfo.value)
    assert message.startswith(f"{reduce}: ") and "test_edge_cases.py" in message
    assert f"shape {shape}" in message and "empty" in message


def test_a_max_or_min_over_a_non_empty_axis_of_an_empty_tensor_is_empty():
    assert gg.zeros((2, 0)).max(axis=0).shape == (0,)
    assert gg.zeros((0, 3)).argmin(axis=1).shape == (0,)
    assert gg.zeros(0).sum().item() == 0.0  # a sum has an identity


def test_a_scalar_that_does_not_fit_names_the_op():
    with pytest.raises(gg.DTypeError, match="add"):
        gg.tensor([1, 2], dtype="uint8") + 300


def test_a_comparison_with_a_number_the_dtype_cannot_hold_answers_as_numpy():
    values = np.array([0, 200], dtype=np.uint8)
    x = gg.tensor(values)
    for ours, numpys in [(x < -1, values < -1), (x == 300, values == 300),
                         (x != 300, values != 300), (-1 < x, -1 < values),
                         (gg.tensor([-3, 100], dtype="int8") < 200,
                          np.array([-3, 100], dtype=np.int8) < 200)]:
        assert ours.dtype == np.bool_
        np.testing.assert_array_equal(ours.numpy(), numpys)


def test_leaves_get_gradient_tensors_of_their_own():
    a = gg.tensor([1.0], requires_grad=True)
    b = gg.tensor([1.0], requires_grad=True)
    (a + b).backward(gg.ones(1))
    assert a.grad is not b.grad


def test_python_dash_m_gpugrad_is_the_command():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "gpugrad", "info"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "default_device" in result.stdout


def test_in_place_updates_keep_the_parameter_and_need_no_grad():
    """The lecture's manual SGD, w = w - lr dw, written in place as PyTorch users do."""
    w = gg.tensor([1.0, 2.0], requires_grad=True)
    for _ in range(3):
        (w * w).sum().backward()
        with gg.no_grad():
            w -= 0.1 * w.grad
        w.grad = None
    np.testing.assert_allclose(w.numpy(), np.array([1.0, 2.0]) * 0.8**3, rtol=1e-6)
    assert w.requires_grad and w.is_leaf
    with pytest.raises(gg.GraphError, match="no_grad"):
        w += 1.0
    with gg.no_grad(), pytest.raises(gg.ShapeError, match="in-place"):
        w += gg.ones((2, 2))


def test_creation_takes_the_shape_as_sizes_a_tuple_or_shape_and_refuses_negative_sizes():
    for make in (gg.zeros, gg.ones, gg.randn, gg.rand):
        assert make(2, 3).shape == make((2, 3)).shape == make(shape=(2, 3)).shape == (2, 3)
        assert make(shape=4).shape == (4,)
        with pytest.raises(gg.ShapeError, match="negative sizes"):
            make(2, -1)
        with pytest.raises(TypeError, match="not both"):
            make(2, shape=(2,))
        with pytest.raises(TypeError, match="must be an integer, got 2.5"):
            make(2.5)  # int() would cut it to 2 without a word
    assert gg.full(shape=(2,), fill_value=7.0).numpy().tolist() == [7.0, 7.0]


def test_numpy_scalars_act_as_the_numbers_they_hold_in_creation_and_axes():
    assert gg.full((2,), np.float32(1.5)).numpy().tolist() == [1.5, 1.5]
    assert gg.full((2,), np.int64(2)).dtype == np.int64
    assert gg.arange(np.int64(3)).dtype == np.int64
    assert gg.zeros((2, 3)).transpose(np.int64(1), np.int64(0)).shape == (3, 2)
    assert gg.zeros((2, 3, 4)).transpose(np.int64(2), 0, 1).shape == (4, 2, 3)


@pytest.mark.parametrize("draw", [gg.randn, gg.rand])
def test_random_draws_refuse_a_dtype_that_cannot_hold_them(draw):
    with pytest.raises(gg.DTypeError, match="draws floats: dtype int64"):
        draw(2, dtype="int64")  # it gave zeros


def test_conflicting_axis_and_dim_name_the_reduction_and_the_line():
    with pytest.raises(TypeError, match=r"^sum: give axis= or dim=, not both \(at .*"
                       r"test_edge_cases.py"):
        gg.zeros((2, 2)).sum(axis=0, dim=1)


QUIET_SCRIPT = """
import numpy as np, gpugrad as gg
x = gg.tensor([0.0, -1.0, 1000.0], requires_grad=True)
(x.log() + x.exp() + x / 0.0 + x.sqrt()).sum().backward()
step = gg.compile(lambda a: (a.log() * a).exp())
step(x.detach()); step(x.detach())
with gg.detect_anomaly():
    try:
        gg.tensor([0.0]).log()
    except FloatingPointError as e:
        print("anomaly:", str(e).split(":")[0])
try:
    np.log(np.zeros(1))
except RuntimeWarning as e:
    print("own numpy:", e)
"""


def test_floating_point_warnings_of_gpugrads_kernels_stay_quiet():
    # log(0), 0/0, exp overflow: inf and nan are the answer, as in PyTorch (NumPy would
    # warn from gpugrad's own line); gg.detect_anomaly() is how to find them. Run as a
    # user's script with RuntimeWarnings made errors: only the user's own NumPy warns.
    result = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c",
                             QUIET_SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "anomaly: log", "own numpy: divide by zero encountered in log"]


HALF_OVERFLOW_SCRIPT = """
import numpy as np, gpugrad as gg
half = gg.tensor(np.full(8, 30000.0, dtype=np.float16))
print(half.sum().item(), (half * 1e6).numpy()[0], gg.full((2,), 1e6, dtype="float16")[0].item())
"""


def test_float16_overflows_stay_quiet_too():
    """The sum of float16 values past 65,504, a number that overflows float16: inf as
    the answer, without a warning from NumPy's own files (numeric.py, _methods.py), which
    a user cannot tell from theirs."""
    result = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c",
                             HALF_OVERFLOW_SCRIPT], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["inf inf inf"]


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # log(0), as meant
@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relus_gradient_is_zero_where_it_is_off_whatever_comes_from_above(device, dtype):
    """relu(x).sqrt() at x <= 0: sqrt's gradient there is inf, and relu passes nothing
    back where x <= 0 — 0, as PyTorch gives, not inf * 0 = NaN (eager and compiled)."""
    def grad_of(x):
        return gg.grad([x.relu().sqrt().sum() + x.relu().log().sum()], [x])[0]

    x = gg.tensor([-1.0, 0.0, 4.0], dtype=dtype, device=device, requires_grad=True)
    with np.errstate(divide="ignore"):  # both branches are evaluated
        expected = np.where(x.numpy() > 0, 0.5 / np.sqrt(np.abs(x.numpy())) + 1 / x.numpy(),
                            0.0)
    np.testing.assert_array_equal(grad_of(x).numpy(), expected.astype(dtype))
    compiled = gg.compile(grad_of)
    for _ in range(2):
        np.testing.assert_array_equal(compiled(x).numpy(), expected.astype(dtype))


@pytest.mark.parametrize("how", ["squeeze()", "squeeze(1)", "squeeze(0)", "squeeze((1, 3))",
                                 "squeeze(-1)", "unsqueeze(0)", "unsqueeze(-1)",
                                 "unsqueeze(2)"])
def test_squeeze_and_unsqueeze_give_pytorchs_shapes_and_gradients(how):
    torch = pytest.importorskip("torch")
    values = np.arange(6.0).reshape(2, 1, 3, 1)
    x = gg.tensor(values, requires_grad=True)
    t = torch.tensor(values, requires_grad=True)
    y, ty = eval(f"x.{how}"), eval(f"t.{how}")  # noqa: S307  (the method call under test)
    assert y.shape == tuple(ty.shape) and x.numel() == t.numel() == 6
    (y * gg.tensor(np.arange(y.size).reshape(y.shape))).sum().backward()
    (ty * torch.arange(ty.numel()).reshape(ty.shape)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())


def test_an_axis_out_of_range_for_squeeze_or_unsqueeze_is_a_shape_error_naming_it():
    x = gg.ones((2, 1))
    with pytest.raises(gg.ShapeError, match="unsqueeze: dim 3 is out of range"):
        x.unsqueeze(3)
    with pytest.raises(gg.ShapeError, match="squeeze: axis 2 is out of range"):
        x.squeeze(2)


@pytest.mark.parametrize("device", device_params())
def test_item_assignment_with_repeated_positions_keeps_the_last_value_as_numpy(device):
    values = np.arange(12.0).reshape(3, 4)
    x = gg.tensor(values, device=device)
    rows, cols = gg.tensor([2, 0, 2], device=device), gg.tensor([1, 3, 1], device=device)
    x[rows, cols] = gg.tensor([7.0, 8.0, 9.0], device=device)
    x[0, 0] = gg.tensor([[-1.0]], device=device)  # leading axes of size 1 are dropped
    want = values.copy()
    want[[2, 0, 2], [1, 3, 1]] = [7.0, 8.0, 9.0]
    want[0, 0] = -1.0
    np.testing.assert_array_equal(x.numpy(), want)


@pytest.mark.parametrize("device", device_params())
def test_item_assignment_into_a_0d_result_of_an_op_works_as_into_a_0d_leaf(device):
    """NumPy gives an op's 0-d result as a NumPy scalar, which takes no item assignment:
    the tensor must take it all the same, as PyTorch's does."""
    s = gg.tensor(1.0, device=device) + 1
    s[...] = 5.0
    assert s.item() == 5.0
    total = gg.ones((2, 2), device=device).sum()
    total[()] = gg.tensor(-1.0, device=device)
    assert total.item() == -1.0


@pytest.mark.parametrize("make", [
    lambda: (gg.tensor(1.0) + 1).detach().requires_grad_(),
    lambda: (gg.tensor(1.0) * 2).requires_grad_(),
    lambda: gg.nn.Parameter(gg.ones(3).sum() - 1),
    lambda: gg.tensor(gg.tensor(1.0) + 1, requires_grad=True),
], ids=["detach", "requires_grad_", "Parameter", "tensor"])
def test_a_0d_parameter_made_from_an_op_is_updated_in_place_eagerly_and_compiled(make):
    """An optimiser updates a parameter's array in place (a detach() of it follows), and
    a compiled step writes into it: also when the parameter's values came from an op,
    whose 0-d NumPy result is a scalar that cannot be written into."""
    w, v = make(), gg.tensor([1.0, 2.0], requires_grad=True)
    seen = w.detach()
    opt = gg.optim.SGD([w, v], lr=0.1, momentum=0.9)

    def step(x):
        opt.zero_grad()
        loss = ((v * w - x) ** 2).sum()
        loss.backward()
        opt.step()
        return loss

    step(gg.tensor([0.5, 0.5]))
    assert seen.item() == w.item() != 2.0
    compiled = gg.compile(step)
    losses = [compiled(gg.tensor([0.5, 0.5])).item() for _ in range(2)]
    w2, v2 = make(), gg.tensor([1.0, 2.0], requires_grad=True)
    opt2 = gg.optim.SGD([w2, v2], lr=0.1, momentum=0.9)
    eager = []
    for _ in range(3):
        opt2.zero_grad()
        loss = ((v2 * w2 - gg.tensor([0.5, 0.5])) ** 2).sum()
        loss.backward()
        opt2.step()
        eager.append(loss.item())
    assert losses == eager[1:]
    assert w.item() == w2.item() == seen.item()


def test_the_mean_of_no_elements_is_nan_quietly_eager_and_compiled():
    """As in PyTorch: NaN, with no NumPy warning (run with warnings as errors, as a
    user's own settings may have them; gpugrad's own filter stays in front)."""
    code = """if True:
        import numpy as np, gpugrad as gg
        for dtype in ("float16", "float32", "int64"):
            x = gg.zeros((0, 3), dtype=dtype)
            for mean in (lambda t: t.mean(axis=0), gg.compile(lambda t: t.mean(axis=0))):
                assert np.isnan(mean(x).numpy()).all() and mean(x).shape == (3,)
            assert np.isnan(x.mean().item())
        print("quiet")"""
    result = subprocess.run([sys.executable, "-W", "error", "-c", code],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "quiet\n" and result.stderr == ""


def test_a_sum_that_overflows_or_adds_opposite_infinities_is_quiet_eager_and_compiled():
    """inf and NaN, as an elementwise op's overflow gives them: with no NumPy warning
    from NumPy's own line (ndarray.sum's), which gpugrad's filter cannot reach."""
    code = """if True:
        import numpy as np, gpugrad as gg
        for values in ([3e38, 3e38], [np.inf, -np.inf]):
            x = gg.tensor(values)
            for f in (lambda t: t.sum(), lambda t: t.mean(), lambda t: t[None].sum(axis=1)):
                for run in (f, gg.compile(f), gg.compile(f)):
                    assert not np.isfinite(run(x).numpy()).any()
        print("quiet")"""
    result = subprocess.run([sys.executable, "-W", "error", "-c", code],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "quiet\n" and result.stderr == ""
