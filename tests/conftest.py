"""Shared fixtures: the devices the same tests run on."""

import importlib.util
import os

import pytest

import gpugrad as gg

HAS_STRICT = importlib.util.find_spec("array_api_strict") is not None

if importlib.util.find_spec("hypothesis") is not None:
    from hypothesis import settings

    # In CI the property tests replay the same examples every run: a red build then
    # means a change broke something, not that the dice found a new corner.
    settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI"):
        settings.load_profile("ci")


def device_params():
    """cpu always; array-api-strict (a strict second backend) where installed; cuda
    marked `gpu`, skipped where no GPU is usable."""
    params = [pytest.param("cpu", id="cpu")]
    params.append(pytest.param("array_api_strict", id="strict", marks=pytest.mark.skipif(
        not HAS_STRICT, reason="array-api-strict is not installed")))
    params.append(pytest.param("cuda", id="cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
        not gg.cuda.is_available(), reason=f"no usable GPU: {gg.cuda.reason()}")]))
    return params


def pytest_collection_modifyitems(config, items):
    # Tests marked gpu skip cleanly wherever CUDA is not usable.
    if gg.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=f"no usable GPU: {gg.cuda.reason()}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def compile_quietly(fn, cuda_graph=True):
    """gg.compile(fn, cuda_graph=...), without the warning that a CPU has no CUDA graphs;
    the CompiledFunction is `.compiled` of the callable returned."""
    import warnings

    compiled = gg.compile(fn, cuda_graph=cuda_graph)

    def call(*args):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "gg.compile.*CUDA graphs need",
                                    gg.CompileWarning)
            return compiled(*args)

    call.compiled = compiled
    return call


def training_step(model, opt):
    """One eager step of cross-entropy training: what the compiled-step tests compare
    gg.compile against."""
    import gpugrad.nn.functional as F

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step
