"""gpugrad.nn: modules (layers, models), initialisers and, in nn.functional, losses."""

from . import functional, init  # noqa: F401
from .layers import (  # noqa: F401
    GELU,
    MLP,
    BatchNorm1d,
    Dropout,
    Flatten,
    Identity,
    LayerNorm,
    LeakyReLU,
    Linear,
    LogSoftmax,
    ModuleDict,
    ModuleList,
    ReLU,
    Sequential,
    Sigmoid,
    SiLU,
    Softmax,
    Tanh,
)
from .losses import (  # noqa: F401
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
)
from .module import Module, declare_parameter  # noqa: F401
from .utils import clip_grad_norm_  # noqa: F401


def Parameter(data, requires_grad=True):  # noqa: N802  (PyTorch's spelling)
    """A tensor to train: a leaf that requires grad, which a Module holds as a parameter
    (also with requires_grad=False: a frozen parameter, still in parameters())."""
    from ..creation import tensor

    t = tensor(data, requires_grad=requires_grad) if not hasattr(data, "_data") \
        else data.detach().requires_grad_(requires_grad)
    return declare_parameter(t)
