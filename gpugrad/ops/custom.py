"""Users' ops: @gg.custom_op("mylib::swish") on a forward written against the array
namespace, with optional, checked registrations — the shape rule, per-device kernels,
the VJP. A custom op is an OpDef in the same registry as the built-in ops, and runs
through the same dispatch: it records a node, moves between no devices by itself, and
differentiates through its VJP (written with gpugrad ops, so higher orders work).
"""

import inspect
import operator
import re
import threading

from ..dtypes import SUPPORTED, as_dtype
from ..errors import DeviceError, DTypeError, GpugradError, GraphError, ShapeError, retyped
from ..mode import state
from ..node import format_site, user_site
from ..spec import Spec
from ..tensor import Tensor
from .registry import REGISTRY, OpDef, apply, register

_stash = threading.local()  # residuals of a defvjp forward, on their way to the node
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*::[A-Za-z_][A-Za-z0-9_.]*$")
_DEVICE_BACKENDS = {"cpu": "numpy", "cuda": "cupy", "array_api_strict": "array_api_strict"}
_ARRAY_MODULES = {"numpy": "numpy", "cupy": "cupy", "array_api_strict": "array_api_strict"}


def _check_name(name, replace):
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"custom op names are 'namespace::name' (e.g. 'mylib::swish'), "
                         f"got {name!r}")
    if name.startswith("gpugrad::"):
        raise ValueError(f"{name!r}: the 'gpugrad::' namespace is reserved for built-in "
                         "ops; use your library's name")
    if name in REGISTRY and not replace:
        raise ValueError(f"op {name!r} is already registered (by "
                         f"{REGISTRY[name].source}); pass replace=True to redefine it")


def _refused_in_compile(op):
    from ..compiler.capture import CompileError

    return CompileError(
        f"{op.name}: a defvjp op's residuals are arrays of the traced call, which a "
        f"compiled plan cannot compute anew (at {format_site(user_site(3))}); register "
        "its VJP with register_vjp to use it inside gg.compile")


class CustomOp(OpDef):
    """An op defined outside gpugrad. Call it on tensors; register its parts with the
    decorators below (each may be given at most once, or again to replace it)."""

    def __init__(self, name, forward, differentiable=True, source="custom", outputs=1,
                 nondifferentiable_outputs=()):
        self._user_forward = forward
        self._shape_fn = None
        self._wants_grad = differentiable
        self.num_outputs = int(outputs)
        self.nondifferentiable_outputs = frozenset(nondifferentiable_outputs)
        self._user_vjp = None
        self._residual_fwd = None
        super().__init__(name, infer=self._infer, forward=self._run_forward,
                         vjp=self._missing_vjp if differentiable else None,
                         saves="all", save_output=True, check_output=_check_output,
                         source=source)
        self.__doc__ = forward.__doc__
        self.__name__ = getattr(forward, "__name__", name)
        # Keyword defaults of the forward become attributes of every call, so the node
        # and the VJP (ctx.attrs) see the values the forward ran with.
        self._defaults = {k: p.default for k, p in inspect.signature(forward).parameters.items()
                          if p.kind is p.KEYWORD_ONLY and p.default is not p.empty}

    def __call__(self, *inputs, **attrs):
        attrs = {**self._defaults, **attrs} if self._defaults else attrs
        if getattr(_stash, "in_fwd", None) is self:
            # The op called by its own defvjp fwd, on backend arrays (JAX's idiom,
            # fwd = lambda x: (f(x), residuals)): the forward itself, not a new node.
            return self._user_forward(*inputs, **attrs)
        _check_call(self, inputs, attrs)
        if self.num_outputs > 1:
            return apply_multi(self, inputs, attrs)
        if self._residual_fwd is None:
            return apply(self, inputs, attrs)
        _stash.residuals = None
        result = apply(self, inputs, attrs)
        node = result._node
        if node is not None and node.saved is not None and state.capture is not None:
            raise _refused_in_compile(self)
        if node is not None and node.saved is not None:
            # The residuals ride along with the saved inputs: freed with them once the
            # backward has used them.
            node.saved = tuple(node.saved) + _residual_tensors(self, _stash.residuals,
                                                               result.device)
        _stash.residuals = None
        return result

    def defvjp(self, fwd, bwd):
        """JAX-style: fwd(*arrays, **attrs) -> (output, residuals), residuals a tuple of
        arrays computed once in the forward; bwd(residuals, grad) -> one gradient per
        input, written with gpugrad ops on the residuals (Tensors). Gradients of higher
        order flow through `grad` only: use register_vjp for full higher orders."""
        if self.num_outputs > 1:
            raise GraphError(f"{self.name}: defvjp is for ops with one output")

        def forward(*arrays, **attrs):
            outer, _stash.in_fwd = getattr(_stash, "in_fwd", None), self
            try:
                out, residuals = fwd(*arrays, **attrs)
            finally:
                _stash.in_fwd = outer
            if not isinstance(residuals, (tuple, list)):
                # tuple() of one array would make its rows the residuals, silently
                raise TypeError("defvjp's fwd must return (output, residuals), residuals "
                                "a tuple of arrays (one array: (array,)); got residuals "
                                f"of type {type(residuals).__name__}")
            _stash.residuals = tuple(residuals)
            return out

        def vjp(ctx, grad):
            count = len(ctx.input_specs)
            return tuple(bwd(ctx.inputs[count:], grad))

        self._residual_fwd = fwd
        self.forward = lambda xp, *arrays, **attrs: forward(*arrays, **attrs)
        self.vjp = vjp
        return self

    # --- the parts a user registers ---------------------------------------------------
    def register_vjp(self, fn):
        """fn(ctx, grad) -> one gradient (a Tensor or None) per tensor input, written
        with gpugrad ops; ctx.inputs, ctx.output (Tensors), ctx.attrs (dict)."""
        if not self._wants_grad:
            raise GraphError(f"{self.name} was declared differentiable=False")
        self._user_vjp = _named_errors(self, "VJP", fn)
        self.vjp = self._user_vjp if self.num_outputs == 1 else self._vjp_of_one_output
        return fn

    def _vjp_of_one_output(self, ctx, grad):
        # Each output has its node; the user's VJP takes the gradients of all outputs,
        # so an output's node passes its own and zeros for the others (VJPs are linear:
        # the engine's sum over the outputs' nodes is the whole VJP).
        from ..creation import zeros_like

        index = ctx.node.meta["output_index"]
        grads = tuple(grad if i == index else zeros_like(out)
                      for i, out in enumerate(ctx.output))
        return self._user_vjp(ctx, grads)

    def register_shape(self, fn):
        """fn(*specs, **attrs) -> gg.Spec of the output (specs: shape, dtype, device),
        so the output is known without running a kernel; checked against every kernel."""
        self._shape_fn = fn
        return fn

    def register_kernel(self, device):
        """A kernel for one device type ("cuda", "cpu"), used there instead of the generic
        forward; it gets and returns that device's arrays."""
        backend = _DEVICE_BACKENDS.get(device.split(":")[0] if isinstance(device, str)
                                       else None)
        if backend is None:
            raise ValueError(f"{self.name}: kernels are registered for 'cpu' or 'cuda', "
                             f"got {device!r}")

        def decorator(fn):
            self.kernels[backend] = lambda xp, *arrays, **attrs: fn(*arrays, **attrs)
            return fn

        return decorator

    # --- what the engine calls --------------------------------------------------------------
    def _run_forward(self, xp, *arrays, **attrs):
        return self._user_forward(*arrays, **attrs)

    def _infer(self, *inputs, **attrs):
        if self._shape_fn is None:
            return None, None  # known once the kernel ran (see _check_output)
        return _shape_and_dtype(self._specs(inputs, attrs))

    def infer_outputs(self, *inputs, **attrs):
        """[(shape, dtype)] per output, or None without a shape function."""
        if self._shape_fn is None:
            return None
        specs = self._specs(inputs, attrs)
        if not isinstance(specs, (tuple, list)) or len(specs) != self.num_outputs:
            raise ShapeError(f"the shape function must return {self.num_outputs} gg.Specs, "
                             f"one per output; got {specs!r}")
        return [_shape_and_dtype(s) for s in specs]

    def _specs(self, inputs, attrs):
        """The shape function's answer; its own errors (a wrong attribute, a bug in it)
        name the op and the user's line, as the kernel's do."""
        try:
            return self._shape_fn(*[Spec(t.shape, t.dtype, t.device) for t in inputs],
                                  **attrs)
        except GpugradError:
            raise
        except Exception as exc:
            raise retyped(exc, f"{self.name}: its shape function raised "
                                f"{type(exc).__name__}: {exc} (at "
                                f"{format_site(user_site(2))})") from exc

    def _missing_vjp(self, ctx, grad):
        raise GraphError(f"{self.name} has no VJP, so gradients cannot flow through it "
                         f"(op created at {ctx.node.where()}); register one with "
                         f"@{self.__name__}.register_vjp, or declare the op with "
                         "differentiable=False")


_modules = {}


def _module_of(cls):
    """The top-level package an array class comes from (cached: asked per call)."""
    found = _modules.get(cls)
    if found is None:
        found = _modules[cls] = cls.__module__.split(".")[0]
    return found


def _shape_and_dtype(spec):
    try:
        shape, dtype = spec.shape, spec.dtype
    except AttributeError:
        raise ShapeError(f"the shape function returned {spec!r}, not a gg.Spec") from None
    if dtype is None:
        raise DTypeError(f"the shape function's {spec!r} has no dtype")
    # as_dtype also for names: "float32" in SUPPORTED holds (NumPy compares a dtype
    # equal to its name), and a str kept as the dtype broke every later op.
    return tuple(shape), as_dtype(dtype)


def _residual_tensors(op, residuals, device):
    """A defvjp forward's residuals as tensors for its bwd, which computes with them by
    gpugrad ops: each must be an array of the output's device, of a dtype gpugrad has
    (checked as a kernel's output is, here rather than as a puzzle in the backward)."""
    from .registry import _annotate

    backend = device._backend or device.backend
    tensors = []
    for i, r in enumerate(residuals):
        try:
            _, dtype = _check_output(op, backend, r, None, None,
                                     what=f"defvjp's fwd returned, as residual {i},")
        except GpugradError as exc:
            raise _annotate(op, exc) from None
        tensors.append(Tensor._wrap(r, dtype, device, False))
    return tuple(tensors)


def _check_call(op, inputs, attrs):
    """A custom op takes tensors positionally and static values as keywords."""
    if not inputs:
        raise TypeError(f"{op.name} takes at least one tensor (its device is the op's); "
                        "got none")
    for key, value in attrs.items():
        if isinstance(value, Tensor):
            raise TypeError(f"{op.name}: attribute {key}= is a Tensor; attributes are "
                            "static values (numbers, strings, tuples): pass tensors "
                            "positionally, as inputs")


def _named_errors(op, what, fn):
    """fn, whose errors (other than gpugrad's own) also name the op and its line."""
    def run(ctx, grad):
        try:
            return fn(ctx, grad)
        except GpugradError:
            raise
        except Exception as exc:
            raise retyped(exc, f"{op.name}: its {what} raised {type(exc).__name__}: "
                                f"{exc} (op created at {ctx.node.where()})") from exc

    return run


def apply_multi(op, args, attrs):
    """Dispatch for ops with several outputs: one node per output (sharing inputs and
    the one kernel call), each output a Tensor of its own."""
    from ..mode import state
    from ..node import Node, user_site
    from ..tensor import Tensor
    from .registry import _annotate, _coerce, _device_error, _kernel_error, node_of

    if any(a.__class__ is not Tensor for a in args):
        args = _coerce(op, tuple(args))
    device = args[0]._device
    if any(a._device is not device for a in args):
        raise _device_error(op, args)
    try:
        specs = op.infer_outputs(*args, **attrs)
    except GpugradError as exc:
        raise _annotate(op, exc) from None
    backend = device._backend or device.backend
    kernel = op.kernel_for(backend.name)
    try:
        outs = kernel(backend.xp, *[a._data for a in args], **attrs)
    except Exception as exc:
        raise _kernel_error(op, args, exc) from exc
    if not isinstance(outs, (tuple, list)) or len(outs) != op.num_outputs:
        raise _annotate(op, ShapeError(f"the kernel must return {op.num_outputs} arrays, "
                                       f"got {type(outs).__name__}"))
    checked = []
    for i, out in enumerate(outs):
        try:
            checked.append(_check_output(op, backend, out, *(specs[i] if specs else
                                                             (None, None))))
        except GpugradError as exc:
            raise _annotate(op, type(exc)(f"output {i}: {exc}")) from None
    grad_in = op.differentiable and state.grad_enabled and any(a._requires_grad for a in args)
    results = tuple(
        Tensor._wrap(out, dtype, device, grad_in and dtype.kind == "f"
                     and i not in op.nondifferentiable_outputs)
        for i, (out, (_, dtype)) in enumerate(zip(outs, checked, strict=True)))
    if state.tracing or state.profiler is not None or any(r._requires_grad for r in results):
        inputs = tuple(a._node or node_of(a) for a in args)
        site, siblings, outs = user_site(2), [], tuple(outs)
        for i, r in enumerate(results):
            node = Node(op, inputs, attrs, r._data.shape, r._dtype, device, r._requires_grad,
                        site, saved=args if r._requires_grad else None,
                        saved_output=outs if r._requires_grad else None)
            node.meta = {"output_index": i, "siblings": siblings}
            siblings.append(node)
            r._node = node
        if state.capture is not None:
            state.capture.note_leaves(args)
    if state.special:
        _watch_outputs(op, args, results, backend)
    return results


def _watch_outputs(op, args, results, backend):
    """What dispatch's watch hook does for one output, for each: the anomaly check, and
    the profiler's record (the one kernel's time goes to the first output's node)."""
    from .registry import check_finite

    if state.anomaly:
        inputs = [(a._data.shape, a._dtype) for a in args]
        site = format_site(user_site(3))
        for i, r in enumerate(results):
            check_finite(op, r._data, backend.xp, f"output {i}", inputs, site)
    if state.profiler is not None:
        for r in results:
            state.profiler.forward(op, r, args)


def _check_output(op, backend, out, shape, dtype, what="the kernel returned"):
    """The kernel's output must be an array of this device, with the promised shape and
    dtype (when a shape function promised one). `what` says where the array came from."""
    module = _module_of(out.__class__)
    if module != _ARRAY_MODULES.get(backend.name) or not hasattr(out, "shape"):
        raise DeviceError(f"{what} a {type(out).__module__}.{type(out).__name__}, not an "
                          f"array of {backend.device} ({backend.name}); a kernel returns "
                          "arrays where its inputs are")
    real_dtype = backend.dtype_of(out)
    if shape is None:
        if real_dtype not in SUPPORTED:
            raise DTypeError(f"{what} dtype {real_dtype}, which gpugrad does not support "
                             f"({', '.join(d.name for d in SUPPORTED)})")
        return tuple(out.shape), real_dtype
    if out.shape != shape:
        raise ShapeError(f"the kernel returned shape {tuple(out.shape)} but the shape "
                         f"function says {tuple(shape)}")
    if real_dtype != dtype:
        raise DTypeError(f"the kernel returned dtype {real_dtype} but the shape function "
                         f"says {dtype}")
    return shape, dtype


def custom_op(name, *, differentiable=True, replace=False, outputs=1,
              nondifferentiable_outputs=()):
    """Make a function of arrays into a gpugrad op named `name` ("mylib::swish").

    The function gets the inputs' arrays (positional: tensors) and static attributes
    (keywords), and returns an array on the same device — write it against
    gg.array_namespace(x) and it runs on every backend. The result is callable on
    tensors, records a node named `name`, and differentiates once a VJP is registered.
    With outputs=k the function returns k arrays, the op k Tensors, and the VJP gets a
    tuple of k gradients (zeros for outputs that got none); nondifferentiable_outputs
    lists the indices of outputs gradients never flow through (e.g. integer indices).
    """
    _check_name(name, replace)
    nondifferentiable_outputs = _check_outputs(name, outputs, nondifferentiable_outputs)

    def decorator(fn):
        return register(CustomOp(name, fn, differentiable=differentiable, outputs=outputs,
                                 nondifferentiable_outputs=nondifferentiable_outputs),
                        replace=True)

    return decorator


def _check_outputs(name, outputs, nondifferentiable):
    """outputs: a count >= 1 (1.5 was cut to 1, 0 made a one-output op); the indices of
    nondifferentiable outputs among them, as a tuple. One output that no gradient flows
    through is an op declared differentiable=False (else its output required grad)."""
    if isinstance(outputs, bool) or not hasattr(type(outputs), "__index__") or outputs < 1:
        raise ValueError(f"{name}: outputs must be a whole number >= 1, got {outputs!r}")
    outputs = operator.index(outputs)
    try:
        indices = tuple(nondifferentiable)
    except TypeError:
        raise TypeError(f"{name}: nondifferentiable_outputs is a tuple of output indices "
                        f"(e.g. (1,)), got {nondifferentiable!r}") from None
    wrong = [i for i in indices if isinstance(i, bool) or not hasattr(type(i), "__index__")
             or not 0 <= i < outputs]
    if wrong:
        raise ValueError(f"{name}: nondifferentiable_outputs {indices!r} names no output "
                         f"of the {outputs} (indices 0 to {outputs - 1})")
    if outputs == 1 and indices:
        raise ValueError(f"{name}: its one output is nondifferentiable: declare the op "
                         "with differentiable=False")
    return indices


# --- composite ops: a function of gpugrad ops, recorded as one named node -----------------
class CompositeOp(OpDef):
    """An op made of gpugrad ops: one node in the graph (its inner graph is
    `op.trace(*inputs)`), differentiated by running the function again in the backward
    pass and differentiating that — so its forward keeps nothing but its inputs."""

    def __init__(self, name, fn, source="custom"):
        self._fn = fn
        super().__init__(name, infer=self._infer, forward=self._replay, vjp=self._vjp,
                         saves="all", source=source)
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", name)
        self._result = None

    def __call__(self, *inputs, **attrs):
        from ..mode import no_grad
        from ..tensor import Tensor

        _check_call(self, inputs, attrs)
        tensors = [x if isinstance(x, Tensor) else _tensor(x) for x in inputs]
        if state.capture is not None:
            # Inside gg.compile's trace: its ops are the plan's (a plan runs kernels,
            # and this node's kernel only hands back the value computed at the call).
            return self._fn(*tensors, **attrs)
        with no_grad():  # the value only; the backward computes again what it needs
            self._result = self._fn(*tensors, **attrs)
        if not isinstance(self._result, Tensor):
            got, self._result = self._result, None
            hint = ("; for several outputs, define one op per output, or a @gg.custom_op "
                    "with outputs=k" if isinstance(got, (tuple, list)) else "")
            raise TypeError(f"{self.name}: a composite op's function returns one Tensor, "
                            f"got a {type(got).__name__} (at {format_site(user_site(1))})"
                            f"{hint}")
        try:
            return apply(self, tuple(tensors), attrs)
        finally:
            self._result = None

    def _infer(self, *inputs, **attrs):
        return tuple(self._result.shape), self._result.dtype

    def _replay(self, xp, *arrays, **attrs):
        return self._result._data

    def _vjp(self, ctx, grad):
        from ..mode import enable_grad, is_grad_enabled
        from ..scheduler import grad as gradients
        from .shape import reshape

        create_graph = is_grad_enabled()
        # Fresh nodes over the inputs, so that each gradient is a partial derivative
        # even when one input was computed from another.
        with enable_grad():
            inner = [apply(reshape, (x,), {"shape": x.shape}) for x in ctx.inputs]
            out = self._fn(*inner, **ctx.attrs)
        wanted = [i for i, need in enumerate(ctx.needs_input_grad) if need]
        found = gradients([out], [inner[i] for i in wanted], [grad],
                          create_graph=create_graph, allow_unused=True)
        grads = [None] * len(inner)
        for i, g in zip(wanted, found, strict=True):
            grads[i] = g
        return tuple(grads)

    def trace(self, *inputs, **attrs):
        """The graph of the ops this op is made of, for the given inputs."""
        from ..tracing import trace

        return trace(lambda *xs: self._fn(*xs, **attrs), *inputs)


def _tensor(x):
    from ..creation import tensor

    return tensor(x)


def composite_op(name, *, replace=False):
    """Record a function of gpugrad ops as one node named `name` (its inner graph is
    `op.trace(*inputs)`); gradients come from the function itself."""
    _check_name(name, replace)

    def decorator(fn):
        return register(CompositeOp(name, fn), replace=True)

    return decorator
