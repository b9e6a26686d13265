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
from ..errors import DeviceError, DTypeError, GpugradError, GraphError, retyped
from ..mode import state
from ..node import Node, format_site, user_site
from ..tensor import Tensor
from .infer import comparison

REGISTRY = {}  # qualified name -> OpDef
NO_ATTRS = {}  # shared empty attrs of ops called without any; never mutated


class OpDef:
    """One op: everything the engine needs to run it forward and differentiate it."""

    is_leaf = False
    # plan_check(xp, *arrays, **attrs): a check of its inputs' values that eager mode makes
    # on the host before the op (class indices in range, say), for compiled plans on
    # NumPy to make on every run (on a GPU it would wait for the device each time).
    plan_check = None

    def __init__(self, name, *, infer, forward, vjp=None, saves=(), save_output=False,
                 promote=None, promote_args=None, kernels=None, differentiable=True,
                 crosses_devices=False, source="built-in", doc=None, check_output=None,
                 out_kernel=None, ufunc=None, returns_view=False, plan_kernel=None):
        self.name = name
        namespace, _, short = name.rpartition("::")
        self.display_name = short if namespace == "gpugrad" else name
        self.infer = infer
        self.forward = forward
        self.kernels = dict(kernels or {})
        self.vjp = vjp
        # `saves`: the inputs the VJP reads — a tuple of indices, or a dict saying which
        # inputs the gradient of each input needs ({0: (1,), 1: (0,)} for mul), so that
        # only what the inputs requiring grad will need is kept alive.
        if saves == "all":  # every input, whatever their number (custom ops)
            saves = range(256)
        if isinstance(saves, dict):
            self.saves_for = {i: tuple(needed) for i, needed in saves.items()}
            self.saves = frozenset(i for needed in saves.values() for i in needed)
        else:
            self.saves_for = None
            # A set: dispatch asks `i in saves` per input, and "all"-like ranges are long.
            self.saves = frozenset(saves)
        self.save_output = save_output
        self.promote = promote
        self.promote_args = promote_args
        self.differentiable = differentiable and vjp is not None
        self.crosses_devices = crosses_devices
        # check_output(op, backend, out, shape, dtype) -> (shape, dtype): a hook for ops
        # whose kernels are not ours (custom ops), to check what a kernel returned.
        self.check_output = check_output
        # out_kernel(xp, *arrays, out): the forward written into a given array, for ops
        # that are one elementwise ufunc call (so `out` may be any input of the output's
        # shape and dtype); compiled plans use it to reuse buffers.
        self.out_kernel = out_kernel
        # ufunc: the name of the one ufunc the op is in NumPy and CuPy ("add"): its
        # out_kernel, and what a compiled plan on NumPy calls itself (the partial and
        # the lambda between cost a quarter of a microsecond per call).
        self.ufunc = ufunc
        if ufunc is not None and out_kernel is None:
            self.out_kernel = _ufunc_into(ufunc)
        # returns_view: the output may share its first input's array (reshape,
        # transpose, indexing): an in-place change of that input changes it too, so the
        # output's Tensor keeps the input as its _base (see Tensor._version).
        self.returns_view = returns_view
        # plan_kernel(backend_name, attrs): the kernel of the arrays alone, its attributes
        # bound in a closure, for compiled plans (or None: the generic partial over xp and
        # the attributes, which costs a reduction on a small array a third more).
        self.plan_kernel = plan_kernel
        self.source = source
        self.__doc__ = doc

    def kernel_for(self, backend_name):
        """The kernel that runs on a backend: its override, else the generic one."""
        return self.kernels.get(backend_name, self.forward)

    def __call__(self, *inputs, **attrs):
        return apply(self, inputs, attrs or NO_ATTRS)

    def __repr__(self):
        return f"<op {self.name}>"


def _ufunc_into(name):
    """out_kernel(xp, *arrays, out) of an op that is the ufunc `name` of its namespace."""
    def out_kernel(xp, *arrays_then_out):
        return getattr(xp, name)(*arrays_then_out[:-1], out=arrays_then_out[-1])

    out_kernel.__name__ = f"{name}_into"
    return out_kernel


class LeafOp:
    """The pseudo-op of leaf nodes: tensors that were not computed by a recorded op."""

    is_leaf = True
    differentiable = False
    saves = ()
    saves_for = None
    save_output = False

    def __init__(self, name):
        self.name = self.display_name = name

    def __repr__(self):
        return f"<leaf {self.name}>"


INPUT = LeafOp("input")  # a tensor the user made
CONSTANT = LeafOp("constant")  # a Python number in an expression


def plan_only(name):
    """The shape rule of an op that only gg.compile's passes make (its nodes come with
    their shapes): called on tensors, it says so."""
    def infer(*specs, **attrs):
        raise GpugradError(f"{name} exists only inside compiled plans (gg.compile)")

    return infer


def define(name, replace=False, **spec):
    """Declare an op and put it in the registry; returns the OpDef (callable on tensors)."""
    return register(OpDef(name, **spec), replace=replace)


def register(op, replace=False):
    """Put an OpDef into the registry under its name."""
    if op.name in REGISTRY and not replace:
        raise ValueError(f"op {op.name!r} is already defined (pass replace=True to "
                         "redefine it)")
    REGISTRY[op.name] = op
    return op


# --- dispatch ------------------------------------------------------------------------------
def apply(op, args, attrs):
    """Run `op` on `args` (Tensors, or Python numbers/arrays made into tensors) eagerly."""
    # One pass over the arguments checks what every op needs: all tensors, one device,
    # one dtype (else promote), and whether any requires grad.
    device = dtype = None
    mixed = grad_in = False
    for arg in args:
        if arg.__class__ is not Tensor:
            try:
                args = _coerce(op, args)
            except OverflowError as exc:  # e.g. uint8 tensor + 300
                wider = _widened_for_comparison(op, args)
                if wider is None:
                    raise _annotate(op, DTypeError(str(exc))) from None
                args = wider
            return apply(op, args, attrs)
        if device is None:
            device, dtype = arg._device, arg._dtype
        else:
            if arg._device is not device and not op.crosses_devices:
                raise _device_error(op, args)
            if arg._dtype is not dtype:
                mixed = True
        if arg._requires_grad:
            grad_in = True
    promote = op.promote
    if promote is not None and (mixed or (promote != "common" and dtype.kind != "f")):
        args = _promote(op, args)
    try:
        shape, dtype = op.infer(*args, **attrs)
    except GpugradError as exc:
        raise _annotate(op, exc) from None
    backend = device._backend or device.backend
    kernel = op.kernels.get(backend.name, op.forward)  # op.kernel_for, inlined: hot path
    try:
        if backend.context is not None:
            with backend.context:
                out = kernel(backend.xp, *[a._data for a in args], **attrs)
        elif len(args) == 2:
            out = kernel(backend.xp, args[0]._data, args[1]._data, **attrs)
        elif len(args) == 1:
            out = kernel(backend.xp, args[0]._data, **attrs)
        else:
            out = kernel(backend.xp, *[a._data for a in args], **attrs)
    except Exception as exc:  # e.g. an index out of bounds, found only by the kernel
        raise _kernel_error(op, args, exc) from exc
    if op.check_output is not None:
        try:
            shape, dtype = op.check_output(op, backend, out, shape, dtype)
        except GpugradError as exc:
            raise _annotate(op, exc) from None
    if op.crosses_devices:
        device = attrs["device"]
    requires_grad = (grad_in and op.differentiable and dtype.kind == "f"
                     and state.grad_enabled)
    result = _new(Tensor)
    result._data = out
    result._dtype = dtype
    result._device = device
    result._requires_grad = requires_grad
    result._node = result._grad = None
    result._version = 0
    result._base = args[0] if op.returns_view else None
    if state.special:
        _watch(op, args, attrs, result, requires_grad, backend)
    elif requires_grad:
        _record(op, args, attrs, result, requires_grad)
    else:
        result._made_by = op  # made with nothing recorded: t.graph says so, not "input"
    return result


def _watch(op, args, attrs, result, requires_grad, backend):
    """Dispatch's slower path, under tracing, anomaly detection or profiling."""
    if state.anomaly:
        check_finite(op, result._data, backend.xp, "output",
                     [(a._data.shape, a._dtype) for a in args], format_site(user_site(2)))
    # Under a profile every op is recorded: its time and bytes go onto the graph of
    # what it made, also where no gradient flows (an evaluation).
    if requires_grad or state.tracing or state.profiler is not None:
        _record(op, args, attrs, result, requires_grad)
        if state.capture is not None:
            state.capture.note_leaves(args)
            state.capture.note_output(result)
    else:
        result._made_by = op  # (as in apply)
    if state.profiler is not None:
        state.profiler.forward(op, result, args)


class AnomalyError(GpugradError, FloatingPointError):
    """A NaN or Inf appeared, under gg.detect_anomaly()."""


def check_finite(op, array, xp, what, inputs, site):
    """Under anomaly detection: raise if `array` holds a NaN or an Inf."""
    if getattr(array, "dtype", None) is None or not xp.isdtype(array.dtype, "real floating"):
        return
    nans, infs = int(xp.sum(xp.isnan(array))), int(xp.sum(xp.isinf(array)))
    if nans or infs:
        shapes = ", ".join(f"{tuple(shape)} {dtype}" for shape, dtype in inputs)
        raise AnomalyError(f"{op.display_name}: its {what} has {nans} NaN and {infs} Inf "
                           f"value(s) (inputs {shapes}; op created at {site})")


_new = object.__new__


def _record(op, args, attrs, result, requires_grad):
    saved = saved_output = None
    if requires_grad:
        saves = op.saves
        if op.saves_for is not None:
            needed = [op.saves_for[i] for i, a in enumerate(args) if a._requires_grad]
            if len(needed) == 1:  # the common case: one input requires grad
                saves = needed[0]
            elif len(needed) < len(args):
                saves = {i for need in needed for i in need}
        if not saves:
            saved = (None,) * len(args)
        elif len(saves) == len(args):
            saved = args
        else:
            saved = tuple([a if i in saves else None for i, a in enumerate(args)])
        if op.save_output:
            saved_output = result._data
    if len(args) == 2:  # most ops: spare the list
        a, b = args
        inputs = (a._node or node_of(a), b._node or node_of(b))
    else:
        inputs = tuple([a._node or node_of(a) for a in args])
    result._node = Node(op, inputs, attrs,
                        result._data.shape, result._dtype, result._device, requires_grad,
                        user_site(2), saved, saved_output)


def node_of(tensor):
    """The node that produced a tensor; a leaf node (made once, kept) for a leaf tensor."""
    node = tensor._node
    if node is None:
        # Only a leaf that requires grad needs a way back to its tensor (for .grad).
        ref = weakref.ref(tensor) if tensor._requires_grad else None
        node = tensor._node = Node(INPUT, (), NO_ATTRS, tensor._data.shape, tensor._dtype,
                                   tensor._device, tensor._requires_grad, None, ref=ref)
    return node


_NUMBERS = (float, int, bool)


_constants = {}


def constant(value, dtype, device):
    """A Python number as a 0-d constant tensor, with its leaf node. Cached: `x * 2.0`
    then costs no allocation and no host-to-device copy after the first time."""
    # 0.0 == -0.0 (and == 0 == False): zeros are told apart by their text.
    key = (value.__class__, value if value else repr(value), dtype, device)
    t = _constants.get(key)
    if t is None:
        backend = device._backend or device.backend
        t = Tensor._wrap(backend.full((), value, dtype), dtype, device, False)
        t._node = Node(CONSTANT, (), {"value": value}, (), dtype, device, False, None)
        if len(_constants) < 4096 and value == value:  # NaN never hits a cache
            _constants[key] = t
    return t


def _widened_for_comparison(op, args):
    """A comparison of a small integer tensor with a Python int its dtype cannot hold
    (uint8 < -1, int8 == 300) has an answer, NumPy's: the tensor's values compared as
    int64. The arguments so (None for another op, or where that does not help)."""
    if op.infer is not comparison:
        return None
    wider = tuple(a.astype(dtypes.int64) if isinstance(a, Tensor) and a._dtype.kind in "iu"
                  and a._dtype.itemsize < 8 else a for a in args)
    return None if all(w is a for w, a in zip(wider, args, strict=True)) else wider


def _coerce(op, args):
    """Tensors from an op's arguments: Python numbers take the dtype and device of the
    tensors beside them (like PyTorch's weak scalars); NumPy arrays and lists become
    tensors where they are (a NumPy array lives on the CPU)."""
    if len(args) == 2 and op.promote_args is None:  # x * 2.0, 1 - x: the common cases
        a, b = args
        if a.__class__ is Tensor and b.__class__ in _NUMBERS:
            return a, _scalar(b, a._dtype, a._device)
        if b.__class__ is Tensor and a.__class__ in _NUMBERS:
            return _scalar(a, b._dtype, b._device), b
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
        elif isinstance(a, tuple):
            raise _annotate(op, DTypeError(
                f"got the tuple {a!r} where a tensor goes; pass shapes and axes by keyword"))
        elif _is_host_array(a) and a.ndim == 0:  # a NumPy scalar is a Python number here
            out.append(_scalar(a.item(), ref, device))
        elif isinstance(a, (bool, int, float)):
            out.append(_scalar(a, ref, device))
        else:
            from ..creation import tensor as make_tensor

            try:
                out.append(make_tensor(a, device=None if _is_host_array(a) else device))
            except (TypeError, ValueError) as exc:
                raise _annotate(op, DTypeError(
                    f"cannot use an argument of type {type(a).__name__} as a tensor "
                    f"({exc})")) from None
    return tuple(out)


def _scalar(value, ref, device):
    """A Python number as a constant of the dtype it takes beside dtype `ref` (None:
    its own: float32, int64 or bool)."""
    return constant(value, dtypes.scalar_dtype(value, ref or dtypes.bool_), device)


def _is_host_array(value):
    return type(value).__module__ == "numpy"


def _promote(op, args):
    """Cast the promoted arguments to the dtype the op computes in."""
    group = op.promote_args
    indices = range(len(args)) if group is None else group
    common = _common_dtype([args[i] for i in indices])
    if op.promote == "float":
        common = dtypes.to_float(common)
    elif op.promote == "accumulate" and common.kind in "biu":
        common = dtypes.int64  # integer sums widen, as in NumPy and PyTorch
    args = list(args)
    for i in indices:
        if args[i]._dtype is not common:
            args[i] = cast_tensor(args[i], common)
    return args


def _common_dtype(tensors):
    """The dtype tensors of several dtypes meet in, by PyTorch's rule: the tensors with
    dimensions decide, unless a 0-d one is of a higher kind (bool < integer < float), and
    then the 0-d ones decide. So float32[3] * float64[] is float32 (a 0-d tensor is
    weak, as a Python number is), and int64[3] * float64[] is float64."""
    shaped = zero_d = None
    for t in tensors:
        dt = t._dtype
        if len(t._data.shape):
            shaped = dt if shaped is None else dtypes.promote(shaped, dt)
        else:
            zero_d = dt if zero_d is None else dtypes.promote(zero_d, dt)
    if shaped is None:
        return zero_d
    if zero_d is None or _KIND_RANK[zero_d.kind] <= _KIND_RANK[shaped.kind]:
        return shaped
    return zero_d


_KIND_RANK = {"b": 0, "u": 1, "i": 1, "f": 2}


def cast_tensor(t, dtype):
    """`t` as `dtype`, recorded as a cast so gradients flow back through the cast."""
    from .conversion import cast

    return apply(cast, (t,), {"dtype": dtype})


# --- errors ----------------------------------------------------------------------------------
def _annotate(op, exc):
    """The same error, prefixed with the op and suffixed with the user's line. `op` is an
    OpDef, or the name of a public function made of ops ("softmax", "cross_entropy"),
    whose errors must name it rather than an op inside it."""
    name = op if isinstance(op, str) else op.display_name
    site = format_site(user_site(2))
    return type(exc)(f"{name}: {exc} (at {site})")


def _kernel_error(op, args, exc):
    """The kernel's own error, retyped (errors.retyped), naming the op, the input
    shapes and the user's line."""
    shapes = ", ".join(f"{tuple(a._data.shape)} {a._dtype}" for a in args)
    return retyped(exc, f"{op.display_name}: {exc} (inputs {shapes}; at "
                        f"{format_site(user_site(2))})")


def _device_error(op, args):
    args = [a for a in args if isinstance(a, Tensor)]  # (a Python number has none yet)
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
def _modified_error(node):
    return GraphError(
        f"{node.op.display_name}: a tensor it saved for the backward pass was changed in "
        f"place after the op ran (op created at {node.where()}), so the gradient would "
        "use the new values; compute the forward again after changing it (e.g. call "
        "backward() before optimizer.step())")


class Context:
    """What a VJP rule sees: the saved inputs and output (as Tensors), the attrs, the
    specs (shape, dtype, device) of every input, and which inputs need a gradient."""

    __slots__ = ("inputs", "output", "attrs", "input_specs", "needs_input_grad", "node")

    def __init__(self, node, needs_input_grad):
        saved_output = node.saved_output
        self.node = node
        self.inputs = node.saved
        self.output = None
        if saved_output.__class__ is tuple:  # an op with several outputs: all of them
            self.output = tuple(Tensor._wrap(array, sib.dtype, sib.device, True, sib)
                                for array, sib in zip(saved_output, node.meta["siblings"],
                                                      strict=True))
        elif saved_output is not None:
            # A fresh handle on the output, tied to this node so that a create_graph
            # backward differentiates through it; the node keeps only the array.
            self.output = Tensor._wrap(saved_output, node.dtype, node.device, True, node)
        self.attrs = node.attrs
        self.input_specs = node.inputs
        self.needs_input_grad = needs_input_grad


def run_vjp(node, grad, needs_input_grad):
    """The gradients of a node's inputs given the gradient of its output."""
    op = node.op
    if node.saved is not None:
        for t in node.saved:
            while t is not None:  # the tensor, and the tensors it is a view of
                if t._version > node.seq:
                    raise _modified_error(node)
                t = t._base
    grads = op.vjp(Context(node, needs_input_grad), grad)
    if not isinstance(grads, (tuple, list)):  # e.g. one Tensor, for an op of one input
        raise GraphError(f"{op.display_name}: the VJP returned a {type(grads).__name__}, "
                         f"not a tuple of gradients, one per input ({len(node.inputs)} "
                         f"here; (grad,) for one) (op created at {node.where()})")
    if len(grads) != len(node.inputs):
        raise GraphError(f"{op.display_name}: the VJP returned {len(grads)} gradients for "
                         f"{len(node.inputs)} inputs (op created at {node.where()})")
    return grads
