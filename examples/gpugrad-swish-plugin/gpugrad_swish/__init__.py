"""An example gpugrad plugin: the swish activation."""

from .ops import polar, swish  # noqa: F401
