"""gpugrad.nn: modules (layers, models), initialisers and, in nn.functional, losses."""

from . import functional, init  # noqa: F401
from .layers import (  # noqa: F401
    MLP,
    Dropout,
    Linear,
    ModuleDict,
    ModuleList,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from .module import Module  # noqa: F401
from .utils import clip_grad_norm_  # noqa: F401


def Parameter(data, requires_grad=True):  # noqa: N802  (PyTorch's spelling)
    """A tensor to train: a leaf that requires grad (a Module finds it as a parameter)."""
    from ..creation import tensor

    return tensor(data, requires_grad=requires_grad) if not hasattr(data, "_data") \
        else data.detach().requires_grad_(requires_grad)
