"""Shared fixtures: the devices the same tests run on."""

import importlib.util

import pytest

import gpugrad as gg

HAS_STRICT = importlib.util.find_spec("array_api_strict") is not None


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
