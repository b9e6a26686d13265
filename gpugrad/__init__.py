"""gpugrad: a GPU-accelerated graph executor for reverse-mode automatic differentiation.

    import gpugrad as gg
    x = gg.tensor([[1.0, 2.0]], requires_grad=True)
    y = (x * x).sum()
    y.backward()          # x.grad == 2 * x
    y.graph.nx            # the networkx DiGraph of what ran
"""

__version__ = "0.1.0"

from . import cuda, data, dtypes, metrics, nn, optim, testing, viz  # noqa: F401
from .backends import Device, default_device, set_default_device  # noqa: F401
from .backends import device as device
from .checkpoint import load, save  # noqa: F401
from .compiler import CompileError, CompileWarning, compile  # noqa: F401
from .creation import (  # noqa: F401
    arange,
    eye,
    full,
    full_like,
    linspace,
    manual_seed,
    ones,
    ones_like,
    rand,
    randint,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from .errors import (  # noqa: F401
    DeviceError,
    DTypeError,
    GpugradError,
    GradcheckError,
    GraphError,
    OutOfBoundsError,
    ShapeError,
    StateDictError,
)
from .functions import (  # noqa: F401
    abs,
    all,
    any,
    argmax,
    argmin,
    broadcast_to,
    cat,
    clamp,
    clip,
    concat,
    concatenate,
    erf,
    exp,
    log,
    logaddexp,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    relu,
    reshape,
    sigmoid,
    sqrt,
    stack,
    std,
    sum,
    tanh,
    transpose,
    var,
    where,
)
from .gradcheck import gradcheck  # noqa: F401
from .graph import Graph  # noqa: F401
from .info import info  # noqa: F401
from .mode import (  # noqa: F401
    detect_anomaly,
    enable_grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from .ops.custom import composite_op, custom_op  # noqa: F401
from .ops.registry import AnomalyError  # noqa: F401
from .scheduler import grad  # noqa: F401
from .spec import Spec, array_namespace  # noqa: F401
from .tensor import Tensor  # noqa: F401
from .tracing import trace  # noqa: F401
from .viz.profile import profile  # noqa: F401

float16, float32, float64 = dtypes.float16, dtypes.float32, dtypes.float64
int32, int64, bool_ = dtypes.int32, dtypes.int64, dtypes.bool_
