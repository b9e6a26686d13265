"""An example gpugrad plugin: the swish activation."""

from .ops import swish  # noqa: F401
