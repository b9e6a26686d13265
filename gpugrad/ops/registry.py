"""The op interface, the registry, and dispatch: what happens when an op is applied.

An op is declared once (`define`): its shape/dtype inference, its forward kernel written
against an array namespace `xp` (optionally overridden per backend), which values its
backward needs, and its VJP written with gpugrad ops. `apply` is the one path every op
call takes: make tensors of the arguments, check devices, promote dtypes, infer the
output (so bad shapes fail before any kernel runs), run the kernel, and record a graph
node when gradients or a trace need it. It is the hot path of eager mode: it does no
networkx work and as little Python as it can.
"""

import weakref

from .. import dtypes
from ..errors import DeviceError, DTypeError, GpugradError, GraphError
from ..mode import state
from ..node import Node, format_site, user_site
from ..tensor import Tensor

REGISTRY = {}  # qualified name -> OpDef
NO_ATTRS = {}  # shared empty attrs of ops called without any; never mutated


class OpDef:
    """One op: everything the engine needs to run it forward and differentiate it."""

    is_leaf = False

    def __init__(self, name, *, infer, forward, vjp=None, saves=(), save_output=False,
                 promote=None, promote_args=None, kernels=None, differentiable=True,
                 crosses_devices=False, source="built-in", doc=None):
        self.name = name
        namespace, _, short = name.rpartition("::")
        self.display_name = short if namespace == "gpugrad" else name
        self.infer = infer
        self.forward = forward
        self.kernels = dict(kernels or {})
        self.vjp = vjp
        self.saves = tuple(saves)
        self.save_output = save_output
        self.promote = promote
        self.promote_args = promote_args
        self.differentiable = differentiable and vjp is not None
        self.crosses_devices = crosses_devices
        self.source = source
        self.__doc__ = doc

    def kernel_for(self, backend_name):
        """The kernel that runs on a backend: its override, else the generic one."""
        return self.kernels.get(backend_name, self.forward)

    def __call__(self, *inputs, **attrs):
        return apply(self, inputs, attrs or NO_ATTRS)

    def __repr__(self):
        return f"<op {self.name}>"


class LeafOp:
    """The pseudo-op of leaf nodes: tensors that were not computed by a recorded op."""

    is_leaf = True
    differentiable = False
    saves = ()
    save_output = False

    def __init__(self, name):
        self.name = self.display_name = name

    def __repr__(self):
        return f"<leaf {self.name}>"


INPUT = LeafOp("input")


def define(name, **spec):
    """Declare an op and put it in the registry; returns the OpDef (callable on tensors)."""
    if name in REGISTRY:
        raise ValueError(f"op {name!r} is already defined")
    op = REGISTRY[name] = OpDef(name, **spec)
    return op


# --- dispatch ------------------------------------------------------------------------------
def apply(op, args, attrs):
    """Run `op` on `args` (Tensors, or Python numbers/arrays made into tensors) eagerly."""
    for arg in args:
        if arg.__class__ is not Tensor:
            args = _coerce(op, args)
            break
    first = args[0]
    device = first._device
    if not op.crosses_devices:
        for arg in args:
            if arg._device is not device:
                raise _device_error(op, args)
    if op.promote is not None:
        args = _promote(op, args)
    try:
        shape, dtype = op.infer(*args, **attrs)
    except GpugradError as exc:
        raise _annotate(op, exc) from None
    backend = device.backend
    kernel = op.kernels.get(backend.name, op.forward)
    if backend.context is None:
        out = kernel(backend.xp, *[a._data for a in args], **attrs)
    else:
        with backend.context:
            out = kernel(backend.xp, *[a._data for a in args], **attrs)
    if op.crosses_devices:
        device = attrs["device"]
    requires_grad = False
    if op.differentiable and state.grad_enabled and dtype.kind == "f":
        for arg in args:
            if arg._requires_grad:
                requires_grad = True
                break
    result = Tensor._wrap(out, dtype, device, requires_grad)
    if requires_grad or state.tracing:
        _record(op, args, attrs, result, requires_grad)
    return result


def _record(op, args, attrs, result, requires_grad):
    saved = None
    if requires_grad:
        inputs = [None] * len(args)
        for i in op.saves:
            inputs[i] = args[i]
        saved = (inputs, result._data if op.save_output else None)
    result._node = Node(op, tuple([node_of(a) for a in args]), attrs, result._data.shape,
                        result._dtype, result._device, requires_grad, user_site(2), saved)


def node_of(tensor):
    """The node that produced a tensor; a leaf node (made once, kept) for a leaf tensor."""
    node = tensor._node
    if node is None:
        node = tensor._node = Node(INPUT, (), NO_ATTRS, tensor._data.shape, tensor._dtype,
                                   tensor._device, tensor._requires_grad, None,
                                   ref=weakref.ref(tensor))
    return node


def _coerce(op, args):
    """Tensors from an op's arguments: Python numbers take the dtype and device of the
    tensors beside them (like PyTorch's weak scalars); NumPy arrays and lists become
    tensors where they are (a NumPy array lives on the CPU)."""
    tensors = [a for a in args if isinstance(a, Tensor)]
    if tensors:
        device = tensors[0]._device
        group = op.promote_args
        ref = None
        for i, a in enumerate(args):
            if isinstance(a, Tensor) and (group is None or i in group):
                ref = a._dtype if ref is None else dtypes.promote(ref, a._dtype)
    else:
        from ..backends import default_device

        device, ref = default_device(), None
    out = []
    for a in args:
        if isinstance(a, Tensor):
            out.append(a)
        elif isinstance(a, (bool, int, float)):
            if ref is None:
                dt = dtypes.scalar_dtype(a, dtypes.bool_)
            else:
                dt = dtypes.scalar_dtype(a, ref)
            out.append(Tensor._wrap(device.backend.scalar(a, dt), dt, device, False))
        else:
            from ..creation import tensor as make_tensor

            try:
                out.append(make_tensor(a, device=None if _is_host_array(a) else device))
            except (TypeError, ValueError) as exc:
                raise _annotate(op, DTypeError(
                    f"cannot use an argument of type {type(a).__name__} as a tensor "
                    f"({exc})")) from None
    return tuple(out)


def _is_host_array(value):
    return type(value).__module__ == "numpy"


def _promote(op, args):
    """Cast the promoted arguments to the dtype the op computes in."""
    group = op.promote_args
    indices = range(len(args)) if group is None else group
    common = None
    for i in indices:
        dt = args[i]._dtype
        common = dt if common is None else dtypes.promote(common, dt)
    if op.promote == "float":
        common = dtypes.to_float(common)
    for i in indices:
        if args[i]._dtype is not common:
            args = list(args)
            for j in indices:
                if args[j]._dtype is not common:
                    args[j] = cast_tensor(args[j], common)
            return args
    return args


def cast_tensor(t, dtype):
    """`t` as `dtype`, recorded as a cast so gradients flow back through the cast."""
    from .conversion import cast

    return apply(cast, (t,), {"dtype": dtype})


# --- errors ----------------------------------------------------------------------------------
def _annotate(op, exc):
    """The same error, prefixed with the op and suffixed with the user's line."""
    site = format_site(user_site(2))
    return type(exc)(f"{op.display_name}: {exc} (at {site})")


def _device_error(op, args):
    devices = []
    for a in args:
        name = str(a._device)
        if name not in devices:
            devices.append(name)
    shapes = ", ".join(f"{tuple(a._data.shape)} on {a._device}" for a in args)
    return _annotate(op, DeviceError(
        f"tensors on different devices ({' and '.join(devices)}): {shapes}; move one "
        f"explicitly with .to(device) - gpugrad never copies between devices silently"))


# --- the backward interface -------------------------------------------------------------------
class Context:
    """What a VJP rule sees: the saved inputs and output (as Tensors), the attrs, the
    specs (shape, dtype, device) of every input, and which inputs need a gradient."""

    __slots__ = ("inputs", "output", "attrs", "input_specs", "needs_input_grad", "node")

    def __init__(self, node, needs_input_grad):
        saved_inputs, saved_output = node.saved
        self.node = node
        self.inputs = tuple(saved_inputs)
        self.output = None
        if saved_output is not None:
            # A fresh handle on the output, tied to this node so that a create_graph
            # backward differentiates through it; the node keeps only the array.
            self.output = Tensor._wrap(saved_output, node.dtype, node.device, True, node)
        self.attrs = node.attrs
        self.input_specs = node.inputs
        self.needs_input_grad = needs_input_grad


def run_vjp(node, grad, needs_input_grad):
    """The gradients of a node's inputs given the gradient of its output."""
    op = node.op
    grads = op.vjp(Context(node, needs_input_grad), grad)
    if not isinstance(grads, (tuple, list)) or len(grads) != len(node.inputs):
        count = len(grads) if isinstance(grads, (tuple, list)) else "a non-sequence"
        raise GraphError(f"{op.display_name}: the VJP returned {count} gradients for "
                         f"{len(node.inputs)} inputs (op created at {node.where()})")
    return grads
