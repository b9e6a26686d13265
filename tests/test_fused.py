"""The fused GPU kernels (kernels/*.cu) and their generic references
(gpugrad.backends.fused).

- Every CUDA source compiles with `nvcc --ptx` for Ampere (sm_80) and Hopper (sm_90) and
  defines the float32 and float64 kernels that the Python side launches by name.
- On the CPU, each reference agrees with a straightforward float64 NumPy computation and
  with what gpugrad's ops and optimisers compute today (bit for bit where it repeats their
  operations: the optimiser updates, the losses, the activations); the references run on
  array-api-strict too, with the same results.
- On a GPU (`gpu` marker), each fused kernel agrees with its reference on CuPy arrays,
  float32 and float64, over shapes that are not multiples of the block size, N = 1
  included; each source compiles once per process. Without a GPU, test_fused_on_host.py
  makes the same comparisons with the sources compiled for the CPU.
"""

import math
import pathlib
import shutil
import subprocess

import numpy as np
import pytest
from conftest import HAS_STRICT

import gpugrad as gg
import gpugrad.nn.functional as F
from gpugrad.backends import fused

KERNEL_DIR = pathlib.Path(__file__).resolve().parents[1] / "kernels"
DTYPES = [np.float32, np.float64]


def nvcc_path():
    """nvcc on PATH, else where the CUDA toolkit installs it; None without one."""
    found = shutil.which("nvcc")
    if found:
        return found
    default = pathlib.Path("/usr/local/cuda/bin/nvcc")
    return str(default) if default.is_file() else None


# === the CUDA sources ===========================================================================
def test_every_cuda_source_in_kernels_is_listed_and_found():
    on_disk = sorted(p.name for p in KERNEL_DIR.glob("*.cu"))
    assert on_disk == sorted(fused.SOURCES)
    assert fused.kernel_dir() == KERNEL_DIR  # a checkout reads its own kernels/
    assert {k.source for k in fused.KERNELS} == set(fused.SOURCES)


@pytest.mark.parametrize("source", fused.SOURCES)
def test_sources_need_no_header_so_nvrtc_compiles_them(source):
    # CuPy compiles with NVRTC at run time, which has no standard or CUDA runtime headers.
    lines = (KERNEL_DIR / source).read_text().splitlines()
    assert not [line for line in lines if line.lstrip().startswith("#include")]


def test_the_wheel_ships_the_sources():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((KERNEL_DIR.parent / "pyproject.toml").read_text())
    data_files = config["tool"]["setuptools"]["data-files"]
    assert data_files["share/gpugrad/kernels"] == ["kernels/*.cu"]


@pytest.mark.skipif(nvcc_path() is None, reason="nvcc is not installed (no CUDA toolkit)")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("source", fused.SOURCES)
def test_every_source_compiles_to_ptx(source, arch, tmp_path):
    ptx_path = tmp_path / f"{source}.ptx"
    result = subprocess.run([nvcc_path(), "--ptx", f"-arch={arch}", "-Werror", "all-warnings",
                             str(KERNEL_DIR / source), "-o", str(ptx_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    ptx = ptx_path.read_text()
    # The names the Python side launches, for both dtypes, unmangled (extern "C").
    for kernel in fused.KERNELS:
        if kernel.source != source:
            continue
        for name in kernel.cuda_names:
            assert f".entry {name}_f32(" in ptx and f".entry {name}_f64(" in ptx


@pytest.mark.skipif(nvcc_path() is None, reason="nvcc is not installed (no CUDA toolkit)")
def test_the_optimiser_kernels_round_every_operation_as_numpy_does(tmp_path):
    # No fused multiply-add may appear: it rounds once where NumPy rounds twice, and the
    # fused update would drift from the unfused one.
    ptx_path = tmp_path / "optim.ptx"
    subprocess.run([nvcc_path(), "--ptx", "-arch=sm_90", str(KERNEL_DIR / "optim.cu"), "-o",
                    str(ptx_path)], check=True, capture_output=True, timeout=300)
    assert "fma" not in ptx_path.read_text()


# === cases: the same inputs for every implementation =========================================
# Each case builds host (NumPy) arguments for one kernel; `convert` moves arrays to the
# namespace under test. Arrays are built afresh for each run, as some kernels update in place.
def _host(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _labels(rng, rows, classes):
    labels = rng.integers(0, classes, rows)
    if rows >= 3:  # out-of-range labels: their rows are NaN, the others unaffected
        labels[1], labels[2] = classes, -1
    return labels


def _bias_act_forward(activation, with_bias):
    def build(rng, shape, dtype):
        bias = _host(rng, shape[-1:], dtype) if with_bias else None
        return (_host(rng, shape, dtype, 3.0), bias, activation), {}
    return build


def _bias_act_backward(activation):
    def build(rng, shape, dtype):
        y = fused.bias_act_forward_reference(_host(rng, shape, dtype, 3.0), None, activation)
        return (_host(rng, shape, dtype), y, activation), {}
    return build


def _xent_forward(smoothing, reduction):
    def build(rng, shape, dtype):
        logits = _host(rng, shape, dtype, 5.0)
        return (logits, _labels(rng, *shape)), {"label_smoothing": smoothing,
                                                "reduction": reduction}
    return build


def _xent_backward(smoothing, reduction, with_lse):
    def build(rng, shape, dtype):
        logits, labels = _host(rng, shape, dtype, 5.0), _labels(rng, *shape)
        grad = {"none": _host(rng, shape[:1], dtype), "mean": 1.5,
                "sum": np.asarray(0.7, dtype)}[reduction]
        lse = None
        if with_lse:
            lse = fused.softmax_xent_forward_reference(logits, labels,
                                                       label_smoothing=smoothing)[1]
        return (grad, logits, labels, lse), {"label_smoothing": smoothing,
                                             "reduction": reduction}
    return build


def _adam(step, weight_decay, decoupled):
    def build(rng, shape, dtype):
        state = (np.abs(_host(rng, shape, dtype, 0.1)), _host(rng, shape, dtype, 0.01) ** 2)
        if step == 1:
            state = (np.zeros(shape, dtype), np.zeros(shape, dtype))
        return (_host(rng, shape, dtype), _host(rng, shape, dtype)) + state, {
            "step": step, "lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8,
            "weight_decay": weight_decay, "decoupled": decoupled}
    return build


def _sgd(momentum, nesterov, dampening, weight_decay, first_step):
    def build(rng, shape, dtype):
        buffer = _host(rng, shape, dtype) if momentum else None
        if first_step and momentum:
            buffer = np.full(shape, np.nan, dtype)  # never read on the first step
        return (_host(rng, shape, dtype), _host(rng, shape, dtype), buffer), {
            "lr": 0.1, "momentum": momentum, "nesterov": nesterov, "dampening": dampening,
            "weight_decay": weight_decay, "first_step": first_step}
    return build


CASES = {
    "bias_act_forward": {f"{act}-{'bias' if b else 'nobias'}": _bias_act_forward(act, b)
                         for act in fused.ACTIVATIONS for b in (True, False)},
    "bias_act_backward": {act: _bias_act_backward(act) for act in fused.ACTIVATIONS},
    "softmax_xent_forward": {f"s{s}-{r}": _xent_forward(s, r)
                             for s in (0.0, 0.1) for r in fused.REDUCTIONS},
    "softmax_xent_backward": {f"s{s}-{r}-{'lse' if lse else 'nolse'}": _xent_backward(s, r, lse)
                              for s in (0.0, 0.1) for r in fused.REDUCTIONS
                              for lse in (True, False)},
    "adam_update": {"adam-first": _adam(1, 0.0, False), "adam-l2": _adam(4, 0.01, False),
                    "adamw": _adam(4, 0.01, True)},
    "sgd_update": {"plain": _sgd(0.0, False, 0.0, 0.0, False),
                   "momentum-first": _sgd(0.9, False, 0.0, 0.0, True),
                   "momentum": _sgd(0.9, False, 0.0, 0.01, False),
                   "nesterov": _sgd(0.9, True, 0.0, 0.0, False),
                   "dampening": _sgd(0.5, False, 0.3, 0.1, False)},
}
KERNELS = {k.name: k for k in fused.KERNELS}
CASE_PARAMS = [pytest.param(name, label, id=f"{name}-{label}")
               for name, cases in CASES.items() for label in cases]


def test_every_kernel_has_cases():
    assert set(CASES) == set(KERNELS)


def run_case(function, name, label, shape, dtype, convert, seed=0):
    """Build the case's arguments (the same for the same seed), convert its arrays, run
    `function`; the results as host float64 arrays, in a list."""
    args, kwargs = CASES[name][label](np.random.default_rng(seed), shape, dtype)
    args = [convert(a) if isinstance(a, np.ndarray) else a for a in args]
    result = function(*args, **kwargs)
    results = result if isinstance(result, tuple) else (result,)
    return [None if r is None else np.asarray(to_host(r)) for r in results]


def to_host(array):
    library = type(array).__module__.split(".")[0]
    if library == "cupy":
        return array.get()
    return np.asarray(array) if library == "numpy" else np.from_dlpack(array)


def assert_same(got, expected):
    for g, e in zip(got, expected, strict=True):
        if e is None:
            assert g is None
        else:
            np.testing.assert_array_equal(g, e)


# === references on the CPU ====================================================================
@pytest.mark.parametrize("name,label", CASE_PARAMS)
def test_dispatcher_takes_the_reference_for_numpy_arrays(name, label):
    kernel = KERNELS[name]
    expected = run_case(kernel.reference, name, label, (5, 7), np.float64, np.asarray)
    assert_same(run_case(kernel.dispatch, name, label, (5, 7), np.float64, np.asarray),
                expected)


@pytest.mark.skipif(not HAS_STRICT, reason="array-api-strict is not installed")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,label", CASE_PARAMS)
def test_references_run_on_array_api_strict_with_numpys_results(name, label, dtype):
    # array-api-strict, like CuPy, refuses NumPy arrays mixed in: a host array leaking into
    # a reference fails here.
    backend = gg.device("array_api_strict").backend
    to_strict = lambda a: backend.from_host(a, a.dtype)  # noqa: E731
    reference = KERNELS[name].reference
    on_numpy = run_case(reference, name, label, (5, 7), dtype, np.asarray)
    assert_same(run_case(reference, name, label, (5, 7), dtype, to_strict), on_numpy)


# --- bias + activation --------------------------------------------------------------------------
def act_float64(activation, x):
    """The activations by their textbook definitions, in float64."""
    return {"identity": x, "relu": np.where(x > 0, x, 0.0), "tanh": np.tanh(x),
            "sigmoid": 1 / (1 + np.exp(-x))}[activation]


@pytest.mark.parametrize("activation", list(fused.ACTIVATIONS))
def test_bias_act_forward_is_the_activation_of_z_plus_bias(activation):
    rng = np.random.default_rng(1)
    z, b = rng.standard_normal((6, 4)) * 3, rng.standard_normal(4)
    y = fused.bias_act_forward_reference(z, b, activation)
    np.testing.assert_allclose(y, act_float64(activation, z + b), rtol=1e-14, atol=1e-300)
    assert y is not z


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_act_matches_gpugrads_ops_forward_and_backward(activation, dtype):
    rng = np.random.default_rng(2)
    z, b, g = (rng.standard_normal(s).astype(dtype) * 3 for s in ((8, 5), (5,), (8, 5)))
    tz, tb = gg.tensor(z, requires_grad=True), gg.tensor(b, requires_grad=True)
    ty = getattr(tz + tb, activation)()
    ty.backward(gg.tensor(g))

    y = fused.bias_act_forward_reference(z, b, activation)
    np.testing.assert_array_equal(y, ty.numpy())
    grad_z = fused.bias_act_backward_reference(g, y, activation)
    np.testing.assert_array_equal(grad_z, tz.grad.numpy())
    np.testing.assert_allclose(grad_z.sum(axis=0), tb.grad.numpy(), rtol=1e-5)


def test_bias_act_backward_derivatives_from_the_output():
    y = np.array([[-0.5, 0.0, 0.25, 0.75]])
    g = np.array([[2.0, 2.0, 2.0, 2.0]])
    np.testing.assert_array_equal(fused.bias_act_backward_reference(g, y, "relu"),
                                  [[0.0, 0.0, 2.0, 2.0]])
    np.testing.assert_allclose(fused.bias_act_backward_reference(g, y, "tanh"),
                               2 * (1 - y ** 2))
    np.testing.assert_allclose(fused.bias_act_backward_reference(g, y, "sigmoid"),
                               2 * y * (1 - y))
    np.testing.assert_array_equal(fused.bias_act_backward_reference(g, y, "identity"), g)


def test_bias_act_writes_into_out_in_place():
    z = np.array([[-1.0, 2.0]])
    y = fused.bias_act_forward(z, np.array([0.5, 0.5]), "relu", out=z)
    assert y is z
    np.testing.assert_array_equal(z, [[0.0, 2.5]])


def test_bias_act_refuses_a_bias_of_the_wrong_length_and_unknown_activations():
    with pytest.raises(ValueError, match=r"bias of shape \(3,\)"):
        fused.bias_act_forward(np.zeros((2, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="activation must be one of"):
        fused.bias_act_forward(np.zeros((2, 4)), None, "gelu")


# --- softmax + cross-entropy ----------------------------------------------------------------------
def xent_float64(logits, labels):
    """Per-row -log(exp(x_y) / sum_c exp(x_c)), straightforwardly, in float64 (the
    logits are small enough not to overflow)."""
    e = np.exp(logits.astype(np.float64))
    return -np.log(e[np.arange(len(labels)), labels] / e.sum(axis=1))


def test_xent_forward_is_minus_log_softmax_at_the_label_and_saves_logsumexp():
    rng = np.random.default_rng(3)
    logits, labels = rng.standard_normal((9, 4)) * 2, rng.integers(0, 4, 9)
    loss, lse = fused.softmax_xent_forward_reference(logits, labels)
    np.testing.assert_allclose(loss, xent_float64(logits, labels), rtol=1e-13)
    np.testing.assert_allclose(lse, np.log(np.exp(logits).sum(axis=1)), rtol=1e-13)
    mean, _ = fused.softmax_xent_forward_reference(logits, labels, reduction="mean")
    assert mean.shape == () and mean == pytest.approx(loss.mean(), rel=1e-15)


def test_xent_is_stable_for_huge_logits():
    logits = np.array([[1000.0, 0.0, -1000.0]], dtype=np.float32)
    loss, lse = fused.softmax_xent_forward_reference(logits, np.array([1]))
    assert loss[0] == pytest.approx(1000.0) and lse[0] == pytest.approx(1000.0)
    grad = fused.softmax_xent_backward_reference(1.0, logits, np.array([1]), lse)
    np.testing.assert_allclose(grad, [[1.0, -1.0, 0.0]], atol=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("dtype", DTYPES)
def test_xent_matches_f_cross_entropy_and_its_gradient(dtype, smoothing):
    rng = np.random.default_rng(4)
    logits, labels = rng.standard_normal((7, 5)).astype(dtype) * 3, rng.integers(0, 5, 7)
    t = gg.tensor(logits, requires_grad=True)
    loss_t = F.cross_entropy(t, labels, label_smoothing=smoothing)
    loss_t.backward()

    per_row, lse = fused.softmax_xent_forward_reference(logits, labels,
                                                        label_smoothing=smoothing)
    op_rows = F.cross_entropy(gg.tensor(logits), labels, label_smoothing=smoothing,
                              reduction="none")
    np.testing.assert_array_equal(per_row, op_rows.numpy())  # the op's arithmetic, repeated
    mean, _ = fused.softmax_xent_forward_reference(logits, labels, label_smoothing=smoothing,
                                                   reduction="mean")
    np.testing.assert_allclose(mean, loss_t.numpy(), rtol=1e-6 if dtype == np.float32
                               else 1e-15)
    grad = fused.softmax_xent_backward_reference(1.0, logits, labels, lse,
                                                 label_smoothing=smoothing, reduction="mean")
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-5 if dtype == np.float32
                               else 1e-12, atol=1e-7 if dtype == np.float32 else 1e-15)


def test_xent_backward_per_row_is_gpugrads_cross_entropy_backward_op():
    from gpugrad.ops.loss import cross_entropy_backward

    rng = np.random.default_rng(5)
    logits, labels, g = rng.standard_normal((4, 3)), rng.integers(0, 3, 4), rng.random(4)
    expected = cross_entropy_backward(gg.tensor(g), gg.tensor(logits), gg.tensor(labels))
    np.testing.assert_allclose(fused.softmax_xent_backward_reference(g, logits, labels),
                               expected.numpy(), rtol=1e-13, atol=1e-16)


def test_xent_backward_is_softmax_minus_onehot_over_n():
    # softmax rows: (1/4, 3/4) and (4/5, 1/5)
    logits = np.array([[0.0, np.log(3.0)], [np.log(4.0), 0.0]])
    grad = fused.softmax_xent_backward_reference(2.0, logits, np.array([1, 0]),
                                                 reduction="mean")
    np.testing.assert_allclose(grad, [[0.25, -0.25], [-0.2, 0.2]], rtol=1e-14)


def test_out_of_range_labels_make_their_rows_nan_and_leave_the_others():
    logits = np.zeros((3, 2))
    loss, lse = fused.softmax_xent_forward_reference(logits, np.array([0, 2, -1]))
    assert loss[0] == pytest.approx(math.log(2)) and np.isnan(loss[1:]).all()
    grad = fused.softmax_xent_backward_reference(np.ones(3), logits, np.array([0, 2, -1]), lse)
    np.testing.assert_allclose(grad[0], [-0.5, 0.5])
    assert np.isnan(grad[1:]).all()


def test_xent_refuses_mismatched_labels_and_grads():
    with pytest.raises(ValueError, match=r"labels of shape \(2,\)"):
        fused.softmax_xent_forward(np.zeros((3, 2)), np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="one gradient per row"):
        fused.softmax_xent_backward(np.ones(2), np.zeros((3, 2)), np.zeros(3, dtype=np.int64))


# --- optimiser updates ------------------------------------------------------------------------
def train_with_optimizer(make_optimizer, p0, grads):
    """The parameter, and its optimiser state as host arrays, after one gg.optim step per
    gradient."""
    p = gg.tensor(p0.copy(), requires_grad=True)
    opt = make_optimizer([p])
    for g in grads:
        p.grad = gg.tensor(g)
        opt.step()
    state = {k: np.asarray(v) for k, v in opt.state[p].items() if hasattr(v, "shape")}
    return p.numpy(), state


ADAMS = [pytest.param(gg.optim.Adam, {}, False, id="adam"),
         pytest.param(gg.optim.Adam, {"weight_decay": 0.05}, False, id="adam-l2"),
         pytest.param(gg.optim.AdamW, {"weight_decay": 0.05}, True, id="adamw")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer,options,decoupled", ADAMS)
def test_adam_reference_is_gpugrads_adam_bit_for_bit(optimizer, options, decoupled, dtype):
    rng = np.random.default_rng(6)
    p0 = rng.standard_normal((4, 3)).astype(dtype)
    grads = [rng.standard_normal((4, 3)).astype(dtype) for _ in range(3)]
    hyper = {"lr": 0.01, "betas": (0.9, 0.99), "eps": 1e-8, **options}
    expected, state = train_with_optimizer(lambda ps: optimizer(ps, **hyper), p0, grads)

    p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    for step, g in enumerate(grads, start=1):
        returned = fused.adam_update_reference(p, g, m, v, step=step, decoupled=decoupled,
                                               **hyper)
        assert returned[0] is p and returned[1] is m and returned[2] is v  # in place
    np.testing.assert_array_equal(p, expected)
    np.testing.assert_array_equal(m, state["exp_avg"])
    np.testing.assert_array_equal(v, state["exp_avg_sq"])


def test_adam_reference_follows_the_textbook_formula():
    rng = np.random.default_rng(7)
    p0 = rng.standard_normal(5)
    grads = [rng.standard_normal(5) for _ in range(3)]
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    p, m, v = p0.copy(), np.zeros(5), np.zeros(5)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    q, mq, vq = p0.copy(), np.zeros(5), np.zeros(5)
    for t, g in enumerate(grads, start=1):
        fused.adam_update_reference(q, g, mq, vq, step=t, lr=lr, betas=(b1, b2), eps=eps)
    np.testing.assert_allclose(q, p, rtol=1e-12)


SGDS = [pytest.param({}, id="plain"), pytest.param({"momentum": 0.9}, id="momentum"),
        pytest.param({"momentum": 0.9, "nesterov": True}, id="nesterov"),
        pytest.param({"momentum": 0.5, "dampening": 0.3, "weight_decay": 0.1}, id="damped")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", SGDS)
def test_sgd_reference_is_gpugrads_sgd_bit_for_bit(options, dtype):
    rng = np.random.default_rng(8)
    p0 = rng.standard_normal((3, 4)).astype(dtype)
    grads = [rng.standard_normal((3, 4)).astype(dtype) for _ in range(3)]
    expected, state = train_with_optimizer(lambda ps: gg.optim.SGD(ps, lr=0.1, **options), p0,
                                           grads)

    p = p0.copy()
    buffer = np.empty_like(p0) if options.get("momentum") else None  # unread at step 1
    for step, g in enumerate(grads, start=1):
        p, buffer = fused.sgd_update_reference(p, g, buffer, lr=0.1, first_step=step == 1,
                                               **options)
    np.testing.assert_array_equal(p, expected)
    if buffer is not None:
        np.testing.assert_array_equal(buffer, state["momentum_buffer"])


def test_sgd_momentum_accumulates_velocity():
    p, buffer = np.zeros(1), np.empty(1)
    for step in (1, 2):
        fused.sgd_update_reference(p, np.ones(1), buffer, lr=1.0, momentum=0.5,
                                   first_step=step == 1)
    np.testing.assert_array_equal(buffer, [1.5])  # 1, then 0.5 * 1 + 1
    np.testing.assert_array_equal(p, [-2.5])  # -1, then -1.5


def test_a_refused_update_changes_nothing():
    p, m, v = np.ones(3), np.zeros(3), np.zeros(4)
    with pytest.raises(ValueError, match="exp_avg_sq has shape"):
        fused.adam_update(p, np.ones(3), m, v, step=1)
    np.testing.assert_array_equal(p, np.ones(3))
    np.testing.assert_array_equal(m, np.zeros(3))
    with pytest.raises(ValueError, match="needs a momentum_buffer"):
        fused.sgd_update(p, np.ones(3), None, lr=0.1, momentum=0.9)


def test_adam_scalars_are_the_optimisers():
    s = fused.adam_scalars(2, lr=0.1, betas=(0.9, 0.99), weight_decay=0.01, decoupled=True)
    assert s.step_size == 0.1 / (1 - 0.9 ** 2)
    assert s.sqrt_bias2 == math.sqrt(1 - 0.99 ** 2)
    assert s.scale == 1 - 0.1 * 0.01
    assert fused.adam_scalars(2, 0.1, (0.9, 0.99), 0.01, decoupled=False).scale == 1.0


# === fused kernels against their references, on a GPU =========================================
# Shapes off the block size (256 threads) and the warp (32), a single row, a single element.
KERNEL_SHAPES = [(1, 1), (1, 7), (3, 257), (513, 10), (64, 1000)]


def fused_tolerance(name, dtype):
    if name in ("adam_update", "sgd_update"):
        return None  # rounded operation for operation as the reference: compared in ulps
    # The fused kernels use CUDA's exp/log/tanh (within 2 ulps) and sum in another order.
    if name == "softmax_xent_backward" and dtype == np.float32:
        # g (p - q) with p = exp(x - lse): a log-sum-exp of ~20 computed in another order
        # is off by an ulp or two of 20 (2e-6 each), which moves p by as much, absolutely;
        # where p is near q, that is far more than 1e-5 of the small difference.
        return {"rtol": 1e-5, "atol": 1e-5}
    return {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else \
        {"rtol": 1e-12, "atol": 1e-14}


def assert_fused_agrees(got, expected, name, dtype):
    """A fused kernel's results (host arrays, from run_case) against its reference's."""
    tolerance = fused_tolerance(name, dtype)
    for g, e in zip(got, expected, strict=True):
        if e is None:
            assert g is None
            continue
        assert g.dtype == e.dtype and g.shape == e.shape
        assert (np.isnan(g) == np.isnan(e)).all()  # the same rows flagged
        g, e = np.nan_to_num(g), np.nan_to_num(e)
        if tolerance is None:
            # One compiled with explicit roundings, the other a chain of array operations:
            # the same IEEE operations, so at most a last-bit difference is allowed.
            np.testing.assert_array_max_ulp(g, e, maxulp=1)
        else:
            np.testing.assert_allclose(g, e, **tolerance)


@pytest.mark.gpu
@pytest.mark.parametrize("shape", KERNEL_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,label", CASE_PARAMS)
def test_fused_kernel_agrees_with_its_reference_on_the_gpu(name, label, dtype, shape):
    import cupy

    kernel = KERNELS[name]
    expected = run_case(kernel.reference, name, label, shape, dtype, cupy.asarray)
    got = run_case(kernel.fused, name, label, shape, dtype, cupy.asarray)
    assert_fused_agrees(got, expected, name, dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("name", list(CASES))
def test_dispatcher_takes_the_fused_kernel_for_cupy_arrays(name, monkeypatch):
    import cupy

    kernel, label = KERNELS[name], next(iter(CASES[name]))
    monkeypatch.setattr(fused, f"{name}_reference", None)  # would fail if it were called
    run_case(kernel.dispatch, name, label, (4, 5), np.float32, cupy.asarray)


@pytest.mark.gpu
def test_a_source_compiles_once_and_is_cached():
    import cupy

    fused.clear_cache()
    z = cupy.ones((3, 4), dtype=cupy.float32)
    fused.bias_act_forward_cupy(z, None, "relu")
    module = fused.load_module("bias_act.cu")
    fused.bias_act_backward_cupy(z, z, "tanh")
    fused.bias_act_forward_cupy(z.astype(cupy.float64), None, "sigmoid")
    assert fused.load_module("bias_act.cu") is module
    assert fused.compile_count("bias_act.cu") == 1
    assert fused.compile_count("optim.cu") == 0  # compiled when first used, not before


@pytest.mark.gpu
def test_fused_bias_act_takes_strided_inputs_and_writes_out_in_place():
    import cupy

    z = cupy.asarray(np.arange(12.0).reshape(3, 4).T - 5)  # (4, 3), not C-contiguous
    b = cupy.asarray([1.0, -1.0, 0.5])
    expected = fused.bias_act_forward_reference(z, b, "relu")
    out = cupy.empty((4, 3))
    assert fused.bias_act_forward_cupy(z, b, "relu", out=out) is out
    np.testing.assert_array_equal(out.get(), expected.get())


@pytest.mark.gpu
def test_fused_xent_takes_int32_labels_and_flags_bad_ones():
    import cupy

    logits = cupy.asarray([[0.0, 0.0], [1.0, 2.0], [3.0, 1.0]], dtype=cupy.float32)
    labels = cupy.asarray([1, 5, 0], dtype=cupy.int32)
    loss, lse = fused.softmax_xent_forward_cupy(logits, labels)
    host = loss.get()
    assert host[0] == pytest.approx(math.log(2), rel=1e-6) and np.isnan(host[1])
    dlogits = fused.softmax_xent_backward_cupy(1.0, logits, labels, lse).get()
    assert np.isnan(dlogits[1]).all() and not np.isnan(dlogits[[0, 2]]).any()
