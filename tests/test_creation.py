"""Creating tensors with NumPy's and PyTorch's spellings: eye, linspace, full_like,
randint, and the argmax / argmin / clamp functions, on every backend."""

import numpy as np
import pytest
from conftest import device_params

import gpugrad as gg


@pytest.mark.parametrize("device", device_params())
def test_eye_and_linspace_make_numpys_values_on_the_device(device):
    assert gg.eye(3, device=device).device == gg.device(device)
    np.testing.assert_array_equal(gg.eye(3, device=device).numpy(), np.eye(3))
    np.testing.assert_array_equal(gg.eye(2, 4, dtype="int64", device=device).numpy(),
                                  np.eye(2, 4, dtype=np.int64))
    np.testing.assert_array_equal(gg.linspace(-1, 2, 7, device=device).numpy(),
                                  np.linspace(-1, 2, 7).astype(np.float32))
    assert gg.linspace(0, 1, steps=3, dtype="float64").numpy().tolist() == [0.0, 0.5, 1.0]


def test_full_like_keeps_the_shape_dtype_and_device():
    like = gg.zeros(2, 3, dtype="float64")
    filled = gg.full_like(like, 7)
    assert filled.shape == (2, 3) and filled.dtype == np.float64
    assert filled.numpy().tolist() == [[7.0] * 3] * 2


@pytest.mark.parametrize("device", device_params())
def test_randint_draws_every_integer_of_its_range_alike_and_repeats_with_the_seed(device):
    gg.manual_seed(3)
    first = gg.randint(2, 7, (5000,), device=device).numpy()
    gg.manual_seed(3)
    again = gg.randint(2, 7, size=(5000,), device=device).numpy()
    np.testing.assert_array_equal(first, again)
    assert first.dtype == np.int64 and first.min() == 2 and first.max() == 6
    counts = np.bincount(first - 2)
    assert (np.abs(counts - 1000) < 4.5 * np.sqrt(1000 * 0.8)).all()  # 4.5 sigma
    gg.manual_seed(3)
    torch_spelling = gg.randint(7, (5000,), device=device).numpy()  # randint(high, size)
    assert torch_spelling.min() == 0 and torch_spelling.max() == 6


def test_randint_refuses_an_empty_range():
    with pytest.raises(ValueError, match=r"randint draws from \[low, high\): got low=3, "
                       "high=3"):
        gg.randint(3, 3, (2,))


def test_a_compiled_function_draws_new_integers_on_every_run():
    draw = gg.compile(lambda x: x + gg.randint(0, 1000, (8,)))
    x = gg.zeros(8, dtype="int64")
    runs = [draw(x).numpy().tolist() for _ in range(3)]
    assert len({tuple(r) for r in runs}) == 3


def test_argmax_argmin_and_clamp_as_functions_are_the_methods():
    x = gg.tensor([[1.0, 3.0], [4.0, 2.0]])
    assert gg.argmax(x, dim=1).numpy().tolist() == x.argmax(axis=1).numpy().tolist() == [1, 0]
    assert gg.argmin(x).item() == 0
    assert gg.clamp(x, 1.5, 3.5).numpy().tolist() == [[1.5, 3.0], [3.5, 2.0]]


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("start, stop, step", [(1, 0, -0.1), (0, 1, 0.1), (-3.5, 2, 0.7),
                                               (0.5, 58.1, 1.7), (3.0, -4.3, -0.22)])
def test_arange_of_floats_gives_start_plus_i_steps_rounded_once(device, start, stop, step):
    """Each value is start + i * step rounded to float32 once, as PyTorch's are near
    enough (arange(1, 0, -0.1) is 1, 0.9, 0.8, 0.7, ...): NumPy's float32 arange adds a
    float32 step, and reached 0.6999999 there."""
    out = gg.arange(start, stop, step, device=device)
    exact = np.arange(start, stop, step)  # float64
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.numpy(), exact.astype(np.float32))


def test_arange_of_floats_into_an_int_dtype_truncates_the_values_not_the_step():
    out = gg.arange(0, 3, 0.5, dtype="int64")
    assert out.numpy().tolist() == [0, 0, 1, 1, 2, 2]  # NumPy's dtype=int64: six zeros


def test_arange_takes_its_bounds_from_tensors_of_one_element_as_pytorch():
    n = gg.tensor(3)
    assert gg.arange(n).dtype == np.int64 and gg.arange(n).numpy().tolist() == [0, 1, 2]
    assert gg.arange(gg.tensor(1.0), 2).numpy().tolist() == [1.0]


def test_full_takes_a_0d_tensor_and_refuses_a_value_its_integer_dtype_cannot_hold():
    filled = gg.full((2,), gg.tensor(3.0))
    assert filled.dtype == np.float32 and filled.numpy().tolist() == [3.0, 3.0]
    assert gg.full((2,), gg.tensor(3)).dtype == np.int64
    for value, dtype in [(float("nan"), "int64"), (float("inf"), "int32"), (300, "uint8"),
                         (-1, "uint8")]:
        with pytest.raises(gg.DTypeError, match=r"^full: .* (cannot be stored in|is out "
                           r"of the range of) .*test_creation\.py"):
            gg.full((2,), value, dtype=dtype)
    assert gg.full((2,), 255, dtype="uint8").numpy().tolist() == [255, 255]


@pytest.mark.parametrize("make", [gg.zeros_like, gg.ones_like,
                                  lambda t, **kw: gg.full_like(t, 2, **kw)])
def test_the_like_functions_take_pytorchs_device_keyword(make):
    like = gg.zeros(2, 3, dtype="float64")
    out = make(like, device="cpu")
    assert out.device == gg.device("cpu") and out.shape == (2, 3) and out.dtype == np.float64


@pytest.mark.parametrize("data", [2**63, [1, 2**64], -2**63 - 1])
def test_a_python_int_past_int64_is_refused_saying_so(data):
    """NumPy holds such ints as uint64 or objects, which gpugrad then named instead."""
    with pytest.raises(gg.DTypeError, match=r"^tensor: a Python int does not fit int64 .*"
                       r"dtype='float64'.*test_creation\.py"):
        gg.tensor(data)
    assert gg.tensor(data, dtype="float64").dtype == np.float64
    assert gg.tensor([2**63 - 1, -2**63]).dtype == np.int64
