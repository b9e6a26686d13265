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
