"""Bad input gets a clear error: the right exception class (a subclass of the built-in a
user would catch), naming the op, the shapes/dtypes/devices involved and the line of the
user's code that made the call."""

import sys

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn.functional as F

THIS_FILE = "test_errors.py"


def next_line():
    """The line number just after the caller's current line: put it right above the
    statement whose call site the error message should name."""
    return sys._getframe(1).f_lineno + 1


def squeezed(message):
    """The message without spaces, so '(2, 3)' and '(2,3)' both read as '(2,3)'."""
    return message.replace(" ", "")


def test_error_classes_subclass_the_builtins():
    assert issubclass(gg.ShapeError, ValueError)
    assert issubclass(gg.DTypeError, TypeError)
    assert issubclass(gg.DeviceError, RuntimeError)


# ---------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------


def test_add_with_unbroadcastable_shapes_names_op_shapes_and_call_site():
    a, b = gg.ones((2, 3)), gg.ones((4,))
    with pytest.raises(gg.ShapeError) as excinfo:
        line = next_line()
        a + b

    message = str(excinfo.value)
    assert "add" in message
    assert "(2,3)" in squeezed(message)
    assert "(4,)" in squeezed(message)
    assert f"{THIS_FILE}:{line}" in message


def test_shape_error_is_caught_as_a_value_error():
    with pytest.raises(ValueError):
        gg.ones((2, 3)) + gg.ones((4,))


def test_shape_error_when_the_mismatched_inputs_require_grad():
    a = gg.ones((2, 3))
    b = gg.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    with pytest.raises(gg.ShapeError, match="add"):
        b + a


def test_matmul_with_mismatched_inner_dimensions_names_op_shapes_and_call_site():
    a, b = gg.ones((2, 3)), gg.ones((4, 5))
    with pytest.raises(gg.ShapeError) as excinfo:
        line = next_line()
        a @ b

    message = str(excinfo.value)
    assert "matmul" in message
    assert "(2,3)" in squeezed(message)
    assert "(4,5)" in squeezed(message)
    assert f"{THIS_FILE}:{line}" in message


@pytest.mark.parametrize("new_shape", [(4,), (4, 2), (5, -1)])
def test_reshape_to_an_incompatible_size_raises_shape_error(new_shape):
    x = gg.ones((2, 3))
    with pytest.raises(gg.ShapeError):
        x.reshape(*new_shape)


# ---------------------------------------------------------------------------
# Dtypes
# ---------------------------------------------------------------------------


def test_requires_grad_on_an_integer_tensor_raises_dtype_error():
    with pytest.raises(gg.DTypeError):
        gg.tensor([1, 2, 3], requires_grad=True)


def test_requires_grad_on_an_integer_numpy_array_raises_dtype_error():
    with pytest.raises(TypeError):
        gg.tensor(np.arange(3, dtype=np.int32), requires_grad=True)


def test_integer_tensor_without_requires_grad_is_fine():
    t = gg.tensor([1, 2, 3])
    assert t.dtype == np.int64
    assert t.requires_grad is False


@pytest.mark.parametrize(
    "condition", [[1.0, 0.0, 1.0], [1, 0, 1]], ids=["float condition", "int condition"]
)
def test_where_with_a_non_boolean_condition_raises_dtype_error(condition):
    a, b = gg.ones((3,)), gg.zeros((3,))
    with pytest.raises(gg.DTypeError):
        gg.where(gg.tensor(condition), a, b)


def test_indexing_with_a_float_tensor_raises():
    x = gg.tensor([1.0, 2.0, 3.0])
    with pytest.raises((IndexError, gg.DTypeError)):
        x[gg.tensor([0.0, 1.0])]


@pytest.mark.parametrize("index", [True, gg.tensor(True), np.bool_(False)],
                         ids=["bool", "0-d tensor", "numpy bool"])
def test_a_0d_boolean_index_is_refused_with_what_to_use_instead(index):
    with pytest.raises(gg.DTypeError, match=r"getitem: a 0-d boolean index .* not "
                                            r"supported; index with None"):
        gg.ones((2, 3))[index]  # NumPy's own "nonzero on 0d arrays" error came through


@pytest.mark.parametrize("mask", [
    gg.tensor([True, False, False]),
    gg.tensor([True]),
    gg.tensor([[True, False, True]]),
    np.array([True, False, False]),
], ids=["too long", "too short", "too few rows", "numpy mask"])
def test_a_boolean_mask_of_the_wrong_shape_is_an_index_error_naming_both_shapes(mask):
    a = gg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    with pytest.raises(gg.OutOfBoundsError) as excinfo:
        line = next_line()
        a[mask]

    assert isinstance(excinfo.value, IndexError)
    message = squeezed(str(excinfo.value))
    assert "getitem" in message and f"{THIS_FILE}:{line}" in message
    assert f"maskofshape{tuple(mask.shape)}".replace(" ", "") in message
    assert "tensorofshape(2,3)" in message


def test_a_boolean_mask_after_other_indices_is_checked_against_the_axes_it_covers():
    a = gg.ones((2, 3, 4))
    assert a[..., gg.tensor([True, False, True, True])].shape == (2, 3, 3)
    assert a[0, gg.ones((3, 4)) > 0].shape == (12,)
    with pytest.raises(gg.OutOfBoundsError, match=r"indexed shape \(4,\) from axis 2"):
        a[..., gg.tensor([True, False, True])]
    with pytest.raises(gg.OutOfBoundsError, match=r"indexed shape \(3,\) from axis 1"):
        a[1, gg.tensor([True, False])]


def test_a_boolean_mask_of_the_right_shape_picks_and_routes_gradients_back():
    a = gg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    picked = a[a > 2.5]
    assert picked.numpy().tolist() == [3.0, 4.0, 5.0, 6.0]
    (picked * 2).sum().backward()
    assert a.grad.numpy().tolist() == [[0.0, 0.0, 2.0], [2.0, 2.0, 2.0]]
    assert a[gg.tensor([False, True])].numpy().tolist() == [[4.0, 5.0, 6.0]]


# ---------------------------------------------------------------------------
# Losses and functions made of ops: errors name the public function, not an op inside
# ---------------------------------------------------------------------------

LOSS_AND_FUNCTION_ERRORS = [
    # (error class, public name, call, what the message must also say)
    (gg.DTypeError, "cross_entropy",
     lambda: F.cross_entropy(gg.randn(4, 3), gg.randn(4)), ["float32", "(4,3)"]),
    (gg.ShapeError, "cross_entropy",
     lambda: F.cross_entropy(gg.randn(4, 3), gg.tensor([0, 1])), ["(2,)", "(4,3)"]),
    (gg.ShapeError, "cross_entropy",
     lambda: F.cross_entropy(gg.randn(3), gg.tensor([0, 1])), ["(3,)", "(2,)"]),
    (gg.OutOfBoundsError, "cross_entropy",
     lambda: F.cross_entropy(gg.randn(1, 3), [3]), ["[0,3)"]),
    (gg.ShapeError, "nll_loss",
     lambda: F.nll_loss(gg.randn(4, 3), gg.tensor([0, 1])), ["(2,)", "(4,3)"]),
    (gg.ShapeError, "mse_loss",
     lambda: F.mse_loss(gg.randn(4), gg.randn(3)), ["(4,)", "(3,)"]),
    (gg.ShapeError, "binary_cross_entropy",
     lambda: F.binary_cross_entropy(gg.rand(4), gg.rand(3)), ["(4,)", "(3,)"]),
    (gg.ShapeError, "binary_cross_entropy_with_logits",
     lambda: F.binary_cross_entropy_with_logits(gg.rand(4), gg.rand(3)), ["(4,)", "(3,)"]),
    (gg.ShapeError, "softmax",
     lambda: F.softmax(gg.rand(4), axis=3), ["axis3", "(4,)"]),
    (gg.ShapeError, "log_softmax",
     lambda: F.log_softmax(gg.rand(2, 4), dim=-3), ["axis-3", "(2,4)"]),
    (gg.ShapeError, "item()",
     lambda: gg.rand(4).item(), ["(4,)"]),
]


@pytest.mark.parametrize("error, name, call, facts", LOSS_AND_FUNCTION_ERRORS,
                         ids=[f"{case[1]}-{i}" for i, case in
                              enumerate(LOSS_AND_FUNCTION_ERRORS)])
def test_loss_and_function_errors_name_the_public_function_its_inputs_and_the_line(
        error, name, call, facts):
    with pytest.raises(error) as excinfo:
        call()

    message = str(excinfo.value)
    assert message.startswith(f"{name}: "), message
    assert f"{THIS_FILE}:{call.__code__.co_firstlineno}" in message
    for fact in facts:
        assert fact in squeezed(message), (fact, message)
    assert " max:" not in message  # softmax's inner max is not the user's business


# ---------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------


def strict_tensor(values):
    """A tensor on the test-only second backend, array-api-strict."""
    t = gg.tensor(values, device="array_api_strict")
    assert t.device == "array_api_strict"
    return t


def test_mixing_devices_raises_device_error_naming_op_and_devices():
    on_cpu = gg.tensor([1.0, 2.0])
    elsewhere = strict_tensor([3.0, 4.0])
    assert on_cpu.device == "cpu"

    with pytest.raises(gg.DeviceError) as excinfo:
        line = next_line()
        on_cpu + elsewhere

    message = str(excinfo.value)
    assert "add" in message
    assert "cpu" in message
    assert "array_api_strict" in message
    assert f"{THIS_FILE}:{line}" in message


@pytest.mark.parametrize(
    "op_name, call",
    [
        ("mul", lambda a, b: b * a),
        ("matmul", lambda a, b: a.reshape(1, 2) @ b.reshape(2, 1)),
        ("maximum", lambda a, b: gg.maximum(a, b)),
    ],
)
def test_mixing_devices_in_other_ops_raises_device_error(op_name, call):
    on_cpu = gg.tensor([1.0, 2.0], requires_grad=True)
    elsewhere = strict_tensor([3.0, 4.0])
    with pytest.raises(gg.DeviceError, match=op_name):
        call(on_cpu, elsewhere)


def test_device_error_is_caught_as_a_runtime_error():
    with pytest.raises(RuntimeError):
        gg.tensor([1.0]) * strict_tensor([2.0])


def test_ops_on_one_non_cpu_device_work_and_cross_with_numpy():
    """The second backend is a real device: same-device ops run, .numpy() crosses back."""
    a, b = strict_tensor([1.0, 2.0]), strict_tensor([3.0, 4.0])
    c = a * b + a
    assert c.device == "array_api_strict"
    np.testing.assert_allclose(c.numpy(), [4.0, 10.0])


def test_to_with_a_name_that_is_neither_device_nor_dtype_says_both():
    with pytest.raises(gg.DeviceError, match=r"\.to\('bogus'\): neither a device .* nor "
                                             r"a dtype"):
        gg.ones(2).to("bogus")
    assert gg.ones(2).to("float64").dtype == np.float64


def scale_an_int_tensor_in_place():
    x = gg.tensor([1, 2])
    x *= 2.5


def update_a_leaf_in_place():
    w = gg.tensor([1.0], requires_grad=True)
    w += 1.0


def broadcast_in_place():
    x = gg.zeros(2)
    x += gg.ones((3, 2))


@pytest.mark.parametrize("call, error, names", [
    (scale_an_int_tensor_in_place, gg.DTypeError, "mul in place"),
    (update_a_leaf_in_place, gg.GraphError, "in-place update of a leaf"),
    (broadcast_in_place, gg.ShapeError, "add in place"),
    (lambda: gg.tensor([[1, 2], [3]]), gg.DTypeError, "tensor: cannot make a tensor"),
    (lambda: gg.tensor("abc"), gg.DTypeError, "tensor: cannot make a tensor of dtype <U3 "
                                             "\\(from a str\\)"),
    (lambda: gg.tensor([1j]), gg.DTypeError, "tensor: cannot make a tensor of dtype "
                                            "complex128"),
    (lambda: gg.zeros((-1, 2)), gg.ShapeError, "negative sizes"),
    (lambda: gg.arange(0, 1, 0), ValueError, "arange: step must not be zero"),
    (lambda: (gg.ones(3, requires_grad=True) * 2).backward(), gg.GraphError,
     "backward\\(\\) of a tensor of shape \\(3,\\)"),
    (lambda: gg.grad(gg.ones(3) * 2, [gg.ones(1, requires_grad=True)]), gg.GraphError,
     "gg.grad: a tensor of shape \\(3,\\) does not require grad"),
    (lambda: gg.grad(gg.ones(2, requires_grad=True).sum(), [gg.ones(2, requires_grad=True),
                                                          gg.ones(2)]), gg.GraphError,
     "gg.grad: input 1 \\(shape \\(2,\\)\\) does not require grad"),
], ids=["int *= float", "leaf +=", "+= broadcast", "ragged list", "a string",
        "complex numbers", "negative size",
        "arange step 0", "backward of a vector", "gg.grad without a graph",
        "gg.grad of an input without grad"])
def test_errors_outside_the_ops_name_what_failed_and_the_users_line_too(call, error, names):
    with pytest.raises(error, match=f"{names}.*\\(at {THIS_FILE}:\\d+\\)"):
        call()
