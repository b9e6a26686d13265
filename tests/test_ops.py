"""Per-op tests generated from the op registry and the table in opinfo.py.

For every built-in op, on every device: the forward pass against NumPy (float64), the
inferred shape/dtype against the array the kernel really returned, and the VJP against
finite differences (gg.gradcheck, float64, broadcast shapes included). On a GPU, every
op's CuPy result and gradients also agree with the CPU's. Last, erf, whose kernel is an
approximation of gpugrad's own: its accuracy over the whole line in every float dtype.
"""

import math

import numpy as np
import pytest
from conftest import HAS_STRICT, device_params
from opinfo import OPS

import gpugrad as gg
from gpugrad.mode import tracing
from gpugrad.ops import REGISTRY
from gpugrad.ops import elementwise as ew

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


# === erf: a kernel of our own ===================================================================
# NumPy and the array API standard have no erf, so gpugrad's is its own approximation
# (gpugrad/ops/elementwise.py); the C library's erf (math.erf) is the reference here.


def erf_arguments():
    """About 4 * 10^5 float64 arguments over the whole line: where activations live, both
    of the kernel's intervals and the tails past them, magnitudes from 1e-300 to 30, the
    interval edges 1 and 6 and their neighbours, subnormals and huge values."""
    rng = np.random.default_rng(11)
    n = 100_000
    sign = rng.choice([-1.0, 1.0], n)
    edges = [np.nextafter(e, e + k) for e in (1.0, 6.0) for k in (-1.0, 0.0, 1.0)]
    return np.concatenate([
        rng.standard_normal(n) * 2.0,
        rng.uniform(-7.0, 7.0, n),
        rng.uniform(0.9, 1.1, n) * sign,
        np.exp(rng.uniform(np.log(1e-300), np.log(30.0), n)) * sign,
        edges, np.negative(edges),
        [5e-324, -5e-324, 2.2250738585072014e-308, 1e-20, -1e-8, 1e300, -1e300],
    ])


def test_erf_is_within_an_ulp_or_two_of_the_c_librarys_over_the_whole_line():
    x = erf_arguments()
    want = np.array([math.erf(v) for v in x])
    got = gg.tensor(x).erf().numpy()
    assert got.dtype == np.float64
    np.testing.assert_array_max_ulp(got, want, maxulp=2)  # measured: at most 1 apart
    # Not a bias within the bound either: most results are the C library's bits (91% here;
    # each is within an ulp of the exact value, and both round it).
    assert np.mean(got == want) > 0.8


@pytest.mark.parametrize("device", device_params())
def test_erf_of_infinities_nan_zeros_and_subnormals(device):
    x = gg.tensor([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-310, -5e-324], dtype="float64",
                  device=device)
    got = x.erf().numpy()
    np.testing.assert_array_equal(got[:2], [1.0, -1.0])
    assert np.isnan(got[2])
    assert got[3] == 0.0 and not np.signbit(got[3])
    assert got[4] == 0.0 and np.signbit(got[4])  # erf is odd, to the sign of zero
    np.testing.assert_array_equal(got[5:], [math.erf(1e-310), math.erf(-5e-324)])


def float32_erf_arguments():
    """About 10^6 float32 arguments: bit patterns drawn evenly over (0, 4] (every binade,
    subnormals included), values evenly over [0, 4] and near the switch at 1, runs of
    consecutive floats at 1, at 4 and where erf starts rounding to 1, and the worst case
    of the exhaustive check (x = WORST_FLOAT32)."""
    rng = np.random.default_rng(12)
    top = int(np.float32(4.0).view(np.uint32))
    bits = rng.integers(1, top + 1, 400_000, dtype=np.uint32)
    runs = [np.arange(-500, 501, dtype=np.int64) + int(np.float32(e).view(np.uint32))
            for e in (1.0, 3.92, 4.0)]
    x = np.concatenate([
        bits.view(np.float32), rng.uniform(0, 4, 400_000).astype(np.float32),
        rng.uniform(0.95, 1.05, 200_000).astype(np.float32),
        np.concatenate(runs).astype(np.uint32).view(np.float32),
        [np.float32(WORST_FLOAT32), np.float32(1e-45), np.float32(1.1754942e-38)]])
    return x[x <= 4]


WORST_FLOAT32 = 1.0622507333755493  # measured over every float32 in (0, 4]: 1.443 ulp


def ulps_off(got, exact):
    """|got - exact| in ulps of float32 at exact (2^(e - 23) for exact in [2^e, 2^(e+1)),
    2^-149 among the subnormals), from float64 references."""
    exponent = np.floor(np.log2(np.abs(exact)))
    ulp = np.ldexp(1.0, np.maximum(exponent - 23, -149).astype(int))
    return np.abs(got.astype(np.float64) - exact) / ulp


def test_float32_erf_is_within_1_45_ulp_and_mostly_correctly_rounded():
    """float32 has approximations of its own, computed in float32: every float32 in (0, 4]
    was checked against the exact value (at most 1.443 ulp off, at WORST_FLOAT32; 94% within
    half an ulp); here a sample of 10^6, and -x, since erf is odd (|x| > 4 is 1, below)."""
    x = float32_erf_arguments()
    got = gg.tensor(x).erf().numpy()
    assert got.dtype == np.float32
    exact = np.vectorize(math.erf, otypes=[np.float64])(x.astype(np.float64))
    off = ulps_off(got, exact)
    assert off.max() <= 1.45
    assert off[x == np.float32(WORST_FLOAT32)][0] > 1.44  # the case that sets the bound
    assert np.mean(off <= 0.5) > 0.85  # mostly correctly rounded (tiny x weigh more here)
    np.testing.assert_array_equal(gg.tensor(-x).erf().numpy(), -got)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_narrow_erf_of_infinities_nan_zeros_large_values_and_subnormals(dtype):
    tiny = np.finfo(dtype).smallest_subnormal
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 4.0, 4.5, 100.0, -np.finfo(dtype).max,
                  tiny, -tiny], dtype)
    got = gg.tensor(x).erf().numpy()
    assert got.dtype == dtype
    np.testing.assert_array_equal(got[[0, 1, 5, 6, 7, 8]], [1, -1, 1, 1, 1, -1])
    assert np.isnan(got[2])
    assert got[3] == 0 and not np.signbit(got[3]) and got[4] == 0 and np.signbit(got[4])
    want = [math.erf(float(v)) for v in x[9:]]
    np.testing.assert_array_equal(got[9:], np.array(want).astype(dtype))


def test_float16_erf_is_correctly_rounded_but_for_one_pair_of_the_63488_finite_values():
    """float16 goes through float32 (within 1.45 float32 ulp, 2^-13 of a float16 ulp), so
    every finite float16 gives the correctly rounded erf, except where the exact value lies
    within that of a halfway point between two float16s: erf(+-0.001482) is 3e-8 (0.25
    float32 ulp) under one, and rounds away from it, one float16 ulp off."""
    x = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    x = x[np.isfinite(x)]
    assert x.size == 63_488
    got = gg.tensor(x).erf().numpy()
    assert got.dtype == np.float16
    want = np.vectorize(math.erf, otypes=[np.float64])(x.astype(np.float64)).astype(np.float16)
    wrong = got != want
    np.testing.assert_array_equal(np.abs(x[wrong]), [0.0014820098876953125] * 2)
    np.testing.assert_array_max_ulp(got, want, maxulp=1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_erf_numpys_kernel_is_the_generic_one_block_by_block(dtype):
    """On NumPy the generic kernel (the one array-api-strict runs) goes over blocks of the
    array that stay in the CPU's cache: the same operations, so the same bits, whatever
    the layout, and written into a given array (compiled plans), even into x itself."""
    columns = 3 * ew._erf_block(np.dtype(dtype)) // 7  # more than two blocks
    x = (np.random.default_rng(13).standard_normal((3 * 7, columns)) * 3).astype(dtype)
    reference = ew._erf_forward(np, x)
    assert reference.dtype == dtype
    np.testing.assert_array_equal(ew._erf_numpy(np, x), reference)
    np.testing.assert_array_equal(ew._erf_numpy(np, x.T), reference.T)  # not contiguous
    in_place = x.copy()
    assert ew._erf_into(np, in_place, in_place) is in_place
    np.testing.assert_array_equal(in_place, reference)
    strided_out = np.empty(x.T.shape, dtype).T
    ew._erf_into(np, x, strided_out)
    np.testing.assert_array_equal(strided_out, reference)


@pytest.mark.skipif(not HAS_STRICT, reason="array-api-strict is not installed")
@pytest.mark.parametrize("dtype", ["float64", "float32"])  # the standard has no float16
def test_erf_on_the_array_api_alone_gives_numpys_bits(dtype):
    x = erf_arguments()[::10]
    got = gg.tensor(x, dtype=dtype, device="array_api_strict").erf()
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.numpy(), gg.tensor(x, dtype=dtype).erf().numpy())


@pytest.mark.gpu
@pytest.mark.parametrize("dtype, maxulp", [("float64", 4), ("float32", 3), ("float16", 1)])
def test_erf_on_cuda_agrees_with_the_numpy_kernel(dtype, maxulp):
    """CUDA's erf (within 2 ulp of the exact value in float and double, by its manual)
    against ours (within 1 in float64, 1.45 in float32, 1 in float16), specials included;
    written into a buffer, too."""
    x = erf_arguments()[::20]
    x = np.concatenate([x[np.abs(x) < np.finfo(dtype).max], [0.0, -0.0, np.inf, -np.inf]])
    x = x.astype(dtype)
    cpu = gg.tensor(x).erf().numpy()
    cuda = gg.tensor(x, device="cuda").erf()
    assert cuda.dtype == dtype
    np.testing.assert_array_max_ulp(cuda.numpy(), cpu, maxulp=maxulp)
    assert np.isnan(gg.tensor([np.nan], dtype=dtype, device="cuda").erf().numpy()).all()
    import cupy

    out = cupy.empty(x.shape, dtype)
    ew._erf_into(cupy, cupy.asarray(x), out)
    np.testing.assert_array_equal(cupy.asnumpy(out), cuda.numpy())
