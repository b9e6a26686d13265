"""Edge cases of the training stack, each pinned down after review."""

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F


@pytest.mark.parametrize("labels", [[-1], [3]])
def test_class_indices_outside_the_classes_are_an_index_error(labels):
    logits = gg.tensor([[0.1, 0.2, 0.3]], requires_grad=True)
    with pytest.raises(IndexError, match=r"class indices must be in \[0, 3\)"):
        F.cross_entropy(logits, labels)


def test_a_column_of_labels_is_accepted():
    logits = gg.tensor([[0.1, 0.2, 0.3], [1.0, 0.0, 0.0]])
    column = F.cross_entropy(logits, gg.tensor([[2], [0]]))
    assert np.isclose(column.item(), F.cross_entropy(logits, gg.tensor([2, 0])).item())


def test_tensors_cached_in_forward_are_not_part_of_the_model():
    class Cache(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            self.last = self.fc(x).relu()
            return self.last

    model = Cache()
    model(gg.ones((1, 2)))
    assert sorted(model.state_dict()) == ["fc.bias", "fc.weight"]
    Cache().load_state_dict(model.state_dict())


def test_frozen_parameters_are_kept_by_the_optimiser_and_left_alone():
    model = nn.MLP([2, 3, 1])
    for p in model[0].parameters():
        p.requires_grad_(False)
    before = model[0].weight.numpy().copy()
    opt = gg.optim.SGD(model.parameters(), lr=0.1)
    model(gg.ones((4, 2))).sum().backward()
    opt.step()
    assert np.array_equal(model[0].weight.numpy(), before)


def test_a_step_with_a_bad_gradient_changes_no_parameter():
    a = gg.tensor([1.0, 1.0], requires_grad=True)
    b = gg.tensor([1.0, 1.0, 1.0], requires_grad=True)
    opt = gg.optim.AdamW([a, b], lr=0.1, weight_decay=0.5)
    a.grad = gg.tensor([1.0, 1.0])
    b.grad = gg.tensor([1.0])  # would broadcast silently
    with pytest.raises(gg.ShapeError, match="gradient of shape"):
        opt.step()
    assert a.numpy().tolist() == [1.0, 1.0] and b.numpy().tolist() == [1.0, 1.0, 1.0]


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
