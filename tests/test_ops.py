"""Per-op tests generated from the op registry and the table in opinfo.py.

For every built-in op, on every device: the forward pass against NumPy (float64), the
inferred shape/dtype against the array the kernel really returned, and the VJP against
finite differences (gg.gradcheck, float64, broadcast shapes included). On a GPU, every
op's CuPy result and gradients also agree with the CPU's.
"""

import numpy as np
import pytest
from conftest import device_params
from opinfo import OPS

import gpugrad as gg
from gpugrad.mode import tracing
from gpugrad.ops import REGISTRY

BUILTIN = sorted(name for name, op in REGISTRY.items() if name.startswith("gpugrad::"))
CASES = [pytest.param(info, sample, id=f"{info.name.split('::')[1]}[{sample.label}]")
         for info in OPS for sample in info.samples]


def test_every_builtin_op_has_a_table_entry():
    """A new op cannot land without samples and a reference."""
    assert sorted(info.name for info in OPS) == BUILTIN


def make_inputs(sample, device, seed=0, requires_grad=False):
    rng = np.random.default_rng(seed)
    arrays = [arg.make(rng) for arg in sample.args]
    tensors = [gg.tensor(a, device=device,
                         requires_grad=requires_grad and a.dtype.kind == "f")
               for a in arrays]
    return arrays, tensors


def skip_unsupported(sample, device):
    if device == "array_api_strict" and not sample.strict:
        pytest.skip("the array API standard has no such indexing")


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("info, sample", CASES)
def test_forward_matches_numpy(info, sample, device):
    skip_unsupported(sample, device)
    arrays, tensors = make_inputs(sample, device)
    out = sample.call(*tensors)
    np.testing.assert_allclose(out.numpy(), sample.reference(*arrays), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("info, sample", CASES)
def test_inferred_spec_matches_the_kernel_output(info, sample, device):
    """The shape/dtype rule, run on specs alone, predicts what the kernel returned."""
    skip_unsupported(sample, device)
    _, tensors = make_inputs(sample, device)
    with tracing():
        out = sample.call(*tensors)
    node = out.node
    assert node.op is REGISTRY[info.name]
    specs = [gg.Spec(i.shape, i.dtype, i.device) for i in node.inputs]
    shape, dtype = node.op.infer(*specs, **node.attrs)
    real = out.device.backend.dtype_of(out._data)
    assert (tuple(shape), dtype) == (tuple(out._data.shape), real)
    assert out.dtype == real and out.shape == tuple(shape)


GRAD_CASES = [c for c in CASES if c.values[0].grad]


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("info, sample", GRAD_CASES)
def test_vjp_matches_finite_differences(info, sample, device):
    skip_unsupported(sample, device)
    _, tensors = make_inputs(sample, device, requires_grad=True)
    assert gg.gradcheck(sample.call, tensors)


@pytest.mark.gpu
@pytest.mark.parametrize("info, sample", CASES)
def test_cuda_agrees_with_cpu(info, sample):
    """The CuPy kernels (and overrides) give the CPU's values and gradients."""
    results = {}
    for device in ("cpu", "cuda"):
        _, tensors = make_inputs(sample, device, requires_grad=info.grad)
        out = sample.call(*tensors)
        grads = []
        if info.grad and out.requires_grad:
            weights = gg.tensor(np.linspace(-1, 1, out.size).reshape(out.shape),
                                device=out.device)
            diff = [t for t in tensors if t.requires_grad]
            grads = [g.numpy() for g in gg.grad((out * weights).sum(), diff)]
        results[device] = (out.numpy(), grads)
    np.testing.assert_allclose(results["cuda"][0], results["cpu"][0], rtol=1e-10)
    for g_cuda, g_cpu in zip(results["cuda"][1], results["cpu"][1], strict=True):
        np.testing.assert_allclose(g_cuda, g_cpu, rtol=1e-10, atol=1e-12)
