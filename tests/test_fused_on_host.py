"""The fused CUDA kernels, run on the CPU where no GPU is at hand.

kernels/*.cu are compiled with g++ against host_cuda.h, which runs a launch as the CUDA
model defines it (blocks in turn, a block's threads as fibers meeting at __syncthreads and
at warp shuffles), and the `*_cupy` functions of gpugrad.backends.fused launch them with
their own code: the same argument lists, grid and block sizes, with NumPy arrays in
CuPy's place. So without a GPU this checks
- each fused kernel against its reference, over the cases the gpu-marked test in
  test_fused.py runs on a GPU (on shapes with fewer rows);
- every launch's arguments against the kernel's C signature (count, order, dtypes): on a
  GPU a float64 passed for a float parameter misreads every later argument;
- the kernels' block reductions and grid-stride loops at sizes the cases do not reach;
- the elementwise kernels gg.compile's fusion pass writes for CuPy, against NumPy.
What only a GPU shows stays with the gpu-marked tests: NVRTC (nvcc --ptx in test_fused.py
covers the sources), CuPy's own launch, races between blocks, CUDA's exp/log.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from host_cuda import COMPILER, HostModule
from test_compile import fusion_chains
from test_fused import CASE_PARAMS, DTYPES, KERNELS, assert_fused_agrees, run_case

from gpugrad.backends import fused
from gpugrad.compiler import fusion

pytestmark = pytest.mark.skipif(COMPILER is None, reason="g++ is not installed")


# The GPU test's shapes with fewer rows: the host runs blocks one after another. Still off
# the block size and the warp, with rows wider than a block and a partial last block.
HOST_SHAPES = [(1, 1), (1, 7), (3, 257), (33, 10), (5, 1000)]


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    """{source name: HostModule} of every CUDA source, compiled once for this module (the
    compilers side by side)."""
    build = tmp_path_factory.mktemp("host_cuda")
    with ThreadPoolExecutor() as pool:
        compiled = pool.map(lambda s: HostModule(fused.kernel_source(s), build), fused.SOURCES)
        return dict(zip(fused.SOURCES, compiled, strict=True))


@pytest.fixture
def on_host(modules, monkeypatch):
    """The fused functions' launches go to the host modules; NumPy stands in for CuPy."""
    launches = []

    def launch(source, name, dtype, blocks, threads, args):
        kernel = f"{name}_{fused._SUFFIXES[np.dtype(dtype)]}"
        launches.append(kernel)
        modules[source].launch(kernel, blocks, threads, args)

    monkeypatch.setattr(fused, "_cupy", lambda: np)
    monkeypatch.setattr(fused, "_launch", launch)
    return launches


# === every fused kernel against its reference =================================================
@pytest.mark.parametrize("shape", HOST_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,label", CASE_PARAMS)
def test_fused_kernel_agrees_with_its_reference_on_the_host(name, label, dtype, shape, on_host):
    kernel = KERNELS[name]
    expected = run_case(kernel.reference, name, label, shape, dtype, np.asarray)
    got = run_case(kernel.fused, name, label, shape, dtype, np.asarray)
    # (the backward without lse launches the forward first)
    assert any(launched.startswith(kernel.cuda_names) for launched in on_host)
    assert_fused_agrees(got, expected, name, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_device_scalar_updates_equal_the_host_scalar_ones(dtype, on_host):
    # A graph-ready plan passes the per-step scalars as 0-d arrays (the *_dev kernels read
    # them through pointers, so a replayed CUDA graph sees new values): the same update.
    rng = np.random.default_rng(3)
    p, g, m, v = (rng.standard_normal(300).astype(dtype) for _ in range(4))
    v = v * v
    scalars = {"scale": 0.999, "step_size": 0.02, "sqrt_bias2": 0.3}
    options = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01, "l2": False,
               "scales": True}
    by_value = [a.copy() for a in (p, g, m, v)]
    fused.adam_step_cupy(*by_value, **options, **scalars)
    by_pointer = [a.copy() for a in (p, g, m, v)]
    fused.adam_step_cupy(*by_pointer, **options,
                         **{k: np.asarray(x, dtype) for k, x in scalars.items()})
    assert on_host[-2:] == [f"adam_update_{fused._SUFFIXES[np.dtype(dtype)]}",
                            f"adam_update_dev_{fused._SUFFIXES[np.dtype(dtype)]}"]
    for a, b in zip(by_value, by_pointer, strict=True):
        np.testing.assert_array_equal(a, b)

    sgd = {"weight_decay": 0.0, "momentum": 0.9, "nesterov": True, "first_step": False}
    by_value = [a.copy() for a in (p, g, m)]
    fused.sgd_step_cupy(*by_value, lr=0.1, dampening_factor=1.0, **sgd)
    by_pointer = [a.copy() for a in (p, g, m)]
    fused.sgd_step_cupy(*by_pointer, lr=np.asarray(0.1, dtype),
                        dampening_factor=np.asarray(1.0, dtype), **sgd)
    for a, b in zip(by_value, by_pointer, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_plans_one_op_update_of_a_column_major_parameter_updates_each_element(dtype,
                                                                               on_host):
    # A compiled step on CuPy updates each parameter with optim.cu's kernel, which indexes
    # its arrays flat (gpugrad.optim.fused_update); a parameter may be column-major
    # (nn.Parameter(w.T), a tensor of a Fortran-ordered array) and its gradient not.
    from gpugrad.optim import fused_update

    rng = np.random.default_rng(7)
    p, g, m, v, buf = (rng.standard_normal((5, 3)).astype(dtype) for _ in range(5))
    v = v * v
    adam = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01, "l2": True,
            "scales": False}
    scalars = [np.asarray(x, dtype) for x in (0.02, 0.3, 1.0)]  # as a graph-ready plan's
    want = [a.copy() for a in (p, m, v)]
    fused_update._adam_numpy(np, want[0], g, want[1], want[2], *scalars, **adam)
    got = [np.asfortranarray(a) for a in (p, m, v)]
    assert fused_update._adam_cupy(np, got[0], g, got[1], got[2], *scalars, **adam)[0] \
        is got[0]
    for a, b in zip(got, want, strict=True):
        assert a.flags.f_contiguous
        np.testing.assert_array_equal(a, b)

    sgd = {"weight_decay": 0.01, "momentum": 0.9, "nesterov": True}
    lr, dampening = np.asarray(0.1, dtype), np.asarray(1.0, dtype)
    want = [p.copy(), buf.copy()]
    fused_update._sgd_numpy(np, want[0], g, want[1], lr, dampening, **sgd)
    got = [np.asfortranarray(p), buf.T.copy().T]
    fused_update._sgd_cupy(np, got[0], g, got[1], lr, dampening, **sgd)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    assert on_host == [f"adam_update_dev_{fused._SUFFIXES[np.dtype(dtype)]}",
                       f"sgd_update_dev_{fused._SUFFIXES[np.dtype(dtype)]}"]


# === what the cases do not reach ==============================================================
@pytest.mark.parametrize("block", [32, 64, 96, 256, 1024])
def test_the_block_reduction_gives_every_row_its_sum_at_any_block_size(modules, block):
    # softmax_xent_forward reduces each row over the block: a row wider than the block
    # (threads loop), narrower (idle threads hold the identity), several warps.
    rng = np.random.default_rng(4)
    for classes in (1, 31, block + 5, 3 * block):
        logits = rng.standard_normal((3, classes))
        labels = np.zeros(3, np.int64)
        loss, lse = np.empty(3), np.empty(3)
        modules["softmax_xent.cu"].launch(
            "softmax_xent_forward_f64", 3, block,
            (logits, labels, loss, lse, np.int64(3), np.int64(classes), np.float64(0.0)))
        np.testing.assert_allclose(lse, np.log(np.exp(logits).sum(axis=1)), rtol=1e-13)


def test_grid_stride_loops_cover_more_elements_than_threads(modules):
    # fused.py launches enough threads for every element below 2^24; past that, each thread
    # loops. A small launch over many elements takes the same path.
    z = np.linspace(-3, 3, 5000)
    y = np.empty_like(z)
    relu = np.int32(fused.ACTIVATIONS["relu"])
    modules["bias_act.cu"].launch("bias_act_forward_f64", 3, 64,
                                  (z, z, y, np.int64(z.size), np.int64(z.size), np.int32(0),
                                   relu))
    np.testing.assert_array_equal(y, np.maximum(z, 0))

    logits = np.random.default_rng(5).standard_normal((7, 3))
    loss, lse = np.empty(7), np.empty(7)
    modules["softmax_xent.cu"].launch(
        "softmax_xent_forward_f64", 2, 32,  # 7 rows over 2 blocks
        (logits, np.arange(7) % 3, loss, lse, np.int64(7), np.int64(3), np.float64(0.0)))
    np.testing.assert_allclose(lse, np.log(np.exp(logits).sum(axis=1)), rtol=1e-13)


# === the emulator refuses what a GPU would get wrong ==========================================
def test_arguments_of_the_wrong_type_are_refused(modules):
    module = modules["bias_act.cu"]
    z = np.ones((2, 3), np.float32)
    good = [z, z, z.copy(), np.int64(6), np.int64(3), np.int32(1), np.int32(1)]
    module.launch("bias_act_forward_f32", 1, 32, good)
    for position, bad in [(0, z.astype(np.float64)), (3, 6), (3, np.int32(6)),
                          (5, np.int64(1)), (2, np.ones((3, 2), np.float32).T)]:
        args = list(good)
        args[position] = bad
        with pytest.raises(TypeError, match=f"bias_act_forward_f32: argument {position}"):
            module.launch("bias_act_forward_f32", 1, 32, args)
    with pytest.raises(TypeError, match="takes 7 arguments, got 6"):
        module.launch("bias_act_forward_f32", 1, 32, good[:-1])


def test_a_barrier_not_every_thread_reaches_is_an_error(tmp_path):
    source = tmp_path / "divergent.cu"
    source.write_text('extern "C" __global__ void half_wait(float* x, long long n) {\n'
                      "    if (threadIdx.x < 16) __syncthreads();\n"
                      "    x[threadIdx.x] = 1.0f;\n}\n")
    module = HostModule(source, tmp_path)
    with pytest.raises(RuntimeError, match="not reached by every thread"):
        module.launch("half_wait", 1, 32, [np.zeros(32, np.float32), np.int64(32)])


def test_a_shuffle_in_a_partial_warp_is_an_error(modules):
    # The launcher rounds a row's block up to whole warps; 48 threads leave one half warp.
    with pytest.raises(RuntimeError, match="warp that is not full"):
        modules["softmax_xent.cu"].launch(
            "softmax_xent_forward_f32", 1, 48,
            (np.zeros((1, 4), np.float32), np.zeros(1, np.int64), np.empty(1, np.float32),
             np.empty(1, np.float32), np.int64(1), np.int64(4), np.float32(0)))


# === the compiler's generated elementwise kernels ===========================================
# On CuPy, gg.compile's fusion pass runs a chain of elementwise ops as one ElementwiseKernel
# whose body it writes from each op's C expression (compiler/fusion.py). Here each body
# runs in a kernel shaped like CuPy's, on values where C and NumPy could part: NaN, signed
# zeros, infinities, negatives under log and sqrt, ties at relu's kink.
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -2.5, 0.75, 3.0]
TRANSCENDENTAL = ("gpugrad::exp", "gpugrad::log", "gpugrad::tanh", "gpugrad::erf")
C_TYPES = {np.float32: "float", np.float64: "double"}


def elementwise_unit(name, steps, n, ctype):
    """A CUDA kernel `name`(x0, ..., out, count) with the fusion body at each element:
    inputs read into locals x0.. of type T, the result assigned to `y`, as in CuPy's."""
    loads = " ".join(f"const T x{k} = p{k}[i];" for k in range(n))
    params = "".join(f"const {ctype}* p{k}, " for k in range(n)) + f"{ctype}* out, long long count"
    args = "".join(f"p{k}, " for k in range(n)) + "out, count"
    body = "".join(f"        {line}\n" for line in fusion.cuda_body(steps, n).splitlines())
    return (f"namespace unit_{name} {{\ntypedef {ctype} T;\n"
            f"__device__ void run({params}) {{\n"
            "    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;"
            " i < count; i += (long long)blockDim.x * gridDim.x) {\n"
            f"        {loads}\n        T& y = out[i];\n{body}    }}\n}}\n}}\n"
            f'extern "C" __global__ void {name}({params}) {{ unit_{name}::run({args}); }}\n')


def chain_inputs(n, dtype):
    """n arrays holding every combination of SPECIAL values (for n <= 2), else random
    values with the special ones mixed in."""
    rng = np.random.default_rng(6)
    if n <= 2:
        grid = np.meshgrid(*[np.array(SPECIAL)] * n, indexing="ij")
        return [g.ravel().astype(dtype) for g in grid]
    arrays = [rng.standard_normal(64) for _ in range(n)]
    for k, a in enumerate(arrays):
        a[k::n + 3][:len(SPECIAL)] = SPECIAL[:len(a[k::n + 3])]
    return [np.abs(a).astype(dtype) if k == n - 1 else a.astype(dtype)
            for k, a in enumerate(arrays)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_fusion_kernels_compute_what_numpy_computes_step_by_step(dtype, tmp_path):
    chains = fusion_chains()
    source = tmp_path / "fusion.cu"
    source.write_text(fusion.PREAMBLE + "\n".join(
        elementwise_unit(f"chain_{i}", steps, n, C_TYPES[dtype])
        for i, (steps, n) in enumerate(chains)))
    module = HostModule(source, tmp_path)
    with np.errstate(all="ignore"):
        for i, (steps, n) in enumerate(chains):
            inputs = chain_inputs(n, dtype)
            want = fusion._step_by_step(np, *inputs, steps=steps)
            got = np.empty_like(inputs[0])
            module.launch(f"chain_{i}", 1, 64, (*inputs, got, np.int64(got.size)))
            what = fusion.describe(steps, n)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=what)
            if any(name in TRANSCENDENTAL for name, _ in steps):
                # The C library's exp/log/tanh/erf and NumPy's (or ours): an ulp or two.
                np.testing.assert_array_max_ulp(np.nan_to_num(got), np.nan_to_num(want),
                                                maxulp=4)
            else:  # the same IEEE operations: the same bits, the sign of zero included
                keep = ~np.isnan(want)
                np.testing.assert_array_equal(np.signbit(got[keep]), np.signbit(want[keep]),
                                              err_msg=what)
                np.testing.assert_array_equal(got[keep], want[keep], err_msg=what)
