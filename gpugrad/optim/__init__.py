"""gpugrad.optim: SGD, Adam, AdamW, learning-rate schedules, gradient clipping."""

from ..nn.utils import clip_grad_norm_  # noqa: F401
from . import lr_scheduler  # noqa: F401
from .optimizer import SGD, Adam, AdamW, Optimizer  # noqa: F401
