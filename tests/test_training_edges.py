"""Edge cases of the training stack, each pinned down after review."""

import numpy as np
import pytest
from conftest import device_params

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F


@pytest.mark.parametrize("labels", [[-1], [3]])
def test_class_indices_outside_the_classes_are_an_index_error(labels):
    logits = gg.tensor([[0.1, 0.2, 0.3]], requires_grad=True)
    with pytest.raises(IndexError, match=r"class indices must be in \[0, 3\)"):
        F.cross_entropy(logits, labels)


class Cache(nn.Module):
    """A layer whose forward caches its activation as an attribute (and scales it by
    `scale`, where one was added)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        self.last = self.fc(x).relu()
        return self.last * self.scale if hasattr(self, "scale") else self.last


def test_tensors_cached_in_forward_are_not_part_of_the_model():
    model = Cache()
    model(gg.ones((1, 2)))
    assert sorted(model.state_dict()) == ["fc.bias", "fc.weight"]
    Cache().load_state_dict(model.state_dict())


def test_a_parameter_added_to_a_model_already_run_is_trained_and_saved():
    """An nn.Parameter assigned after the model's first call (a learned scale added
    for fine-tuning) is a parameter, as in PyTorch: it was a plain attribute, silently
    never trained by an optimiser of model.parameters() and missing from the state
    dict. A tensor cached by the forward at the same time stays out."""
    model = Cache()
    model(gg.ones((1, 2)))
    model.scale = nn.Parameter(gg.ones(2))
    # (a module's own parameters before its submodules', as PyTorch lists them)
    assert [name for name, _ in model.named_parameters()] == ["scale", "fc.weight",
                                                              "fc.bias"]
    assert sorted(model.state_dict()) == ["fc.bias", "fc.weight", "scale"]
    opt = gg.optim.SGD(model.parameters(), lr=0.5)
    x = gg.tensor([[1.0, 2.0]])
    expected = 1 - 0.5 * model.fc(x).relu().numpy()[0]  # d sum(h * scale) / d scale = h
    model(x).sum().backward()
    opt.step()
    np.testing.assert_allclose(model.scale.numpy(), expected, rtol=1e-6)
    assert sorted(model.state_dict()) == ["fc.bias", "fc.weight", "scale"]


def test_frozen_parameters_are_kept_by_the_optimiser_and_left_alone():
    model = nn.MLP([2, 3, 1])
    for p in model[0].parameters():
        p.requires_grad_(False)
    before = model[0].weight.numpy().copy()
    opt = gg.optim.SGD(model.parameters(), lr=0.1)
    model(gg.ones((4, 2))).sum().backward()
    opt.step()
    assert np.array_equal(model[0].weight.numpy(), before)


@pytest.mark.parametrize("bad_grad, error, says", [
    (lambda: gg.tensor([1.0]), gg.ShapeError, "has shape (1,), the tensor (3,)"),
    (lambda: gg.tensor([1.0, 2.0, 3.0], dtype="float64"), gg.DTypeError,
     "is float64, the tensor float32"),
    (lambda: gg.ones(3, device="array_api_strict"), gg.DeviceError,
     "is on array_api_strict, the tensor on cpu"),
], ids=["shape", "dtype", "device"])
def test_a_gradient_that_does_not_fit_is_refused_where_it_is_assigned(bad_grad, error, says):
    # As PyTorch: .grad must be what backward would have made (it would otherwise be
    # broadcast, cast or copied silently by the optimiser), said at the assigning line.
    b = gg.tensor([1.0, 1.0, 1.0], requires_grad=True)
    with pytest.raises(error, match=r"^\.grad: the assigned gradient ") as excinfo:
        b.grad = bad_grad()
    assert says in str(excinfo.value) and "test_training_edges.py" in str(excinfo.value)
    assert b.grad is None
    with pytest.raises(TypeError, match="must be a Tensor or None"):
        b.grad = np.ones(3)


def test_a_step_with_a_bad_gradient_changes_no_parameter():
    a = gg.tensor([1.0, 1.0], requires_grad=True)
    b = gg.tensor([1.0, 1.0, 1.0], requires_grad=True)
    opt = gg.optim.AdamW([a, b], lr=0.1, weight_decay=0.5)
    a.grad = gg.tensor([1.0, 1.0])
    b._grad = gg.tensor([1.0])  # past .grad's own check: the optimiser checks again
    with pytest.raises(gg.ShapeError, match="gradient of shape"):
        opt.step()
    assert a.numpy().tolist() == [1.0, 1.0] and b.numpy().tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("bad_grad, error, says", [
    (lambda: gg.tensor([1, 2, 3]), gg.DTypeError, "gradient of dtype int64"),
    (lambda: gg.tensor([1.0, 2.0, 3.0], dtype="float64"), gg.DTypeError,
     "gradient of dtype float64"),
    (lambda: gg.tensor([1.0, 2.0]), gg.ShapeError, "gradient of shape (2,)"),
    (lambda: gg.ones(3, device="array_api_strict"), gg.DeviceError,
     "gradient on array_api_strict"),
], ids=["int64", "float64", "shape", "device"])
@pytest.mark.parametrize("make", [
    lambda ps: gg.optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: gg.optim.Adam(ps, lr=0.1),
    lambda ps: gg.optim.AdamW(ps, lr=0.1, weight_decay=0.5),
], ids=["SGD", "Adam", "AdamW"])
def test_a_gradient_that_does_not_match_its_parameter_is_refused_and_nothing_changes(
        make, bad_grad, error, says):
    """The gradient must have its parameter's shape, dtype and device: anything else
    would be broadcast, cast or copied silently. The error names the parameter (its
    place among the optimiser's parameters, shape, dtype, device), and neither the
    parameters nor the optimiser's state move."""
    a = gg.tensor([1.0, 2.0], requires_grad=True)
    b = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    opt = make([a, b])
    a.grad, b.grad = gg.ones(2), gg.ones(3)
    opt.step()  # a first step, so that there is state to keep
    params_before = [a.numpy().copy(), b.numpy().copy()]
    state_before = {k: v.numpy().copy() if isinstance(v, gg.Tensor) else v
                    for k, v in opt.state_dict()["state"][1].items()}

    a.grad, b._grad = gg.ones(2), bad_grad()  # past .grad's own check (the test above)
    with pytest.raises(error) as excinfo:
        opt.step()

    message = str(excinfo.value)
    assert message.startswith(f"{type(opt).__name__}.step: parameter 1 (shape (3,), "
                              "float32, on cpu)"), message
    assert says in message and "test_training_edges.py" in message
    assert [a.numpy().tolist(), b.numpy().tolist()] == [p.tolist() for p in params_before]
    state_after = opt.state_dict()["state"][1]
    assert state_after.keys() == state_before.keys()
    for key, value in state_before.items():
        after = state_after[key]
        assert (after.numpy().tolist() if isinstance(after, gg.Tensor) else after) == \
            (value.tolist() if isinstance(value, np.ndarray) else value), key


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("make", [
    lambda d: gg.zeros(3, device=d).broadcast_to((2, 3)).detach().requires_grad_(),
    lambda d: gg.nn.Parameter(gg.zeros(3, device=d).broadcast_to((2, 3))),
], ids=["requires_grad_", "Parameter"])
def test_a_parameter_made_from_a_broadcast_view_is_trained_in_memory_of_its_own(make,
                                                                                device):
    """A broadcast view's elements share memory (NumPy's and array-api-strict's views are
    read-only, CuPy's are not): a parameter made from one gets an array of its own, so
    that every step updates every parameter (an update into the view failed after the
    parameters before it had moved) and each element moves by its own gradient."""
    a = gg.tensor([1.0, 2.0], requires_grad=True, device=device)
    b = make(device)
    opt = gg.optim.SGD([a, b], lr=0.1)
    (a.sum() + (b * gg.tensor([[1.0], [2.0]], device=device)).sum()).backward()
    opt.step()
    np.testing.assert_allclose(a.numpy(), [0.9, 1.9])
    np.testing.assert_allclose(b.numpy(), [[-0.1] * 3, [-0.2] * 3])


def test_a_view_whose_elements_share_memory_is_not_updatable_in_place():
    # CuPy's broadcast views are writable, with a zero stride: as this NumPy view is.
    backend = gg.device("cpu").backend
    shared = np.lib.stride_tricks.as_strided(np.zeros(3), (2, 3), (0, 8), writeable=True)
    assert not backend.updatable(shared)
    assert not backend.updatable(np.broadcast_to(np.zeros(3), (2, 3)))
    assert backend.updatable(np.zeros((2, 3)).T) and backend.updatable(np.zeros((1, 3))[:, ::2])
    assert backend.updatable(np.lib.stride_tricks.as_strided(np.zeros(3), (1, 3), (0, 8)))
    t = gg.Tensor._wrap(shared, np.dtype("float64"), gg.device("cpu"), False)
    t.requires_grad = True
    t.grad = gg.ones((2, 3), dtype="float64")
    gg.optim.SGD([t], lr=1.0).step()
    np.testing.assert_array_equal(t.numpy(), -np.ones((2, 3)))


def test_a_parameter_listed_twice_is_refused():
    p = gg.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="more than once"):
        gg.optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)


def test_loading_optimiser_state_of_other_shapes_is_refused():
    a = gg.tensor([1.0, 2.0], requires_grad=True)
    opt = gg.optim.Adam([a])
    a.grad = gg.ones(2)
    opt.step()
    other = gg.optim.Adam([gg.tensor([1.0], requires_grad=True)])
    with pytest.raises(ValueError, match="has shape"):
        other.load_state_dict(opt.state_dict())


def test_a_loader_over_lists_of_floats_gives_float32_batches():
    xb, yb = next(iter(gg.data.DataLoader([[0.1, 0.2], [0.3, 0.4]], [0, 1], batch_size=2)))
    assert xb.dtype == np.float32 and yb.dtype == np.int64


def test_checkpoint_keys_never_meet_numpys_own_names(tmp_path):
    path = tmp_path / "ck.npz"
    gg.save({"file": gg.ones(2), "allow_pickle": np.arange(3)}, path)
    loaded = gg.load(path)
    assert loaded["file"].numpy().tolist() == [1.0, 1.0]
    assert loaded["allow_pickle"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("bad, message", [
    ({"o": np.array([object()])}, "without pickle"),
    ({True: 1}, "str or int"),
    ({1: 1, "1": 2}, "collide"),
])
def test_checkpoints_refuse_what_would_not_load_back(tmp_path, bad, message):
    with pytest.raises(TypeError, match=message):
        gg.save(bad, tmp_path / "ck.npz")
