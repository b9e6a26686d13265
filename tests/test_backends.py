"""Devices and backends: choosing one, saying why, falling back, and refusing silent
copies between devices."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import gpugrad as gg


def run_python(code, **env):
    """Run code in a fresh interpreter (the default device is chosen once per process)."""
    full_env = {**os.environ, **env}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=full_env, timeout=120)
    return result


def test_devices_are_interned_and_compare_with_their_names():
    assert gg.device("cpu") is gg.device("CPU")
    assert gg.device("cuda") is gg.device("cuda:0")
    assert gg.device("cpu") == "cpu" and gg.device("cuda:1") == "cuda:1"
    assert str(gg.device("cuda:1")) == "cuda:1"


@pytest.mark.parametrize("name", ["tpu", "cuda:x", "cpu:1", ""])
def test_unknown_devices_are_device_errors(name):
    with pytest.raises(gg.DeviceError):
        gg.device(name)


def test_gpugrad_device_cpu_is_obeyed_and_explained():
    result = run_python("import gpugrad as gg; i = gg.info(); "
                        "print(i['default_device'], '|', i['reason'])", GPUGRAD_DEVICE="cpu")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "cpu | GPUGRAD_DEVICE=cpu"


def test_a_bad_gpugrad_device_fails_at_first_use_not_at_import():
    code = ("import gpugrad as gg\nprint(gg.info()['reason'])\n"
            "try:\n    gg.zeros(2)\nexcept gg.DeviceError as e:\n    print('DeviceError', e)")
    result = run_python(code, GPUGRAD_DEVICE="tpu")
    assert result.returncode == 0, result.stderr
    assert "no usable default device" in result.stdout
    assert "DeviceError GPUGRAD_DEVICE='tpu'" in result.stdout


def test_without_cupy_auto_falls_back_to_numpy_and_says_why():
    # sys.modules[name] = None is how Python marks a module as not importable.
    code = ("import sys; sys.modules['cupy'] = None\nimport gpugrad as gg\n"
            "i = gg.info(); print(gg.cuda.is_available(), i['default_device'], i['backend'])\n"
            "print(i['reason'])")
    result = run_python(code, GPUGRAD_DEVICE="auto")
    assert result.returncode == 0, result.stderr
    first, reason = result.stdout.strip().splitlines()
    assert first == "False cpu numpy"
    assert "CuPy is not importable" in reason


def test_asking_for_cuda_without_a_gpu_is_a_device_error_with_the_reason():
    if gg.cuda.is_available():
        pytest.skip("a GPU is usable here")
    with pytest.raises(gg.DeviceError, match="not usable"):
        gg.tensor([1.0], device="cuda")
    result = run_python("import gpugrad as gg\ntry:\n    gg.ones(2)\n"
                        "except gg.DeviceError as e:\n    print('DeviceError', e)",
                        GPUGRAD_DEVICE="cuda")
    assert result.returncode == 0 and "DeviceError" in result.stdout
    # The error says where the choice came from, and how to fall back.
    assert "GPUGRAD_DEVICE=cuda" in result.stdout and "GPUGRAD_DEVICE=auto" in result.stdout


HAS_CUPY = importlib.util.find_spec("cupy") is not None


@pytest.mark.skipif(not HAS_CUPY or gg.cuda.is_available(),
                    reason="needs CuPy installed on a machine without a usable GPU")
def test_cupy_installed_without_a_gpu_is_a_normal_cpu_machine():
    """The real case: CuPy imports, the first device call fails; gpugrad falls back."""
    result = run_python("import gpugrad as gg; i = gg.info(); "
                        "print(i['default_device']); print(i['reason'])")
    assert result.returncode == 0, result.stderr
    device, reason = result.stdout.strip().splitlines()
    assert device == "cpu"
    assert "imports but no GPU is usable" in reason


@pytest.mark.skipif(not HAS_CUPY, reason="CuPy is not installed")
def test_the_cupy_namespace_offers_the_array_api_names_the_kernels_use():
    import cupy

    from gpugrad.backends.cupy_backend import _namespace

    xp = _namespace(cupy)
    for name in ("concat", "permute_dims", "pow", "astype", "matmul", "where", "take",
                 "maximum", "clip", "nonzero", "broadcast_to", "reshape", "matrix_transpose",
                 "logaddexp"):
        assert callable(getattr(xp, name)), name


@pytest.mark.skipif(not HAS_CUPY, reason="CuPy is not installed")
def test_the_cupy_namespace_is_named_cupy_so_kernels_take_their_cupy_path(monkeypatch):
    # Kernels choose by the namespace's name: erf's out-kernel (a compiled plan writing
    # erf into a free buffer) must take CUDA's erf, as the eager kernel does, not the
    # generic blocks of the NumPy kernel; fused chains run each op's CuPy kernel.
    import cupy

    from gpugrad.backends.cupy_backend import _namespace
    from gpugrad.compiler import fusion
    from gpugrad.ops import elementwise

    xp = _namespace(cupy)
    assert xp.__name__ == "cupy"
    calls = []
    monkeypatch.setattr(elementwise, "_erf_cupy", lambda xp, x, out=None: calls.append(x))
    elementwise._erf_into(xp, "x", "out")
    assert calls == ["x"]
    monkeypatch.setitem(fusion.REGISTRY["gpugrad::neg"].kernels, "cupy",
                        lambda xp, x: ("cupy kernel", x))
    assert fusion._step_by_step(xp, 1, steps=(("gpugrad::neg", (0,)),)) == ("cupy kernel", 1)


def test_mixing_devices_in_one_op_names_the_op_and_both_devices():
    a = gg.tensor([1.0, 2.0])
    b = gg.tensor([1.0, 2.0], device="array_api_strict")
    with pytest.raises(gg.DeviceError) as info:
        gg.maximum(a, b)
    message = str(info.value)
    assert message.startswith("maximum:")
    assert "cpu" in message and "array_api_strict" in message
    assert "test_backends.py:" in message


def test_numpy_arrays_only_mix_with_cpu_tensors():
    on_strict = gg.tensor([1.0, 2.0], device="array_api_strict")
    with pytest.raises(gg.DeviceError):
        on_strict + np.ones(2)
    with pytest.raises(gg.DeviceError):
        on_strict[np.array([0, 1])]
    assert (gg.tensor([1.0, 2.0]) + np.ones(2)).numpy().tolist() == [2.0, 3.0]


def test_to_is_the_explicit_differentiable_crossing():
    x = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x.to("array_api_strict")
    assert y.device == "array_api_strict"
    loss = (y * y).sum()
    loss.backward()
    assert x.grad.device == "cpu"
    assert x.grad.numpy().tolist() == [2.0, 4.0, 6.0]
    assert loss.graph.op_counts()["to_device"] == 1


def test_set_default_device_moves_new_tensors():
    before = gg.default_device()
    try:
        gg.set_default_device("array_api_strict")
        assert gg.zeros(2).device == "array_api_strict"
        assert gg.randn(2, 3).device == "array_api_strict"
    finally:
        gg.set_default_device(before)
    assert gg.zeros(2).device == before


def test_set_default_device_auto_chooses_as_the_environments_auto_does():
    before = gg.default_device()
    try:
        gg.set_default_device("array_api_strict")
        gg.set_default_device("auto")
        expected = "cuda:0" if gg.cuda.is_available() else "cpu"
        assert gg.zeros(2).device == expected
        assert gg.info()["reason"].startswith("auto: ")
    finally:
        gg.set_default_device(before)


def test_manual_seed_repeats_random_numbers():
    gg.manual_seed(7)
    first = gg.randn(4).numpy()
    gg.manual_seed(7)
    assert np.array_equal(gg.randn(4).numpy(), first)
    assert gg.rand(1000).numpy().min() >= 0 and gg.rand(1000).numpy().max() < 1


def test_host_copies_are_explicit():
    x = gg.tensor([1.0, 2.0], device="array_api_strict")
    host = x.numpy()
    assert isinstance(host, np.ndarray) and host.tolist() == [1.0, 2.0]
    with pytest.raises(TypeError, match="implicitly"):
        np.asarray(x)
    host[0] = 99.0  # a copy: the tensor is untouched
    assert x.numpy()[0] == 1.0
