"""Every op, one definition each, and the registry that holds them.

Each module declares its ops with `registry.define`; importing this package registers
them all. `REGISTRY` maps qualified names ("gpugrad::add") to their OpDefs.
"""

from . import conversion, elementwise, linalg, loss, reduction, shape  # noqa: F401
from .custom import CompositeOp, CustomOp, composite_op, custom_op  # noqa: F401
from .plugins import get, load_plugins  # noqa: F401
from .registry import REGISTRY, Context, OpDef, apply, define, register  # noqa: F401
