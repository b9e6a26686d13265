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
