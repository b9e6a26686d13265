"""The plugin's own tests: gpugrad's opcheck, the entry point, and the CUDA kernel
against the generic forward."""

import shutil
import subprocess

import numpy as np
import pytest
from gpugrad_swish.ops import KERNEL_SOURCE, polar, swish

import gpugrad as gg
from gpugrad.testing import opcheck


def test_swish_passes_opcheck():
    report = opcheck(swish, [np.linspace(-3, 3, 11)], {"beta": 1.7})
    assert report["inference"] == "ok" and report["gradcheck"] == "ok"


def test_polar_two_outputs_pass_opcheck():
    x, y = np.array([1.0, 2.0, -0.5]), np.array([0.5, -1.0, 2.0])
    report = opcheck(polar, [x, y])
    assert report["inference"] == "ok" and report["gradcheck"] == "ok"
    r, theta = polar(gg.tensor(x), gg.tensor(y))
    np.testing.assert_allclose(r.numpy(), np.hypot(x, y), rtol=1e-6)
    np.testing.assert_allclose(theta.numpy(), np.arctan2(y, x), rtol=1e-6)


def test_swish_is_found_through_the_entry_point():
    from gpugrad.ops import get, load_plugins

    load_plugins(force=True)
    op = get("swish::swish")
    assert op.source.startswith("plugin swish")
    x = gg.tensor([-1.0, 0.0, 2.0])
    np.testing.assert_allclose(op(x).numpy(), [-1 / (1 + np.e), 0.0, 2 / (1 + np.exp(-2))],
                               rtol=1e-6)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_the_cuda_kernel_compiles_for_hopper(tmp_path):
    result = subprocess.run(["nvcc", "--ptx", "-arch=sm_90", str(KERNEL_SOURCE), "-o",
                             str(tmp_path / "swish.ptx")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    ptx = (tmp_path / "swish.ptx").read_text()
    assert ".entry swish_f32" in ptx and ".entry swish_f64" in ptx


@pytest.mark.skipif(not gg.cuda.is_available(), reason="no usable GPU")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_cuda_kernel_agrees_with_the_generic_forward(dtype):
    x = np.linspace(-6, 6, 1001).astype(dtype)
    on_gpu = swish(gg.tensor(x, device="cuda"), beta=1.3).numpy()
    generic = swish(gg.tensor(x), beta=1.3).numpy()
    np.testing.assert_allclose(on_gpu, generic, rtol=1e-6 if dtype == "float32" else 1e-12)
