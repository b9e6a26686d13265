"""gg.detect_anomaly(): the first NaN or Inf, forward or backward, named with its op and
the user's line that created it."""

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's own, on 0s


def line_of(marker):
    source = open(__file__).read().splitlines()
    return next(i for i, text in enumerate(source, 1) if marker in text and "line_of" not in text)


def test_a_planted_log_of_zero_is_named_with_its_line():
    x = gg.tensor([1.0, 0.0, 2.0], requires_grad=True)
    with gg.detect_anomaly(), pytest.raises(gg.AnomalyError) as info:
        x.log()  # plant: log(0)
    message = str(info.value)
    assert message.startswith("log: its output has 0 NaN and 1 Inf")
    assert f"test_anomaly.py:{line_of('plant: log(0)')}" in message


def test_a_planted_zero_over_zero_in_backward_names_the_forward_op():
    z = gg.tensor([0.0, 4.0], requires_grad=True)
    with gg.detect_anomaly():
        root = (z * 0.0).sqrt()  # plant: sqrt at 0, its gradient 0/0 below
        loss = (root * 0.0).sum()
        with pytest.raises(gg.AnomalyError) as info:
            loss.backward()
    message = str(info.value)
    assert message.startswith("sqrt: its backward (the gradient for input 0) has 2 NaN")
    assert f"test_anomaly.py:{line_of('plant: sqrt at 0')}" in message


def test_it_is_a_floating_point_error_and_off_outside_the_block():
    assert issubclass(gg.AnomalyError, FloatingPointError)
    x = gg.tensor([0.0], requires_grad=True)
    assert np.isinf(x.log().numpy()).all()  # no check outside the block
    with pytest.raises(gg.AnomalyError), gg.detect_anomaly():
        x.log()
    assert np.isinf(x.log().numpy()).all()  # and off again after an error


def test_a_healthy_training_step_passes_untouched():
    gg.manual_seed(0)
    model = nn.MLP([4, 8, 3])
    with gg.detect_anomaly():
        loss = F.cross_entropy(model(gg.randn(5, 4)), gg.tensor([0, 1, 2, 0, 1]))
        loss.backward()
    assert all(np.isfinite(p.grad.numpy()).all() for p in model.parameters())


@pytest.mark.parametrize("make", [
    lambda ps: gg.optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: gg.optim.Adam(ps, lr=0.1),
], ids=["sgd", "adam"])
def test_a_step_that_would_make_a_parameter_nan_raises_and_changes_nothing(make):
    """A NaN gradient set by hand (no op made it, so no op's check saw it): under
    detect_anomaly the step names the parameter and the line, and leaves every parameter
    and the optimiser's state as they were, the ones before it in the list too."""
    a = gg.tensor([1.0, 2.0], requires_grad=True)
    b = gg.tensor([3.0, 4.0], requires_grad=True)
    opt = make([a, b])
    (a * b).sum().backward()
    opt.step()
    state = {id(p): {k: np.copy(v) for k, v in s.items()} for p, s in opt.state.items()}
    values = (a.numpy(), b.numpy())
    with gg.no_grad():
        b.grad = gg.tensor([float("nan"), 1.0])
    with gg.detect_anomaly(), pytest.raises(gg.AnomalyError) as info:
        opt.step()  # plant: a NaN gradient
    message = str(info.value)
    assert message.startswith(f"{type(opt).__name__}.step: parameter 1 (shape (2,), float32) "
                              "would get 1 NaN")
    assert f"test_anomaly.py:{line_of('plant: a NaN gradient')}" in message
    np.testing.assert_array_equal(a.numpy(), values[0])
    np.testing.assert_array_equal(b.numpy(), values[1])
    after = {id(p): s for p, s in opt.state.items()}
    for key, saved in state.items():
        for name, value in saved.items():
            np.testing.assert_array_equal(after[key][name], value)
    opt.step()  # outside the block: applied, as PyTorch's step applies it
    assert not np.array_equal(a.numpy(), values[0]) and np.isnan(b.numpy()[0])
