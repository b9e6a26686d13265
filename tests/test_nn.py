"""gpugrad.nn: Module bookkeeping, state dicts, layers, initialisers, and a trained MLP.

What is checked:

* Module: Tensor attributes that require grad are parameters, other Tensor attributes
  are buffers; submodules nest with dotted names in assignment order; train()/eval()
  reach every submodule; zero_grad(); .to(device) moves parameters in place.
* state_dict()/load_state_dict(): round trips, copies, and a StateDictError that names
  every missing key, every unexpected key and every shape mismatch.
* Linear against torch.nn.Linear (forward and gradients), its initialisers' statistics
  against their closed forms, reproducibility under gg.manual_seed.
* Sequential, the activation modules, Dropout, MLP.
* Editing Sequential and ModuleList (append, extend, insert, s[i] = m, del, slices)
  names the modules as PyTorch does; ModuleList/ModuleDict register their modules; a
  plain list or dict of modules as an attribute is an error; shared submodules and
  cycles are walked once; sizes must be integers; Dropout(p=1).
* End to end: an MLP with sigmoid hidden units learns XOR by full-batch gradient descent.

Expected values come from PyTorch, NumPy or closed forms, never from gpugrad itself.
Tests that need PyTorch skip where it is not installed.
"""

import importlib.util
import math
import re

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F

HAS_STRICT = importlib.util.find_spec("array_api_strict") is not None


def values(t):
    """A gpugrad tensor's values as a float64 NumPy array."""
    return np.asarray(t.numpy(), dtype=np.float64)


def shapes(tensors):
    return [tuple(t.shape) for t in tensors]


class Affine(nn.Module):
    """y = x * scale + shift, with a running-count buffer that is not a parameter."""

    def __init__(self, n):
        super().__init__()
        self.scale = gg.ones(n, requires_grad=True)
        self.shift = gg.zeros(n, requires_grad=True)
        self.count = gg.zeros(1)  # a buffer: a Tensor that does not require grad

    def forward(self, x):
        return x * self.scale + self.shift


class TwoLayer(nn.Module):
    """fc1 -> relu -> fc2, plus a nested Affine and a plain non-Tensor attribute."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 5)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(5, 2)
        self.post = Affine(2)
        self.name = "two-layer"  # neither a parameter nor a buffer

    def forward(self, x):
        return self.post(self.fc2(self.act(self.fc1(x))))


TWO_LAYER_PARAMS = [
    ("fc1.weight", (5, 3)), ("fc1.bias", (5,)),
    ("fc2.weight", (2, 5)), ("fc2.bias", (2,)),
    ("post.scale", (2,)), ("post.shift", (2,)),
]


# --------------------------------------------------------------------------------------
# Module: parameters, buffers, names
# --------------------------------------------------------------------------------------


def test_tensor_attributes_that_require_grad_are_parameters_and_the_rest_buffers():
    """Affine has two parameters (scale, shift) and one buffer (count)."""
    m = Affine(4)
    params = m.parameters()
    assert isinstance(params, list)
    assert len(params) == 2
    assert params[0] is m.scale and params[1] is m.shift
    names = [name for name, _ in m.named_parameters()]
    assert names == ["scale", "shift"]
    sd = m.state_dict()
    assert isinstance(sd, dict)
    assert set(sd) == {"scale", "shift", "count"}
    assert all(isinstance(v, gg.Tensor) for v in sd.values())


def test_named_parameters_use_dotted_names_in_assignment_order():
    """Submodules nest: names are 'fc1.weight', ..., in the order attributes were set;
    modules without parameters (ReLU) and non-Tensor attributes add nothing."""
    m = TwoLayer()
    named = list(m.named_parameters())
    assert [(name, tuple(p.shape)) for name, p in named] == TWO_LAYER_PARAMS
    assert all(a is b for (_, a), b in zip(named, m.parameters(), strict=True))
    assert named[0][1] is m.fc1.weight and named[5][1] is m.post.shift
    assert all(p.requires_grad for p in m.parameters())


def test_named_parameters_list_a_modules_own_before_its_submodules():
    """As in PyTorch: a module's own parameters first (in assignment order), then each
    submodule's, depth first — also when the own parameter was assigned between two
    submodules."""

    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(2, 3)
            self.scale = gg.ones(3, requires_grad=True)
            self.fc2 = nn.Linear(3, 1)

        def forward(self, x):
            return self.fc2(self.fc1(x) * self.scale)

    names = [n for n, _ in Mixed().named_parameters()]
    assert names == ["scale", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]


def test_reassigning_an_attribute_keeps_its_place_and_kind():
    """Replacing fc1.weight by a new Tensor that requires grad keeps it a parameter in
    the same position; replacing a parameter by a plain value removes it."""
    m = TwoLayer()
    new = gg.zeros(5, 3, requires_grad=True)
    m.fc1.weight = new
    named = list(m.named_parameters())
    assert named[0][0] == "fc1.weight" and named[0][1] is new
    m.post.shift = 3.0  # no longer a Tensor
    assert "post.shift" not in [n for n, _ in m.named_parameters()]
    assert "post.shift" not in m.state_dict()


def test_a_tensor_that_cannot_be_trained_does_not_replace_a_parameter_silently():
    """The lecture's `W = randn * 0.01` assigned over a layer's weight would have made it
    a buffer, dropped from parameters(): that layer never trained while the others did.
    As in PyTorch, it is a TypeError at the assignment; nn.Parameter (or
    requires_grad_()) says what is meant, and `del` first keeps it as a buffer."""
    layer = nn.Linear(4, 3)
    with pytest.raises(TypeError, match="parameter 'weight' of Linear.*nn.Parameter"):
        layer.weight = gg.randn(3, 4) * 0.01
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    layer.weight = nn.Parameter(gg.randn(3, 4) * 0.01)
    layer.bias = gg.zeros(3).requires_grad_()
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    del layer.bias
    layer.bias = gg.zeros(3)
    assert [n for n, _ in layer.named_buffers()] == ["bias"]


def test_a_frozen_parameter_made_by_nn_parameter_is_still_a_parameter():
    class Frozen(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(gg.ones(2), requires_grad=False)
            self.count = gg.zeros(1)

    m = Frozen()
    assert [n for n, _ in m.named_parameters()] == ["w"] and not m.w.requires_grad
    assert [n for n, _ in m.named_buffers()] == ["count"]
    m.w.requires_grad_()  # unfrozen later: the same parameter, now trained
    assert m.parameters()[0] is m.w and m.w.requires_grad


def test_a_tensor_made_to_require_grad_after_assignment_is_a_parameter():
    class Late(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = gg.randn(3, 2) * 0.1  # a product: it cannot require grad yet
            self.w.requires_grad_()

    m = Late()
    assert [n for n, _ in m.named_parameters()] == ["w"] and list(m.named_buffers()) == []
    opt = gg.optim.SGD(m.parameters(), lr=0.1)
    before = m.w.numpy()
    (m.w * m.w).sum().backward()
    opt.step()
    np.testing.assert_allclose(m.w.numpy(), before * 0.8, rtol=1e-6)


def test_state_dict_holds_parameters_and_buffers_with_their_values():
    """state_dict keys: every parameter plus the nested buffer 'post.count'."""
    m = TwoLayer()
    sd = m.state_dict()
    assert set(sd) == {name for name, _ in TWO_LAYER_PARAMS} | {"post.count"}
    for name, p in m.named_parameters():
        np.testing.assert_array_equal(values(sd[name]), values(p))
    np.testing.assert_array_equal(values(sd["post.count"]), [0.0])


def test_calling_a_module_calls_forward():
    """m(x) is m.forward(x)."""
    m = Affine(3)
    x = gg.tensor([1.0, -2.0, 3.0])
    np.testing.assert_array_equal(values(m(x)), values(m.forward(x)))
    np.testing.assert_array_equal(values(m(x)), [1.0, -2.0, 3.0])


def test_train_and_eval_return_self_and_reach_every_submodule():
    """A fresh module is in training mode; eval()/train() flip `.training` everywhere."""
    m = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5), TwoLayer())
    modules = [m, m[0], m[1], m[2], m[2].fc1, m[2].act, m[2].post]
    assert all(mod.training is True for mod in modules)
    assert m.eval() is m
    assert all(mod.training is False for mod in modules)
    assert m.train() is m
    assert all(mod.training is True for mod in modules)


def test_zero_grad_sets_every_parameter_grad_to_none():
    m = TwoLayer()
    m(gg.randn(4, 3)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


@pytest.mark.skipif(not HAS_STRICT, reason="array-api-strict is not installed")
def test_to_moves_parameters_in_place_to_another_device():
    """.to(device) returns the module, keeps the same parameter objects, moves their
    values, and the model then runs on that device with the same results."""
    gg.manual_seed(0)
    m = TwoLayer()
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    before_params = m.parameters()
    before_values = [values(p) for p in before_params]
    expected = values(m(gg.tensor(x)))

    assert m.to("array_api_strict") is m
    after = m.parameters()
    assert len(after) == len(before_params)
    assert all(a is b for a, b in zip(after, before_params, strict=True))
    for p, v in zip(after, before_values, strict=True):
        assert p.device == "array_api_strict"
        assert p.requires_grad
        np.testing.assert_array_equal(values(p), v)
    assert m.post.count.device == "array_api_strict"  # buffers move too

    out = m(gg.tensor(x, device="array_api_strict"))
    assert out.device == "array_api_strict"
    np.testing.assert_allclose(values(out), expected, rtol=1e-6, atol=1e-7)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.device == "array_api_strict" for p in after)

    m.to("cpu")
    assert all(p.device == "cpu" for p in m.parameters())
    np.testing.assert_allclose(values(m(gg.tensor(x))), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.skipif(not HAS_STRICT, reason="array-api-strict is not installed")
def test_a_move_that_fails_for_one_tensor_leaves_the_whole_module_where_it_was():
    """array-api-strict has no float16: the half-precision layer cannot go there. The
    error names the module's call and the tensor, and no parameter, buffer or gradient
    has moved (the layers before it are not left on the other device)."""
    m = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2), nn.Linear(2, 2))
    m[2].weight = nn.Parameter(gg.ones((2, 2), dtype="float16"))
    m[0](gg.ones((1, 3))).sum().backward()
    with pytest.raises(TypeError, match=r"Sequential.to\('array_api_strict'\): 2.weight "
                                        r"\(shape \(2, 2\), float16, on cpu\) could not be "
                                        r"copied: .*nothing was moved"):
        m.to("array_api_strict")
    assert all(t.device == "cpu" for _, t in [*m.named_parameters(), *m.named_buffers()])
    assert m[0].weight.grad.device == "cpu"
    m[2].weight = nn.Parameter(gg.ones((2, 2)))
    m.to("array_api_strict")  # then it all goes, gradients too
    assert all(t.device == "array_api_strict"
               for _, t in [*m.named_parameters(), *m.named_buffers()])
    assert m[0].weight.grad.device == "array_api_strict"


@pytest.mark.skipif(not HAS_STRICT, reason="array-api-strict is not installed")
def test_an_mlp_with_dropout_trains_on_another_device():
    """MLP + Dropout moved to array_api_strict: the forward in training mode (random
    mask drawn on the device), the backward and an SGD step all stay on that device."""
    gg.manual_seed(1)
    model = nn.Sequential(nn.MLP([3, 8, 2], activation="tanh"), nn.Dropout(0.3))
    model.to("array_api_strict")
    x = gg.randn(6, 3, device="array_api_strict")
    labels = gg.tensor(np.array([0, 1, 1, 0, 1, 0]), device="array_api_strict")
    opt = gg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = [values(p) for p in model.parameters()]
    for _ in range(2):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), labels)
        assert loss.device == "array_api_strict"
        loss.backward()
        opt.step()
    for p, b in zip(model.parameters(), before, strict=True):
        assert p.device == "array_api_strict"
        assert not np.array_equal(values(p), b)


# --------------------------------------------------------------------------------------
# load_state_dict
# --------------------------------------------------------------------------------------


def test_load_state_dict_round_trips_between_two_models():
    """Loading A's state_dict into B makes B compute exactly what A computes."""
    gg.manual_seed(1)
    a = TwoLayer()
    gg.manual_seed(2)
    b = TwoLayer()
    x = gg.randn(6, 3)
    assert not np.array_equal(values(a(x)), values(b(x)))
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(values(b(x)), values(a(x)))
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert na == nb
        np.testing.assert_array_equal(values(pa), values(pb))


def test_load_state_dict_keeps_parameter_objects_and_requires_grad():
    """Values are copied into the existing parameters, so an optimiser built before
    loading keeps working on the loaded model, and they still require grad."""
    m = TwoLayer()
    before = m.parameters()
    sd = {name: gg.tensor(np.full(shape, 0.25, dtype=np.float32))
          for name, shape in TWO_LAYER_PARAMS}
    sd["post.count"] = gg.tensor(np.array([7.0], dtype=np.float32))
    m.load_state_dict(sd)
    after = m.parameters()
    assert all(a is b for a, b in zip(after, before, strict=True))
    assert all(p.requires_grad for p in after)
    for p in after:
        np.testing.assert_array_equal(values(p), np.full(p.shape, 0.25))
    np.testing.assert_array_equal(values(m.state_dict()["post.count"]), [7.0])


def test_loaded_values_are_copies_not_shared_with_the_state_dict():
    """Training a model after loading changes neither the state_dict it was loaded from
    nor another model loaded from the same state_dict."""
    gg.manual_seed(3)
    source = TwoLayer()
    sd = source.state_dict()
    snapshot = {k: values(v).copy() for k, v in sd.items()}
    a, b = TwoLayer(), TwoLayer()
    a.load_state_dict(sd)
    b.load_state_dict(sd)

    opt = gg.optim.SGD(a.parameters(), lr=0.5)
    a(gg.randn(4, 3)).sum().backward()
    opt.step()

    assert not np.array_equal(values(a.fc1.weight), snapshot["fc1.weight"])
    for k, v in sd.items():
        np.testing.assert_array_equal(values(v), snapshot[k])
    for name, p in b.named_parameters():
        np.testing.assert_array_equal(values(p), snapshot[name])
    for name, p in source.named_parameters():
        np.testing.assert_array_equal(values(p), snapshot[name])


def _shape_pattern(shape):
    """A regex matching a shape written as (5, 3), [5, 3], torch.Size([5, 3]) or 5x3."""
    inner = r",\s*".join(str(d) for d in shape)
    return rf"(\(\s*{inner}\s*\)|\[\s*{inner}\s*\]|{'x'.join(str(d) for d in shape)})"


def test_strict_load_reports_every_missing_unexpected_and_mismatched_key():
    """One StateDictError (a ValueError) names all problems at once: the missing keys,
    the unexpected keys, and each shape mismatch with both shapes."""
    m = TwoLayer()
    sd = m.state_dict()
    sd = {k: v for k, v in sd.items() if k not in ("fc2.bias", "post.shift")}
    sd["fc3.weight"] = gg.zeros(2, 2)
    sd["extra_buffer"] = gg.zeros(1)
    sd["fc1.weight"] = gg.zeros(4, 3)  # model has (5, 3)
    sd["fc2.weight"] = gg.zeros(5, 2)  # model has (2, 5)

    assert issubclass(gg.StateDictError, ValueError)
    with pytest.raises(gg.StateDictError) as info:
        m.load_state_dict(sd)
    message = str(info.value)
    for key in ("fc2.bias", "post.shift", "fc3.weight", "extra_buffer", "fc1.weight",
                "fc2.weight"):
        assert key in message, f"{key!r} not named in: {message}"
    for shape in [(4, 3), (5, 3), (5, 2), (2, 5)]:
        assert re.search(_shape_pattern(shape), message), f"{shape} not in: {message}"
    with pytest.raises(ValueError):  # catchable as the built-in
        m.load_state_dict(sd)


def test_strict_load_is_the_default_and_rejects_a_missing_key_alone():
    m = TwoLayer()
    sd = m.state_dict()
    del sd["post.count"]
    with pytest.raises(gg.StateDictError, match=r"post\.count"):
        m.load_state_dict(sd)
    sd = m.state_dict()
    sd["surplus"] = gg.zeros(3)
    with pytest.raises(gg.StateDictError, match="surplus"):
        m.load_state_dict(sd, strict=True)


def test_non_strict_load_ignores_missing_and_unexpected_keys_and_names_them():
    """strict=False loads what matches and leaves the rest of the model as it was; it
    returns the keys it passed over, a pair as PyTorch's (unpacked, or read by name)."""
    m = TwoLayer()
    kept_fc2 = values(m.fc2.weight)
    sd = {"fc1.weight": gg.tensor(np.full((5, 3), 0.5, dtype=np.float32)),
          "fc1.bias": gg.tensor(np.full(5, -1.0, dtype=np.float32)),
          "not.a.key": gg.zeros(7)}
    missing, unexpected = result = m.load_state_dict(sd, strict=False)
    assert missing == result.missing_keys == [k for k in m.state_dict() if k not in sd]
    assert unexpected == result.unexpected_keys == ["not.a.key"]
    np.testing.assert_array_equal(values(m.fc1.weight), np.full((5, 3), 0.5))
    np.testing.assert_array_equal(values(m.fc1.bias), np.full(5, -1.0))
    np.testing.assert_array_equal(values(m.fc2.weight), kept_fc2)


def test_non_strict_load_still_rejects_a_shape_mismatch():
    m = TwoLayer()
    sd = {"fc1.weight": gg.zeros(3, 5)}
    with pytest.raises(gg.StateDictError) as info:
        m.load_state_dict(sd, strict=False)
    message = str(info.value)
    assert "fc1.weight" in message
    assert re.search(_shape_pattern((3, 5)), message)
    assert re.search(_shape_pattern((5, 3)), message)


def test_buffers_round_trip_through_load_state_dict():
    a, b = Affine(2), Affine(2)
    sd = a.state_dict()
    sd["count"] = gg.tensor(np.array([42.0], dtype=np.float32))
    b.load_state_dict(sd)
    np.testing.assert_array_equal(values(b.state_dict()["count"]), [42.0])
    assert len(b.parameters()) == 2  # the buffer did not become a parameter


# --------------------------------------------------------------------------------------
# Linear
# --------------------------------------------------------------------------------------


def test_linear_has_weight_out_by_in_and_bias_out():
    lin = nn.Linear(4, 7)
    assert lin.weight.shape == (7, 4) and lin.bias.shape == (7,)
    assert lin.weight.requires_grad and lin.bias.requires_grad
    assert [n for n, _ in lin.named_parameters()] == ["weight", "bias"]
    assert lin(gg.randn(3, 4)).shape == (3, 7)


@pytest.mark.parametrize("sizes", [(0, 2), (3, -1)])
def test_linear_refuses_sizes_below_one(sizes):
    with pytest.raises(ValueError, match="Linear needs positive sizes"):
        nn.Linear(*sizes)


def test_softmax_layer_takes_axis_or_dim():
    x = gg.randn(3, 4)
    by_dim, by_axis = nn.Softmax(dim=0)(x).numpy(), nn.Softmax(axis=0)(x).numpy()
    np.testing.assert_array_equal(by_dim, by_axis)
    np.testing.assert_allclose(by_dim.sum(axis=0), np.ones(4), rtol=1e-6)


def test_linear_without_bias_has_only_a_weight():
    lin = nn.Linear(4, 2, bias=False)
    assert lin.bias is None
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    x = np.random.default_rng(4).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(values(lin(gg.tensor(x))),
                               x.astype(np.float64) @ values(lin.weight).T,
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch_shape", [(5,), (2, 3)])
def test_linear_matches_torch_linear_in_forward_and_gradients(bias, batch_shape):
    """gpugrad's initial weights copied into torch.nn.Linear: same output, same
    gradients for the weight, the bias and the input (float32, also for 3-D inputs)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    lin = nn.Linear(4, 3, bias=bias)
    if bias:  # a non-zero bias, so that adding it is checked too
        lin.bias = gg.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
    ref = torch.nn.Linear(4, 3, bias=bias)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(lin.weight.numpy().copy()))
        if bias:
            ref.bias.copy_(torch.from_numpy(lin.bias.numpy().copy()))
    x = rng.standard_normal((*batch_shape, 4)).astype(np.float32)
    w = rng.standard_normal((*batch_shape, 3)).astype(np.float32)
    gx = gg.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    gy, ty = lin(gx), ref(tx)
    np.testing.assert_allclose(values(gy), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    (gy * gg.tensor(w)).sum().backward()
    (ty * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(values(gx.grad), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(values(lin.weight.grad), ref.weight.grad.numpy(),
                               rtol=1e-5, atol=1e-5)
    if bias:
        np.testing.assert_allclose(values(lin.bias.grad), ref.bias.grad.numpy(),
                                   rtol=1e-5, atol=1e-5)


def test_linear_forward_is_x_times_w_transpose_plus_b_in_float64():
    """With float64 weights assigned as attributes: x @ W.T + b to 1e-12 (NumPy)."""
    rng = np.random.default_rng(6)
    W, b, x = rng.standard_normal((3, 4)), rng.standard_normal(3), rng.standard_normal((5, 4))
    lin = nn.Linear(4, 3)
    lin.weight = gg.tensor(W, requires_grad=True)
    lin.bias = gg.tensor(b, requires_grad=True)
    assert [n for n, _ in lin.named_parameters()] == ["weight", "bias"]
    np.testing.assert_allclose(values(lin(gg.tensor(x))), x @ W.T + b, rtol=1e-12)


def test_kaiming_init_is_he_uniform_with_zero_bias():
    """Default init: W ~ U(-sqrt(6/fan_in), sqrt(6/fan_in)), std sqrt(2/fan_in); b = 0."""
    gg.manual_seed(7)
    lin = nn.Linear(256, 512)
    w = values(lin.weight)
    std, bound = math.sqrt(2 / 256), math.sqrt(6 / 256)
    assert abs(w.std() - std) < 0.15 * std
    assert abs(w.mean()) < 0.05 * std
    assert np.abs(w).max() <= bound * (1 + 1e-6)
    assert np.abs(w).max() > 0.95 * bound  # uniform: reaches close to the bound
    np.testing.assert_array_equal(values(lin.bias), np.zeros(512))
    explicit = nn.Linear(256, 512, init="kaiming")
    assert abs(values(explicit.weight).std() - std) < 0.15 * std


def test_xavier_init_is_glorot_uniform_with_zero_bias():
    """init="xavier": W ~ U(-b, b), b = sqrt(6/(fan_in+fan_out)), std sqrt(2/(in+out))."""
    gg.manual_seed(8)
    lin = nn.Linear(256, 512, init="xavier")
    w = values(lin.weight)
    std, bound = math.sqrt(2 / (256 + 512)), math.sqrt(6 / (256 + 512))
    assert abs(w.std() - std) < 0.15 * std
    assert abs(w.mean()) < 0.05 * std
    assert np.abs(w).max() <= bound * (1 + 1e-6)
    assert np.abs(w).max() > 0.95 * bound
    np.testing.assert_array_equal(values(lin.bias), np.zeros(512))


def test_square_layer_init_std_within_fifteen_percent():
    """512x512: kaiming std sqrt(2/512), xavier std sqrt(2/1024)."""
    gg.manual_seed(9)
    k = values(nn.Linear(512, 512).weight).std()
    x = values(nn.Linear(512, 512, init="xavier").weight).std()
    assert abs(k - math.sqrt(2 / 512)) < 0.15 * math.sqrt(2 / 512)
    assert abs(x - math.sqrt(2 / 1024)) < 0.15 * math.sqrt(2 / 1024)


@pytest.mark.parametrize("shape", [(8, 16), (16, 8, 5, 5), (4, 3, 7)])
def test_initialisers_count_fans_as_torch_does(shape):
    """A convolution-shaped weight (out, in, *kernel) has fan_in = in * kernel size: its
    bound was kernel-size times too wide (sqrt(25) = 5 for a 5x5 kernel). The largest
    |w| of many draws is compared with the same draws of torch's initialisers."""
    torch = pytest.importorskip("torch")
    gg.manual_seed(11)
    torch.manual_seed(11)
    pairs = [(nn.init.kaiming_uniform, lambda w: torch.nn.init.kaiming_uniform_(
                 w, nonlinearity="relu")),
             (nn.init.xavier_uniform, torch.nn.init.xavier_uniform_)]
    for ours, theirs in pairs:
        w = np.concatenate([values(ours(shape)).ravel() for _ in range(50)])
        t = np.concatenate([theirs(torch.empty(shape)).numpy().ravel() for _ in range(50)])
        assert np.abs(w).max() == pytest.approx(np.abs(t).max(), rel=2e-3), ours.__name__
        assert w.std() == pytest.approx(t.std(), rel=0.05), ours.__name__


def test_initialisers_of_empty_and_vector_weights():
    """No elements: an empty weight (torch's is a no-op), not a ZeroDivisionError.
    One dimension: no fans to count, refused by name as torch refuses it."""
    for init in (nn.init.kaiming_uniform, nn.init.xavier_uniform):
        assert init((3, 0)).shape == (3, 0) and init((0, 3)).shape == (0, 3)
        with pytest.raises(ValueError, match="2 or more dimensions"):
            init((5,))


@pytest.mark.parametrize("init", ["kaiming", "xavier"])
def test_manual_seed_makes_initialisation_reproducible(init):
    gg.manual_seed(123)
    a = nn.Linear(6, 4, init=init)
    gg.manual_seed(123)
    b = nn.Linear(6, 4, init=init)
    np.testing.assert_array_equal(values(a.weight), values(b.weight))
    np.testing.assert_array_equal(values(a.bias), values(b.bias))
    gg.manual_seed(124)
    c = nn.Linear(6, 4, init=init)
    assert not np.array_equal(values(a.weight), values(c.weight))


def test_two_layers_built_in_a_row_differ():
    gg.manual_seed(10)
    a, b = nn.Linear(5, 5), nn.Linear(5, 5)
    assert not np.array_equal(values(a.weight), values(b.weight))


# --------------------------------------------------------------------------------------
# Sequential and the activation modules
# --------------------------------------------------------------------------------------


def test_sequential_supports_len_indexing_and_iteration():
    layers = [nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3
    assert seq[0] is layers[0] and seq[1] is layers[1] and seq[2] is layers[2]
    assert seq[-1] is layers[2]
    assert all(a is b for a, b in zip(list(seq), layers, strict=True))


def test_sequential_refuses_what_is_not_a_module():
    """A list, a function or None would be skipped silently, leaving an identity model
    with no parameters; PyTorch raises TypeError too."""
    for bad in ([nn.Linear(2, 2), nn.ReLU()], (nn.ReLU(),), lambda x: x, None):
        with pytest.raises(TypeError, match="Sequential takes Modules"):
            nn.Sequential(bad)
    with pytest.raises(TypeError, match=r"Sequential\(\*layers\)"):
        nn.Sequential([nn.ReLU()])


def test_sequential_takes_an_ordered_dict_of_named_modules():
    from collections import OrderedDict

    seq = nn.Sequential(OrderedDict([("fc", nn.Linear(3, 4)), ("act", nn.ReLU())]))
    assert len(seq) == 2 and isinstance(seq[1], nn.ReLU)
    assert [n for n, _ in seq.named_parameters()] == ["fc.weight", "fc.bias"]
    assert seq(gg.ones((2, 3))).shape == (2, 4)
    with pytest.raises(ValueError, match="no '.'"):
        nn.Sequential({"a.b": nn.ReLU()})


def test_sequential_names_parameters_by_position():
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert [(n, tuple(p.shape)) for n, p in seq.named_parameters()] == [
        ("0.weight", (4, 3)), ("0.bias", (4,)), ("2.weight", (2, 4)), ("2.bias", (2,))]
    assert set(seq.state_dict()) == {"0.weight", "0.bias", "2.weight", "2.bias"}


def test_sequential_inside_a_module_nests_names():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid())
            self.head = nn.Linear(3, 1, bias=False)

        def forward(self, x):
            return self.head(self.body(x))

    names = [n for n, _ in Net().named_parameters()]
    assert names == ["body.0.weight", "body.0.bias", "head.weight"]


def test_sequential_applies_its_modules_in_order():
    """Sequential(Linear, Tanh, Linear)(x) = tanh(x W1^T + b1) W2^T + b2 (NumPy)."""
    seq = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x = np.random.default_rng(11).standard_normal((5, 3)).astype(np.float32)
    W1, b1, W2, b2 = (values(p) for p in seq.parameters())
    expected = np.tanh(x @ W1.T + b1) @ W2.T + b2
    np.testing.assert_allclose(values(seq(gg.tensor(x))), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("module, fn", [
    (nn.ReLU, lambda v: np.maximum(v, 0.0)),
    (nn.Sigmoid, lambda v: 1.0 / (1.0 + np.exp(-v))),
    (nn.Tanh, np.tanh),
])
def test_activation_modules_compute_their_function_and_have_no_parameters(module, fn):
    m = module()
    assert m.parameters() == [] and m.state_dict() == {}
    x = np.random.default_rng(12).standard_normal((3, 4))
    np.testing.assert_allclose(values(m(gg.tensor(x))), fn(x), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("module, fn", [
    (nn.ReLU, "relu"), (nn.Sigmoid, "sigmoid"), (nn.Tanh, "tanh")])
def test_activation_modules_agree_with_functional(module, fn):
    x = gg.tensor(np.random.default_rng(13).standard_normal(6))
    np.testing.assert_array_equal(values(module()(x)), values(getattr(F, fn)(x)))


# --------------------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------------------


def test_dropout_is_the_identity_in_eval_mode():
    d = nn.Dropout(0.5).eval()
    x = gg.tensor(np.random.default_rng(14).standard_normal((50, 40)), requires_grad=True)
    y = d(x)
    np.testing.assert_array_equal(values(y), values(x))
    y.sum().backward()
    np.testing.assert_array_equal(values(x.grad), np.ones((50, 40)))


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_in_training_zeros_about_p_and_scales_the_rest(p):
    """On 100,000 ones: the zero fraction is p (+-1%), survivors are exactly 1/(1-p),
    and the gradient is the same mask scaled by 1/(1-p)."""
    gg.manual_seed(15)
    d = nn.Dropout(p)
    assert d.training
    x = gg.ones(200, 500, dtype="float64", requires_grad=True)
    y = d(x)
    out = values(y)
    dropped = out == 0.0
    assert abs(dropped.mean() - p) < 0.01
    np.testing.assert_allclose(out[~dropped], 1.0 / (1.0 - p), rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(values(x.grad), out, rtol=1e-12)


def test_dropout_defaults_to_half():
    gg.manual_seed(16)
    out = values(nn.Dropout()(gg.ones(100_000, dtype="float64")))
    assert abs((out == 0).mean() - 0.5) < 0.01
    np.testing.assert_allclose(out[out != 0], 2.0, rtol=1e-12)


def test_dropout_keeps_the_expected_value():
    """E[dropout(x)] = x: the mean of dropout over many ones is 1 (+-2%)."""
    gg.manual_seed(17)
    out = values(nn.Dropout(0.3)(gg.ones(200_000, dtype="float64")))
    assert abs(out.mean() - 1.0) < 0.02


def test_dropout_is_deterministic_under_manual_seed():
    x = gg.ones(30, 30)
    gg.manual_seed(18)
    a = values(nn.Dropout(0.4)(x))
    gg.manual_seed(18)
    b = values(nn.Dropout(0.4)(x))
    np.testing.assert_array_equal(a, b)
    c = values(nn.Dropout(0.4)(x))  # the generator moved on: a new mask
    assert not np.array_equal(a, c)


def test_dropout_with_p_zero_is_the_identity_in_training():
    x = gg.tensor(np.random.default_rng(19).standard_normal(100))
    np.testing.assert_array_equal(values(nn.Dropout(0.0)(x)), values(x))


def test_eval_on_a_container_switches_dropout_off():
    gg.manual_seed(20)
    model = nn.Sequential(nn.Linear(4, 64), nn.Dropout(0.5), nn.Linear(64, 1))
    x = gg.randn(8, 4)
    model.eval()
    np.testing.assert_array_equal(values(model(x)), values(model(x)))
    model.train()
    assert not np.array_equal(values(model(x)), values(model(x)))


# --------------------------------------------------------------------------------------
# MLP
# --------------------------------------------------------------------------------------


def np_sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def np_softmax(v):
    e = np.exp(v - v.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


NP_ACT = {"relu": lambda v: np.maximum(v, 0.0), "sigmoid": np_sigmoid, "tanh": np.tanh,
          "gelu": lambda v: v * 0.5 * (1 + np.vectorize(math.erf)(v / math.sqrt(2))),
          "silu": lambda v: v * np_sigmoid(v),
          "leaky_relu": lambda v: np.where(v > 0, v, 0.01 * v)}


def mlp_reference(params, x, activation, output):
    """The MLP's forward in NumPy from its parameters [W1, b1, W2, b2, ...]."""
    pairs = list(zip(params[0::2], params[1::2], strict=True))
    a = x
    for i, (W, b) in enumerate(pairs):
        a = a @ W.T + b
        if i < len(pairs) - 1:
            a = NP_ACT[activation](a)
    if output == "sigmoid":
        a = np_sigmoid(a)
    elif output == "softmax":
        a = np_softmax(a)
    return a


def test_mlp_is_linear_relu_linear():
    """MLP([4, 8, 3]) = Linear(4, 8), ReLU, Linear(8, 3)."""
    mlp = nn.MLP([4, 8, 3])
    assert isinstance(mlp, nn.Module)
    assert shapes(mlp.parameters()) == [(8, 4), (8,), (3, 8), (3,)]
    x = np.random.default_rng(21).standard_normal((5, 4)).astype(np.float32)
    expected = mlp_reference([values(p) for p in mlp.parameters()], x, "relu", None)
    out = values(mlp(gg.tensor(x)))
    assert out.shape == (5, 3)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", list(NP_ACT))
@pytest.mark.parametrize("output", [None, "sigmoid", "softmax"])
def test_mlp_activations_and_outputs(activation, output):
    """MLP([3, 6, 5, 2]): three Linear layers, the hidden activation between them and
    the output function after the last, checked against NumPy."""
    mlp = nn.MLP([3, 6, 5, 2], activation=activation, output=output)
    assert shapes(mlp.parameters()) == [(6, 3), (6,), (5, 6), (5,), (2, 5), (2,)]
    x = np.random.default_rng(22).standard_normal((7, 3)).astype(np.float32)
    expected = mlp_reference([values(p) for p in mlp.parameters()], x, activation, output)
    out = values(mlp(gg.tensor(x)))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    if output == "softmax":
        np.testing.assert_allclose(out.sum(axis=-1), np.ones(7), rtol=1e-5)


def test_mlp_gradients_reach_every_parameter():
    mlp = nn.MLP([2, 3, 3, 1], activation="tanh")
    mlp(gg.randn(4, 2)).sum().backward()
    for name, p in mlp.named_parameters():
        assert p.grad is not None, name
        assert p.grad.shape == p.shape, name


# --------------------------------------------------------------------------------------
# Editing a Sequential, ModuleList, ModuleDict: as PyTorch does it
# --------------------------------------------------------------------------------------


def layout(container):
    """What an edit must get right: the state-dict keys (the names the modules are held
    under) and the modules' classes in order."""
    return list(container.state_dict()), [type(m).__name__ for m in container]


def edit_a_sequential(lib):
    """The same edits with torch.nn or gpugrad.nn as `lib`: the layout after each."""
    s = lib.Sequential(lib.Linear(2, 3), lib.ReLU(), lib.Linear(3, 4))
    seen = [layout(s[1:]), layout(s[::2]), layout(s[-2:])]  # slices keep the names
    s.append(lib.Linear(4, 5))
    seen.append(layout(s))
    s.extend([lib.Tanh(), lib.Linear(5, 6)])
    seen.append(layout(s))
    s.insert(1, lib.Sigmoid())
    seen.append(layout(s))
    s.insert(-1, lib.ReLU())
    seen.append(layout(s))
    s[0] = lib.Linear(2, 3, bias=False)
    seen.append(layout(s))
    s[-1] = lib.Linear(5, 7)
    seen.append(layout(s))
    del s[2]  # the later ones are renumbered
    seen.append(layout(s))
    del s[-3:]
    seen.append(layout(s))
    seen.append((len(s), layout(s[1:])))
    return seen


def test_editing_a_sequential_names_its_modules_as_pytorch_does():
    torch = pytest.importorskip("torch")
    assert edit_a_sequential(nn) == edit_a_sequential(torch.nn)


def test_a_sequential_slice_keeps_the_names_and_the_module_objects():
    """s[1:] of Linear, ReLU, Linear holds the same ReLU and Linear, as "1" and "2":
    its state dict loads into the original's last layer by name."""
    s = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 4))
    tail = s[1:]
    assert isinstance(tail, nn.Sequential) and len(tail) == 2
    assert tail[0] is s[1] and tail[1] is s[2] and tail[-1] is s[2]
    assert list(tail.state_dict()) == ["2.weight", "2.bias"]
    assert tail(gg.ones((1, 3))).shape == (1, 4)


def test_appending_to_a_slice_keeps_every_module():
    """s[1:] holds "1" and "2"; PyTorch's append names the new module "2" and so drops
    the Linear held there. Here it takes the next free number."""
    s = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 4))
    tail = s[1:].append(nn.Tanh())
    assert [type(m).__name__ for m in tail] == ["ReLU", "Linear", "Tanh"]
    assert [n for n, _ in tail.named_children()] == ["1", "2", "3"]


def test_sequential_edits_refuse_what_is_not_a_module_and_bad_positions():
    s = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    for edit in (lambda: s.append([nn.ReLU()]), lambda: s.insert(0, None),
                 lambda: s.extend([nn.ReLU(), "relu"]), lambda: s.__setitem__(0, 3)):
        with pytest.raises(TypeError, match="takes a Module"):
            edit()
    assert len(s) == 2  # extend added nothing: its second entry was refused first
    with pytest.raises(IndexError, match="out of range"):
        s[2] = nn.ReLU()
    with pytest.raises(IndexError, match="out of range"):
        s.insert(3, nn.ReLU())
    with pytest.raises(IndexError, match="out of range"):
        del s[-3]
    with pytest.raises(ValueError, match="attribute"):
        nn.Sequential({"forward": nn.ReLU()})  # would shadow Sequential.forward


def test_an_edited_sequential_computes_with_its_new_modules():
    """Sequential(Linear) extended by Tanh then a Linear inserted at 0: x -> tanh(L1(L0 x))."""
    first, second = nn.Linear(3, 4), nn.Linear(2, 3)
    s = nn.Sequential(first).extend([nn.Tanh()]).insert(0, second)
    x = np.random.default_rng(40).standard_normal((5, 2)).astype(np.float32)
    W0, b0, W1, b1 = (values(p) for p in s.parameters())
    assert s[0] is second and s[1] is first
    np.testing.assert_allclose(values(s(gg.tensor(x))), np.tanh((x @ W0.T + b0) @ W1.T + b1),
                               rtol=1e-5, atol=1e-6)


def edit_a_module_list(lib):
    """The same edits with torch.nn or gpugrad.nn as `lib`: the layout after each."""
    layers = lib.ModuleList([lib.Linear(2, 3), lib.ReLU()])
    seen = [layout(layers)]
    layers.append(lib.Linear(3, 4))
    layers.extend([lib.Tanh(), lib.Linear(4, 5)])
    seen.append(layout(layers))
    layers.insert(0, lib.Sigmoid())
    layers.insert(3, lib.ReLU())  # (PyTorch's ModuleList.insert fails on a negative index)
    seen.append(layout(layers))
    layers[1] = lib.Linear(2, 6)
    layers[-1] = lib.Linear(4, 7)
    seen.append(layout(layers))
    del layers[0]
    seen.append(layout(layers))
    seen.append(layout(layers[2:]))  # a slice is numbered from 0
    seen.append(layout(layers[::-2]))
    return seen


def test_editing_a_module_list_names_its_modules_as_pytorch_does():
    torch = pytest.importorskip("torch")
    assert edit_a_module_list(nn) == edit_a_module_list(torch.nn)


class Stack(nn.Module):
    """Linear layers in a ModuleList and heads in a ModuleDict, chosen in forward."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 4)])
        self.heads = nn.ModuleDict({"cls": nn.Linear(4, 2), "reg": nn.Linear(4, 1)})

    def forward(self, x, head="cls"):
        for layer in self.layers:
            x = layer(x)
        return self.heads[head](x)


STACK_PARAMS = ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias",
                "heads.cls.weight", "heads.cls.bias", "heads.reg.weight", "heads.reg.bias"]


def test_module_list_and_dict_register_their_modules():
    """Their parameters are the model's, named by position and key, in the state dict,
    reached by train()/eval(), and trained by an optimiser given model.parameters()."""
    gg.manual_seed(41)
    m = Stack()
    assert [n for n, _ in m.named_parameters()] == STACK_PARAMS
    assert list(m.state_dict()) == STACK_PARAMS
    assert m.parameters()[0] is m.layers[0].weight
    assert m.eval().layers[1].training is False and m.heads["reg"].training is False
    assert m.train().layers[1].training is True

    opt = gg.optim.SGD(m.parameters(), lr=0.1)
    before = [values(p) for p in m.parameters()]
    m(gg.randn(5, 3), head="reg").sum().backward()
    opt.step()
    changed = [not np.array_equal(values(p), b) for p, b in zip(m.parameters(), before,
                                                                strict=True)]
    assert changed == [True] * 4 + [False] * 2 + [True] * 2  # the cls head took no part


def test_a_module_list_state_dict_loads_into_a_fresh_model():
    a, b = Stack(), Stack()
    b.load_state_dict(a.state_dict())
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        np.testing.assert_array_equal(values(p), values(q), err_msg=name)


@pytest.mark.skipif(not HAS_STRICT, reason="array-api-strict is not installed")
def test_to_moves_the_modules_of_a_module_list_and_dict():
    m = Stack().to("array_api_strict")
    assert all(p.device == "array_api_strict" for p in m.parameters())
    assert m(gg.randn(2, 3, device="array_api_strict")).device == "array_api_strict"


def test_module_list_behaves_as_a_list():
    a, b, c = nn.Linear(1, 1), nn.ReLU(), nn.Tanh()
    layers = nn.ModuleList([a, b])
    assert len(layers) == 2 and list(layers) == [a, b]
    assert layers[0] is a and layers[-1] is b and layers[np.int64(1)] is b
    assert layers.append(c) is layers and layers[2] is c
    assert layers.pop(0) is a and list(layers) == [b, c]
    layers.insert(-1, a)  # before the last one, as list.insert does
    assert list(layers) == [b, a, c]
    del layers[1]
    assert [n for n, _ in layers.named_children()] == ["0", "1"]
    assert len(nn.ModuleList()) == 0
    with pytest.raises(IndexError):
        layers[2]
    with pytest.raises(TypeError, match="iterable"):
        layers.extend(nn.ReLU())
    with pytest.raises(TypeError, match="takes a Module"):
        nn.ModuleList([nn.ReLU(), 3])
    with pytest.raises(NotImplementedError, match="forward"):
        layers(gg.ones(1))  # the owner's forward says how to use them


def test_module_dict_behaves_as_a_dict():
    cls, reg, aux = nn.Linear(4, 2), nn.Linear(4, 1), nn.ReLU()
    heads = nn.ModuleDict({"cls": cls, "reg": reg})
    assert len(heads) == 2 and list(heads) == ["cls", "reg"] and heads.keys() == ["cls", "reg"]
    assert heads.values() == [cls, reg] and heads.items() == [("cls", cls), ("reg", reg)]
    assert heads["reg"] is reg and "cls" in heads and "aux" not in heads and 3 not in heads
    heads.update([("aux", aux), ("cls", reg)])  # pairs; an existing key is replaced
    assert heads.items() == [("cls", reg), ("reg", reg), ("aux", aux)]
    heads.update(nn.ModuleDict({"more": nn.Tanh()}))
    assert heads.keys() == ["cls", "reg", "aux", "more"]
    del heads["reg"]
    assert heads.pop("aux") is aux and heads.keys() == ["cls", "more"]
    with pytest.raises(KeyError):
        heads["reg"]
    heads.clear()
    assert len(heads) == 0 and heads.state_dict() == {}


@pytest.mark.parametrize("key, error", [
    ("update", ValueError), ("training", ValueError), ("forward", ValueError),
    ("a.b", ValueError), ("", ValueError), (1, TypeError)])
def test_module_dict_refuses_keys_that_cannot_name_a_module(key, error):
    """As PyTorch: a key must be a str, without '.', not an attribute of the dict (its
    methods, `training`) - here, before anything is added."""
    heads = nn.ModuleDict({"ok": nn.ReLU()})
    with pytest.raises(error):
        heads.update({"fine": nn.ReLU(), key: nn.ReLU()})
    assert heads.keys() == ["ok"]
    with pytest.raises(TypeError, match="takes a Module"):
        heads["x"] = 3
    with pytest.raises(TypeError, match="pairs"):
        heads.update([nn.ReLU()])


@pytest.mark.parametrize("container", [
    lambda: [nn.Linear(2, 2), nn.ReLU()], lambda: (nn.Linear(2, 2),),
    lambda: {"head": nn.Linear(2, 2)}, lambda: [[nn.Linear(2, 2)], 3]])
def test_a_plain_list_or_dict_of_modules_as_an_attribute_is_an_error(container):
    """A plain container hides its modules from parameters(), so an optimiser would never
    train them: the error says what to use instead, and nothing is assigned."""
    m = nn.Module()
    fix = "ModuleDict" if isinstance(container(), dict) else "ModuleList"
    with pytest.raises(TypeError, match=f"use nn.{fix}"):
        m.layers = container()
    assert not hasattr(m, "layers")
    m.sizes, m.names = [3, 4], {"a": 1}  # containers without modules stay plain attributes
    assert m.sizes == [3, 4] and m.parameters() == []


# --------------------------------------------------------------------------------------
# Shared submodules and cycles
# --------------------------------------------------------------------------------------


class Cyclic(nn.Module):
    """A child holding its parent: a back reference that makes the module graph cyclic."""

    def __init__(self):
        super().__init__()
        self.c = nn.Linear(2, 2)
        self.c.parent = self

    def forward(self, x):
        return self.c(x)


def test_a_module_graph_with_a_cycle_is_walked_once():
    """Each module once (a memo of those seen, as PyTorch's named_modules); the walks
    are bounded here first, so that an endless one fails instead of hanging."""
    import itertools

    m = Cyclic()
    assert list(itertools.islice(m.named_modules(), 10)) == [("", m), ("c", m.c)]
    assert list(itertools.islice(m.named_parameters(), 10)) == [
        ("c.weight", m.c.weight), ("c.bias", m.c.bias)]
    assert m.modules() == [m, m.c] and m.parameters() == [m.c.weight, m.c.bias]
    assert m.eval().c.training is False and m.train().c.training is True
    assert list(m.state_dict()) == ["c.weight", "c.bias"]
    m.load_state_dict(Cyclic().state_dict())
    assert "(parent): <cycle: the Cyclic above>" in repr(m)
    m.c.weight.grad = gg.ones(m.c.weight.shape)
    m.zero_grad()  # walks the cycle once, too
    assert m.c.weight.grad is None


def test_a_shared_submodule_is_listed_once_and_keyed_under_both_names_as_in_torch():
    """named_modules/named_parameters list a shared module once (its first name); the
    state dict keys it under each name, as PyTorch's does, so that either loads the
    other's."""
    torch = pytest.importorskip("torch")

    def build(lib):
        outer = lib.Module()
        outer.a = lib.Sequential(lib.Linear(2, 2))
        outer.b = outer.a[0]  # the same Linear, under a second name
        return outer

    ours, theirs = build(nn), build(torch.nn)
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_parameters()] == \
        [n for n, _ in theirs.named_parameters()] == ["a.0.weight", "a.0.bias"]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_children()] == ["a", "b"]


# --------------------------------------------------------------------------------------
# Sizes, Dropout(p=1), zero_grad(set_to_none=False)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: nn.Linear(2.5, 3), lambda: nn.Linear(2, 3.0), lambda: nn.Linear(True, 3),
    lambda: nn.MLP([4, 2.5, 1]), lambda: nn.Linear("2", 3)])
def test_sizes_that_are_not_integers_are_refused(make):
    """int(2.5) would make a layer of 2 without a word; PyTorch refuses floats too."""
    with pytest.raises(TypeError, match="must be an integer"):
        make()


def test_numpy_integer_sizes_are_fine():
    lin = nn.Linear(np.int64(3), np.int32(2))
    assert lin.weight.shape == (2, 3) and type(lin.in_features) is int
    assert nn.MLP(np.array([4, 3, 1]))(gg.ones((2, 4))).shape == (2, 1)


def test_dropout_with_p_one_zeroes_everything_in_training_and_nothing_in_eval():
    """As PyTorch: p=1 is allowed; every element (and its gradient) is zero in training,
    the input passes unchanged in eval mode."""
    d = nn.Dropout(1.0)
    x = gg.tensor(np.random.default_rng(42).standard_normal((20, 30)), requires_grad=True)
    y = d(x)
    np.testing.assert_array_equal(values(y), np.zeros((20, 30)))
    y.sum().backward()
    np.testing.assert_array_equal(values(x.grad), np.zeros((20, 30)))
    np.testing.assert_array_equal(values(d.eval()(x)), values(x))


@pytest.mark.parametrize("p", [-0.1, 1.0001, float("nan")])
def test_dropout_refuses_p_outside_zero_to_one(p):
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        nn.Dropout(p)


def test_module_zero_grad_can_zero_in_place():
    """set_to_none=False: each .grad is the same tensor, now zeros (detached), as in
    PyTorch; a .grad that was None stays None."""
    m = TwoLayer()
    m(gg.randn(4, 3)).sum().backward()
    m.post.shift.grad = None
    grads = [p.grad for p in m.parameters()]
    m.zero_grad(set_to_none=False)
    for p, g in zip(m.parameters(), grads, strict=True):
        if g is None:
            assert p.grad is None
            continue
        assert p.grad is g and not g.requires_grad
        np.testing.assert_array_equal(values(g), np.zeros(p.shape))
    x = gg.randn(4, 3)
    m(x).sum().backward()  # the next backward adds to the zeros: a fresh backward's grads
    zeroed = [values(p.grad) for p in m.parameters()]
    m.zero_grad()
    m(x).sum().backward()
    for got, fresh in zip(zeroed, m.parameters(), strict=True):
        np.testing.assert_array_equal(got, values(fresh.grad))


# --------------------------------------------------------------------------------------
# End to end: XOR
# --------------------------------------------------------------------------------------


def test_mlp_with_sigmoid_hidden_units_learns_xor_by_gradient_descent():
    """2-8-1 sigmoid MLP, mean BCE, full-batch gradient descent (lr 2): all four XOR
    points are classified correctly within 2000 steps. (In a float64 NumPy simulation
    of this set-up with He-uniform initialisation, 200 of 200 random seeds reached 100%
    within 300 steps.)"""
    gg.manual_seed(0)
    X = gg.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    Y = gg.tensor([[0.0], [1.0], [1.0], [0.0]])
    labels = np.array([[0.0], [1.0], [1.0], [0.0]])
    model = nn.MLP([2, 8, 1], activation="sigmoid", output="sigmoid")
    opt = gg.optim.SGD(model.parameters(), lr=2.0)
    first_loss = None
    for _ in range(2000):
        opt.zero_grad()
        loss = F.binary_cross_entropy(model(X), Y)
        if first_loss is None:
            first_loss = loss.item()
        loss.backward()
        opt.step()
    with gg.no_grad():
        prob = values(model(X))
        final_loss = F.binary_cross_entropy(model(X), Y).item()
    accuracy = ((prob > 0.5) == (labels > 0.5)).mean()
    assert accuracy == 1.0, prob
    assert final_loss < 0.1 < first_loss


def test_children_lists_each_submodule_once_and_a_shared_layer_still_runs_twice():
    shared = nn.Linear(2, 2)
    seq = nn.Sequential(shared, nn.ReLU(), shared)
    assert seq.children() == [shared, seq[1]]  # as PyTorch's children()
    x = gg.randn(3, 2)
    np.testing.assert_array_equal(seq(x).numpy(), shared(seq[1](shared(x))).numpy())


# --- more of PyTorch's layers and the losses as modules -----------------------------------
def test_identity_flatten_leaky_relu_and_silu_layers_do_what_their_functions_do():
    x = gg.randn(2, 3, 4)
    assert nn.Identity()(x) is x
    assert nn.Flatten()(x).shape == (2, 12) and nn.Flatten(0, -1)(x).shape == (24,)
    assert nn.Flatten(1, 1)(x).shape == (2, 3, 4)
    np.testing.assert_array_equal(nn.LeakyReLU(0.2)(x).numpy(),
                                  F.leaky_relu(x, 0.2).numpy())
    np.testing.assert_array_equal(nn.SiLU()(x).numpy(), (x * x.sigmoid()).numpy())
    np.testing.assert_array_equal(nn.LogSoftmax(dim=1)(x).numpy(),
                                  F.log_softmax(x, axis=1).numpy())
    assert repr(nn.Sequential(nn.Flatten(), nn.LeakyReLU())) == (
        "Sequential(\n  (0): Flatten(start_dim=1, end_dim=-1)\n"
        "  (1): LeakyReLU(negative_slope=0.01)\n)")


def test_gelu_layer_is_f_gelu_with_its_approximation_checked_when_made():
    x = gg.randn(2, 3, dtype="float64")
    phi = 0.5 * (1 + np.vectorize(math.erf)(x.numpy() / math.sqrt(2)))  # normal CDF
    np.testing.assert_allclose(nn.GELU()(x).numpy(), x.numpy() * phi, rtol=1e-14)
    np.testing.assert_array_equal(nn.GELU()(x).numpy(), F.gelu(x).numpy())
    np.testing.assert_array_equal(nn.GELU(approximate="tanh")(x).numpy(),
                                  F.gelu(x, approximate="tanh").numpy())
    assert not nn.GELU().parameters() and nn.GELU().state_dict() == {}
    assert repr(nn.Sequential(nn.Linear(3, 2), nn.GELU("tanh"))).endswith(
        "(1): GELU(approximate='tanh')\n)")
    with pytest.raises(ValueError, match="GELU: approximate must be 'none' or 'tanh', "
                                         "got 'exact'"):
        nn.GELU(approximate="exact")


def test_flatten_names_the_axes_it_cannot_merge():
    with pytest.raises(gg.ShapeError, match=r"Flatten: start_dim=2, end_dim=1 do not name "
                       r"axes start <= end of a tensor of shape \(2, 3, 4\)"):
        nn.Flatten(2, 1)(gg.randn(2, 3, 4))
    with pytest.raises(gg.ShapeError, match="start_dim=1"):
        nn.Flatten()(gg.randn(5))


def test_loss_modules_call_their_functions_with_the_options_they_hold():
    logits, labels = gg.randn(4, 3), gg.tensor([0, 2, 1, 2])
    loss = nn.CrossEntropyLoss(label_smoothing=0.1, reduction="sum")
    assert loss(logits, labels).item() == F.cross_entropy(
        logits, labels, label_smoothing=0.1, reduction="sum").item()
    assert repr(loss) == "CrossEntropyLoss(label_smoothing=0.1, reduction='sum')"
    a, b = gg.randn(3), gg.randn(3)
    assert nn.MSELoss()(a, b).item() == F.mse_loss(a, b).item()
    assert nn.L1Loss(reduction="none")(a, b).shape == (3,)
    with pytest.raises(ValueError, match="MSELoss: reduction must be one of"):
        nn.MSELoss(reduction="avg")
    assert not list(nn.MSELoss().parameters())


def test_clone_copies_the_values_and_passes_the_gradient_through():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    c = x.clone()
    c += 1.0  # in place on the copy: x is as it was
    assert x.numpy().tolist() == [1.0, 2.0] and c.numpy().tolist() == [2.0, 3.0]
    (c * c).sum().backward()
    assert x.grad.numpy().tolist() == [4.0, 6.0]
    assert gg.tensor([3, 4]).clone().dtype == np.int64


def test_pytorch_spellings_of_shape_and_dtype_questions():
    x = gg.randn(2, 3, 4)
    assert x.dim() == 3 and x.long().dtype == np.int64
    with pytest.raises(gg.ShapeError, match=r"t\(\) transposes tensors of at most 2"):
        x.t()
    with pytest.raises(gg.ShapeError, match="not a permutation"):
        x.permute(0, 1)


@pytest.mark.parametrize("dtype, value", [("int64", 2.5), ("int64", -2.5), ("float32", 7)])
def test_masked_fill_keeps_the_tensors_dtype_as_torch_does(dtype, value):
    # where(mask, 2.5, ints) alone promotes to floats; PyTorch casts the value instead.
    torch = pytest.importorskip("torch")
    values, mask = np.array([1, 2, 3], dtype), np.array([True, False, True])
    got = gg.tensor(values).masked_fill(gg.tensor(mask), value)
    want = torch.from_numpy(values).masked_fill(torch.from_numpy(mask), value)
    assert got.dtype.name == dtype
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_layer_norm_has_torchs_parameters_and_refuses_a_shape_that_is_not_the_last_axes():
    torch = pytest.importorskip("torch")
    norm = nn.LayerNorm((3, 4))
    assert sorted(norm.state_dict()) == sorted(torch.nn.LayerNorm((3, 4)).state_dict())
    assert norm.weight.numpy().tolist() == np.ones((3, 4)).tolist()
    assert not norm.bias.numpy().any()
    assert not list(nn.LayerNorm(4, elementwise_affine=False).parameters())
    assert repr(norm) == "LayerNorm((3, 4), eps=1e-05, elementwise_affine=True, bias=True)"
    with pytest.raises(gg.ShapeError, match=r"layer_norm: normalized_shape \(3, 4\) is not "
                       r"the last axes of the input's shape \(2, 4, 3\)"):
        norm(gg.randn(2, 4, 3))


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("shape", [(8, 5), (8, 5, 3)])
def test_batch_norm_trains_and_evaluates_as_torchs(momentum, shape):
    torch = pytest.importorskip("torch")
    ours = nn.BatchNorm1d(5, momentum=momentum, dtype="float64")
    theirs = torch.nn.BatchNorm1d(5, momentum=momentum, dtype=torch.float64)
    rng = np.random.default_rng(1)
    for _ in range(3):  # training: batch statistics, running ones updated
        x = rng.standard_normal(shape) * 2 + 1
        g = rng.standard_normal(shape)
        xg, xt = gg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        (ours(xg) * gg.tensor(g)).sum().backward()
        (theirs(xt) * torch.from_numpy(g)).sum().backward()
        np.testing.assert_allclose(xg.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
        for name, value in theirs.state_dict().items():
            np.testing.assert_allclose(ours.state_dict()[name].numpy(), value.numpy(),
                                       rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(),
                               rtol=1e-9)
    ours.eval()
    theirs.eval()
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(ours(gg.tensor(x)).numpy(),
                               theirs(torch.tensor(x)).detach().numpy(), rtol=1e-12)


def test_batch_norm_without_running_statistics_or_affine_parameters():
    norm = nn.BatchNorm1d(3, affine=False, track_running_stats=False)
    assert not list(norm.parameters()) and not norm.state_dict()
    norm.eval()  # no running statistics: the batch's, in eval mode too
    y = norm(gg.randn(16, 3) * 5 + 2).numpy()
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-5)
    with pytest.raises(gg.ShapeError, match=r"BatchNorm1d: expected input of shape \(N, 3\) "
                       r"or \(N, 3, L\), got \(4, 2\)"):
        norm(gg.randn(4, 2))


def test_a_compiled_step_through_batch_norm_updates_its_running_statistics_as_eager():
    from conftest import training_step

    def make():
        gg.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8, momentum=None), nn.ReLU(),
                              nn.Linear(8, 3))
        return model, training_step(model, gg.optim.SGD(model.parameters(), lr=0.1))

    (eager_model, eager), (model, step) = make(), make()
    compiled = gg.compile(step)
    rng = np.random.default_rng(0)
    for _ in range(4):
        x = gg.tensor(rng.standard_normal((6, 5)).astype("float32"))
        y = gg.tensor(rng.integers(0, 3, 6))
        assert compiled(x, y).item() == eager(x, y).item()
    for (name, a), b in zip(model.state_dict().items(), eager_model.state_dict().values(),
                            strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    assert model[1].num_batches_tracked.item() == 4 and len(compiled.log) == 1


@pytest.mark.parametrize("settings", [{}, {"bias": False}, {"elementwise_affine": False}])
def test_layer_norm_repr_says_what_torchs_says_bias_included(settings):
    torch = pytest.importorskip("torch")
    assert repr(nn.LayerNorm(4, **settings)) == repr(torch.nn.LayerNorm(4, **settings))


def test_layer_norm_takes_a_numpy_integer_as_one_size_as_torch_does():
    sizes = np.array([4, 8])  # sizes kept in an array are NumPy integers, not ints
    norm = nn.LayerNorm(sizes[0])
    assert norm.normalized_shape == (4,) and norm(gg.randn(2, 4)).shape == (2, 4)


@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1)])
def test_batch_norm_refuses_one_value_per_feature_in_training_as_torch_does(shape):
    # One value per feature has a batch variance of 0: it would normalise to 0 whatever
    # it is, silently. PyTorch raises; so do we, naming the layer and the user's line.
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        torch.nn.BatchNorm1d(3)(torch.zeros(shape))
    norm = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected more than 1 value per "
                       r"channel .* got input of shape \(1, 3(, 1)?\) \(at test_nn.py:\d+\)"):
        norm(gg.zeros(shape))
    assert norm.num_batches_tracked.item() == 0  # the running statistics left as they were
    norm.eval()  # the running statistics instead: one sample is fine
    np.testing.assert_allclose(norm(gg.ones(shape)).numpy(),
                               torch.nn.BatchNorm1d(3).eval()(torch.ones(shape)).detach())
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3, track_running_stats=False).eval()(gg.zeros(shape))
    assert nn.BatchNorm1d(3)(gg.randn(1, 3, 2)).shape == (1, 3, 2)  # two values: fine


def test_identity_takes_and_ignores_a_layers_arguments_as_torchs_does():
    x = gg.randn(2)
    assert nn.Identity(54, unused="x")(x) is x


def test_half_precision_norms_compute_their_statistics_in_float32():
    # Values far from 0 (300 +- 10): in float16 their mean and spread lose most bits.
    x = (300 + 10 * np.random.default_rng(0).standard_normal((400, 4))).astype(np.float16)
    exact = x.astype(np.float64)

    def within_an_ulp(y, want):  # of float16 (near 0: of float32's mean of 300s)
        assert y.dtype == np.float16
        ulp = np.spacing(np.abs(want).astype(np.float16)).astype(np.float64)
        assert (np.abs(y.astype(np.float64) - want) <= np.maximum(ulp, 1e-5)).all()

    over_batch = (exact - exact.mean(0)) / np.sqrt(exact.var(0) + 1e-5)
    within_an_ulp(nn.BatchNorm1d(4, dtype="float16")(gg.tensor(x)).numpy(), over_batch)
    over_features = (exact - exact.mean(1, keepdims=True)) / np.sqrt(
        exact.var(1, keepdims=True) + 1e-5)
    within_an_ulp(F.layer_norm(gg.tensor(x), 4).numpy(), over_features)


# Norms given tensors of several float dtypes: each case as a function of a library
# (nn, functional, a constructor from NumPy, a dtype by name) and a float16/32/64 input.
MIXED_NORM_DTYPES = {
    "layer_norm: float64 input, float32 weight and bias": (
        "float64", lambda nn, F, tensor, dtype, x: F.layer_norm(
            x, (3,), tensor(np.ones(3, np.float32)), tensor(np.zeros(3, np.float32))),
        "layer_norm: input of dtype float64 with weight of dtype float32, bias of dtype "
        "float32"),
    "layer_norm: float32 input, float64 weight": (
        "float32", lambda nn, F, tensor, dtype, x: F.layer_norm(
            x, (3,), tensor(np.ones(3))),
        "layer_norm: input of dtype float32 with weight of dtype float64"),
    "layer_norm: float16 input, float16 weight, float32 bias": (
        "float16", lambda nn, F, tensor, dtype, x: F.layer_norm(
            x, (3,), tensor(np.ones(3, np.float16)), tensor(np.zeros(3, np.float32))),
        "layer_norm: input of dtype float16 with weight of dtype float16, bias of dtype "
        "float32"),
    "LayerNorm in float32 on float64": (
        "float64", lambda nn, F, tensor, dtype, x: nn.LayerNorm(3)(x),
        "layer_norm: input of dtype float64 with weight of dtype float32"),
    "BatchNorm1d in float32, training, on float64": (
        "float64", lambda nn, F, tensor, dtype, x: nn.BatchNorm1d(3)(x),
        "BatchNorm1d: input of dtype float64 with weight of dtype float32, bias of dtype "
        "float32, running_mean of dtype float32, running_var of dtype float32"),
    "BatchNorm1d in float32, eval, on float64 (N, C, L)": (
        "float64", lambda nn, F, tensor, dtype, x: nn.BatchNorm1d(3).eval()(
            x.reshape(2, 3, 2)),
        "BatchNorm1d: input of dtype float64 with weight of dtype float32"),
    "BatchNorm1d in float64 without affine, on float32": (
        "float32", lambda nn, F, tensor, dtype, x: nn.BatchNorm1d(
            3, affine=False, dtype=dtype("float64"))(x),
        "BatchNorm1d: input of dtype float32 with running_mean of dtype float64, "
        "running_var of dtype float64"),
    "BatchNorm1d in float16, on float32": (
        "float32", lambda nn, F, tensor, dtype, x: nn.BatchNorm1d(
            3, dtype=dtype("float16"))(x),
        "BatchNorm1d: input of dtype float32 with weight of dtype float16"),
}


@pytest.mark.parametrize("case", MIXED_NORM_DTYPES)
def test_norms_refuse_mixed_float_dtypes_as_torchs_do(case):
    # PyTorch refuses a norm whose input, weight, bias and running statistics differ in
    # dtype ("mixed dtype"), but for float16 data through float32 ones (the next test);
    # promoting would run a float32 model in float64, silently.
    torch = pytest.importorskip("torch")
    x_dtype, run, says = MIXED_NORM_DTYPES[case]
    x = np.random.default_rng(3).standard_normal((4, 3)).astype(x_dtype)
    with pytest.raises(RuntimeError, match="scalar type|mixed dtype"):
        run(torch.nn, torch.nn.functional, torch.from_numpy, lambda n: getattr(torch, n),
            torch.from_numpy(x))
    with pytest.raises(gg.DTypeError, match=re.escape(says) + r".*, as PyTorch requires.*"
                       r"\(at test_nn.py:\d+\)"):
        run(nn, F, gg.tensor, lambda n: n, gg.tensor(x))


@pytest.mark.parametrize("norm", [
    "layer_norm", "LayerNorm", "BatchNorm1d", "BatchNorm1d without affine or running stats",
])
def test_norms_refuse_integer_input_as_torchs_do(norm):
    # The normalised values of integers are fractions: rounded back to the input's dtype
    # they came out as integers (-1, 0, 0, 1; without affine or running statistics all
    # 0). PyTorch refuses integer input ("not implemented for 'Long'"; its LayerNorm,
    # whose parameters are float32, "mixed dtype").
    torch = pytest.importorskip("torch")
    make = {"layer_norm": lambda nn, F: (lambda x: F.layer_norm(x, (4,))),
            "LayerNorm": lambda nn, F: nn.LayerNorm(4),
            "BatchNorm1d": lambda nn, F: nn.BatchNorm1d(4),
            "BatchNorm1d without affine or running stats": lambda nn, F: nn.BatchNorm1d(
                4, affine=False, track_running_stats=False)}[norm]
    x = np.arange(8).reshape(2, 4)
    with pytest.raises(RuntimeError, match="not implemented for 'Long'|mixed dtype"):
        make(torch.nn, torch.nn.functional)(torch.from_numpy(x))
    name = "layer_norm" if "ayer" in norm else "BatchNorm1d"
    with pytest.raises(gg.DTypeError, match=rf"{name}: input of dtype int64: a norm takes "
                       r"floating-point input, as PyTorch's does; give it as float32 "
                       r"\(x\.astype\('float32'\)\) \(at test_nn.py:\d+\)"):
        make(nn, F)(gg.tensor(x))


def test_half_precision_data_through_float32_norms_comes_out_float16_as_in_torch():
    # PyTorch's mixed precision: float16 data through a model built in float32 gives a
    # float16 result and input gradient, float32 parameter gradients and running
    # statistics (computed in float32, rounded once).
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = (300 + 10 * rng.standard_normal((64, 4))).astype(np.float16)
    scale = np.arange(4.0, dtype=np.float32)
    ours, theirs = nn.LayerNorm(4), torch.nn.LayerNorm(4)
    xg, xt = gg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yg, yt = ours(xg), theirs(xt)
    (yg.astype("float32") * gg.tensor(scale)).sum().backward()
    (yt.float() * torch.from_numpy(scale)).sum().backward()
    assert (yg.dtype, xg.grad.dtype, ours.weight.grad.dtype) == \
        (np.float16, np.float16, np.float32)
    assert (yt.dtype, xt.grad.dtype, theirs.weight.grad.dtype) == \
        (torch.float16, torch.float16, torch.float32)
    np.testing.assert_allclose(values(yg), yt.detach().double().numpy(), atol=2e-3)
    np.testing.assert_allclose(values(xg.grad), xt.grad.double().numpy(), atol=1e-3)

    ours, theirs = nn.BatchNorm1d(4), torch.nn.BatchNorm1d(4)
    for mode in ("train", "eval"):  # batch statistics, then the running ones
        getattr(ours, mode)()
        getattr(theirs, mode)()
        yg, yt = ours(gg.tensor(x)), theirs(torch.from_numpy(x))
        assert yg.dtype == np.float16 and yt.dtype == torch.float16
        np.testing.assert_allclose(values(yg), yt.detach().double().numpy(), rtol=1e-3,
                                   atol=1e-3)
    for name, value in theirs.state_dict().items():
        assert ours.state_dict()[name].dtype == value.numpy().dtype, name
        np.testing.assert_allclose(values(ours.state_dict()[name]), value.numpy(),
                                   rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("strict", [True, False])
def test_a_batch_norm_state_dict_without_its_batch_count_loads_as_torchs_does(strict):
    # A state dict from before PyTorch 0.4.1 has no num_batches_tracked: PyTorch loads it,
    # strict or not, and the module keeps its own count (not 0); no key is missing.
    torch = pytest.importorskip("torch")
    source = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    source(torch.randn(8, 3))  # running statistics worth loading
    old = {k: v for k, v in source.state_dict().items() if k != "1.num_batches_tracked"}
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    theirs[1].num_batches_tracked.fill_(7)
    result = theirs.load_state_dict(old, strict=strict)
    assert (result.missing_keys, result.unexpected_keys) == ([], [])
    assert theirs[1].num_batches_tracked.item() == 7

    ours = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    ours.load_state_dict({**ours.state_dict(), "1.num_batches_tracked": gg.tensor(7)})
    result = ours.load_state_dict({k: v.numpy() for k, v in old.items()}, strict=strict)
    assert (result.missing_keys, result.unexpected_keys) == ([], [])
    assert ours[1].num_batches_tracked.item() == 7
    for name, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[name].numpy(), value.numpy(),
                                      err_msg=name)
    del old["1.running_mean"]  # any other buffer is still missing, as in PyTorch
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "1.running_mean"'):
        theirs.load_state_dict(old)
    with pytest.raises(gg.StateDictError, match=r"missing keys: 1\.running_mean$"):
        ours.load_state_dict({k: v.numpy() for k, v in old.items()})
