"""gg.compile: trace a function once, optimise its DAG, run the flat plan after that.

The first call with given argument shapes, dtypes and devices runs the function
eagerly, recording everything it does (forward, backward, the optimiser's update);
the recording becomes a Program, the passes simplify it, the memory plan assigns its
buffers, and lowering turns it into one straight-line Python function. Later calls
with the same kind of arguments run that function. Anything else traces anew (or
raises, with retrace=False) and says why.
"""

import builtins
import copy
import dataclasses
import functools
import gc
import inspect
import math
import re
import time
import warnings
from collections import OrderedDict
from contextlib import contextmanager

import numpy as np

from .. import backends as _backends
from .. import node as _node_module
from ..errors import retyped
from ..mode import state
from ..tensor import Tensor
from ..viz.labels import argument_names
from . import passes
from .capture import CompileError, Recorder, capturing
from .cuda_graph import graph_ready
from .lower import Retrace, lower
from .memory import plan_memory
from .program import build, copy_constants_handed_out
from .reads import by_bits, from_bits, guarded_reads


class CompileWarning(UserWarning):
    """A compiled function traced anew (the message says what changed)."""


class Plan:
    """One compiled version of a function: for one kind of arguments."""

    def __init__(self, run, source, program, traced, memory, pass_stats, treedef,
                 result_specs, seconds, origin="a compiled function", reusable=True,
                 arg_writes=()):
        self.run = run
        self.arg_writes = arg_writes  # positions of the arguments a run gives new arrays
        self.code = source
        self.program = program
        self.traced = traced
        self.memory = memory
        self.pass_stats = pass_stats
        self.treedef = treedef
        self.result_specs = result_specs
        self.compile_seconds = seconds
        self.origin = origin  # what its results' .graph names: "gg.compile(step)"
        self.reusable = reusable  # False: a guard of it never holds again (see _trace)

    @property
    def peak_bytes(self):
        """The most bytes of the plan's own buffers alive at once (known before it runs)."""
        return self.memory.peak_bytes

    def __call__(self, arrays, tensors=None):
        """The results of a run on `arrays`, those of the tensor arguments `tensors`
        (which a plan that updates an argument in place needs: arg_writes)."""
        try:
            out = self.run(*arrays)
        except Retrace:
            raise
        except Exception as exc:  # a kernel's own error: named as eager mode names it
            raise _named(exc, self) from exc
        if self.arg_writes:
            out = self._hand_to_arguments(out, tensors)
        origin = self.origin
        results = []
        for a, (dtype, device) in zip(out, self.result_specs, strict=True):
            t = Tensor._wrap(a, dtype, device, False)
            t._made_by = origin  # its .graph says to look at the plan's
            results.append(t)
        if self.treedef is _LONE_TENSOR:  # a loss: no tree to rebuild (a microsecond)
            return t
        return _unflatten(self.treedef, results)

    def _hand_to_arguments(self, out, tensors):
        """The run's new arrays for the arguments it updated in place (after its
        results), handed to those tensors as an eager update hands them; the results."""
        count = len(self.arg_writes)
        for position, array in zip(self.arg_writes, out[-count:], strict=True):
            t = tensors[position]
            # (NumPy gives a 0-d value as a scalar: a tensor holds an array)
            t._data = np.asarray(array) if isinstance(array, np.generic) else array
            t._mark_replaced()
        return out[:-count]

    def release(self):
        """Give back what the plan holds beyond its arrays (a CUDA graph's memory)."""
        release = getattr(self.run, "release", None)
        if release is not None:
            release()

    def __repr__(self):
        return (f"<gg.Plan: {len(self.program.op_nodes())} kernel calls "
                f"({len(self.traced.op_nodes())} traced), peak {self.peak_bytes:,} bytes>")


def _named(exc, plan):
    """exc, raised inside a run of `plan`, as eager mode raises it: naming the op and
    the user's line that made it. The plan's source line that raised says which kernel
    call it was (K3, O3, C3: the op numbered 3 of the plan); exc itself if none."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith("<gg.compile"):
            line = tb.tb_lineno
        tb = tb.tb_next
    if line is None:
        return exc
    lines = plan.code.splitlines()
    found = _KERNEL_CALL.search(lines[line - 1]) if 0 < line <= len(lines) else None
    if found is None:
        return exc
    ops = plan.program.op_nodes()
    index = int(found.group(1))
    if index >= len(ops):
        return exc
    node = ops[index]
    message = str(exc)
    if not _NAMES_AN_OP.match(message):  # gpugrad's own checks (C3) name the user's op
        message = f"{node.op.display_name}: {message}"
    return retyped(exc, f"{message} (in a run of {plan.origin}; op created at "
                        f"{node.where()})")


_KERNEL_CALL = re.compile(r"\b[KOC](\d+)\(")  # (F: a leaf's feed, not an op)
_NAMES_AN_OP = re.compile(r"[a-z_][a-z0-9_]*(::[a-z_][a-z0-9_]*)?: ")  # "nll_loss: ..."


# Plans kept for one kind of arguments whose guards differ (a module in train() or eval(),
# a .grad None or not): enough for the patterns that alternate, few enough that a guard
# that never holds again (a value read afresh at every call) cannot pile plans up.
MAX_VARIANTS = 4


class CompiledFunction:
    """The callable gg.compile returns. `graph` / `traced_graph`: the latest plan's
    DAG after / before the passes; `code`: its generated source; `plans`: the plans
    kept, by argument kind (least recently used first), each a list of variants whose
    guards differ (most recently used first); `log`: why each trace happened."""

    def __init__(self, fn, retrace=True, optimize=True, cuda_graph=False, max_plans=8):
        self.fn = fn
        self.retrace = retrace
        self.optimize = optimize
        self.cuda_graph = cuda_graph
        self.max_plans = max_plans
        self.plans = {}
        self.log = []
        self._last = None
        self._recent = None  # the plan of the latest call (kept last in self.plans)
        self._warned_full = False
        self._signature = None  # read on the first call with keyword arguments
        self._binds = _UNKNOWN  # _defaults_count(fn), read on the first call
        functools_wraps(self, fn)

    def __call__(self, *args, **kwargs):
        if state.special:
            # Under gg.detect_anomaly() or gg.profile() the function runs eagerly: a
            # plan would skip the checks and leave the profile empty. Under gg.trace, or
            # inside another compiled function's trace, it runs inline, so that its ops
            # are recorded (a plan run there would leave its result a lone leaf, frozen
            # into the outer plan).
            return self.fn(*args, **kwargs)
        fn = self.fn
        if kwargs or self._leaves_defaults_out(args):
            args, fn, key = self._keywords(args, kwargs)
        else:
            key = _key(args)
        variants = self.plans.get(key)
        if variants is None:
            reason = "first call" if self._last is None else _difference(self._last, key)
            return self._trace(key, args, reason, fn)
        tensors = [a for a in args if a.__class__ is Tensor]
        arrays = [a._data for a in tensors]
        reason = None
        for plan in variants:  # the most recently used first; a guard fails before any work
            try:
                result = plan(arrays, tensors)
            except Retrace as exc:
                reason = reason or str(exc)
                continue
            if plan is not self._recent:
                self._used(key, plan)
            return result
        return self._trace(key, args, reason, fn)

    def __get__(self, obj, objtype=None):
        """@gg.compile on a method: bound to its object, which is then an argument of
        the plan's key like any other (a plan per object)."""
        return self if obj is None else functools.partial(self, obj)

    def _used(self, key, plan):
        """plan (of key) ran: first among its key's variants, its key the most recently
        used (calls alternating between kinds keep the order, for dropping the oldest)."""
        variants = self.plans.pop(key)
        if variants[0] is not plan:
            variants.remove(plan)
            variants.insert(0, plan)
        self.plans[key] = variants
        self._recent = plan

    def _leaves_defaults_out(self, args):
        """Whether fn(*args) takes defaults for parameters left out: then the call is
        bound as the signature says, so that f(x) and f(x, scale=1.0) share a plan."""
        if self._binds is _UNKNOWN:
            self._binds = _defaults_count(self.fn)
        return self._binds is not None and len(args) < self._binds

    def _keywords(self, args, kwargs):
        """(args, function, key) of a call with keyword arguments: those the signature
        also takes by position are passed by position (tensors included); keyword-only
        ones are constants of the plan, so hashable values, not tensors, told apart as
        other arguments are: by type and bits (s=-0.0 is not s=0.0, s=2 not s=2.0)."""
        if self._signature is None:
            self._signature = inspect.signature(self.fn)
        args, rest, defaulted = _positional(self._signature, args, kwargs)
        for name, value in rest.items():
            if isinstance(value, Tensor):
                raise CompileError(f"gg.compile({_name(self.fn)}): the keyword-only "
                                   f"argument {name} is a Tensor; pass tensors by position")
        key = _key(args, defaulted)
        if rest:
            keywords = tuple(sorted(
                (name, _Identity(value) if name in defaulted and not _hashable(value)
                 else value) for name, value in rest.items()))
            if not _hashable(keywords):
                raise CompileError(f"gg.compile({_name(self.fn)}): keyword-only arguments "
                                   "must be hashable (numbers, strings, tuples)")
            key += (("value", "keywords", tuple((name, type(value), by_bits(value))
                                                for name, value in keywords)),)
        return args, functools.partial(self.fn, **rest) if rest else self.fn, key

    def _trace(self, key, args, reason, fn):
        if self._last is not None and not self.retrace:
            raise CompileError(f"gg.compile({_name(self.fn)}): would trace anew "
                               f"({reason}), and retrace=False")
        if self._last is not None:
            warnings.warn(f"gg.compile({_name(self.fn)}): tracing anew: {reason}",
                          CompileWarning, stacklevel=3)
        self.log.append(reason)
        self._recent = None  # until the trace makes its plan
        result, plan = trace_and_compile(fn, args, self.optimize, self.cuda_graph)
        # A plan whose guard failed (a module in eval(), .grad None or not) stays beside
        # the new one, as one more variant of its key: the calls that alternate between
        # the two (a .grad cleared every k steps) then trace only once each.
        variants = []
        for old in self.plans.pop(key, []):  # (a plan no run can use is not kept)
            if old.reusable:
                variants.append(old)
            else:
                old.release()
        variants.insert(0, plan)
        if len(variants) > MAX_VARIANTS:
            variants.pop().release()
        self.plans[key] = variants
        self._last, self._recent = key, plan
        if self.max_plans is not None and len(self.plans) > self.max_plans:
            self._drop_oldest()
        return result

    def _drop_oldest(self):
        """Keep plans for at most max_plans kinds of arguments (each plan holds its
        constants, and on CUDA a graph's memory): the least recently used kind's go, and
        the first time a warning says so."""
        key = next(iter(self.plans))
        for plan in self.plans.pop(key):
            plan.release()
        if not self._warned_full:
            self._warned_full = True
            warnings.warn(f"gg.compile({_name(self.fn)}): plans for max_plans="
                          f"{self.max_plans} kinds of arguments are kept: the least "
                          "recently used is dropped, and a kind without a plan traces anew "
                          "(pad or bucket shapes, or raise max_plans)", CompileWarning,
                          stacklevel=4)

    @property
    def plan(self):
        """The plan the latest call ran (or traced)."""
        if self._recent is None:
            raise CompileError("no plan yet: the function has not been called, or its "
                               "latest trace failed")
        return self._recent

    @property
    def graph(self):
        """The latest plan's DAG after the passes, as a gg.Graph."""
        return self.plan.program.graph()

    @property
    def traced_graph(self):
        """The latest plan's DAG as traced, before the passes."""
        return self.plan.traced.graph()

    @property
    def code(self):
        return self.plan.code

    def __repr__(self):
        return f"<gg.compile of {_name(self.fn)}: {len(self.plans)} plan(s)>"


def functools_wraps(wrapper, fn):
    """As functools.wraps: fn's name and doc, and __wrapped__, through which
    inspect.signature (help(), editors, the argument names of drawings) reads fn's."""
    for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
        try:
            setattr(wrapper, attr, getattr(fn, attr))
        except (AttributeError, TypeError):
            pass
    wrapper.__wrapped__ = fn


def compile(fn=None, *, retrace=True, optimize=True, cuda_graph=False,  # noqa: A001
            max_plans=8):
    """Compile fn (a training step, a forward pass) into a cached plan.

    The first call traces fn: it runs eagerly (its results are returned) while every op
    it runs — forward, `backward()`, an optimiser's `step()` — is recorded. Later calls
    with arguments of the same shapes, dtypes and devices run the plan: the same
    kernels in the same order over planned buffers, without Python dispatch or graph
    recording. Other arguments trace anew (a CompileWarning says why), or raise with
    retrace=False. optimize=False skips the passes (for comparison).

    cuda_graph=True (on a CUDA device): the plan is captured as a CUDA graph on its
    second run and replayed after that — one launch per step instead of one per kernel
    (see gpugrad.compiler.cuda_graph; `step.plan.run.status` says whether it was). On
    another device the plan runs without a graph (a CompileWarning says so).

    At most max_plans kinds of arguments keep plans (None: no limit); past that, the
    least recently used kind's are dropped (a CompileWarning says so once). A plan whose
    guard fails (a module switched to eval(), a .grad None where it was set) stays
    beside the one traced anew, up to MAX_VARIANTS per kind: calls that alternate
    between the two run from plans after one trace each.

    Inside fn: no reading values on the host (.item(), .numpy(): return the tensor
    instead); random numbers are drawn anew on every run; results come back without a
    graph (call backward inside fn). Numbers and strings fn's own code reads from
    globals or enclosing variables are guarded (rebinding one traces anew, see
    compiler.reads); values read deeper (attributes, globals of functions fn calls) are
    constants of the plan. Usable as a decorator, with or without arguments.
    """
    if max_plans is not None and (isinstance(max_plans, bool) or
                                  not isinstance(max_plans, int) or max_plans < 1):
        raise ValueError(f"gg.compile: max_plans must be a positive int or None, not "
                         f"{max_plans!r}")
    options = dict(retrace=retrace, optimize=optimize, cuda_graph=cuda_graph,
                   max_plans=max_plans)
    if fn is None:
        return lambda f: compile(f, **options)
    if not callable(fn):
        raise TypeError(f"gg.compile takes a function, not {type(fn).__name__}")
    return CompiledFunction(fn, **options)


def trace_and_compile(fn, args, optimize=True, cuda_graph=False):
    """Run fn once under capture; return (its results, the Plan)."""
    start_time = time.perf_counter()
    recorder = Recorder(next(_node_module._sequence))
    traced_args, aliases, given = [], {}, {}
    names = argument_names(fn, len(args))
    copies = {}  # id -> copy: a tensor passed twice, f(x, x), is one tensor inside
    for i, a in enumerate(args):
        if a.__class__ is Tensor and id(a) in copies:
            traced_args.append(copies[id(a)])
        elif a.__class__ is Tensor:  # a leaf of the trace, whatever made it
            copy = copies[id(a)] = Tensor._wrap(a._data, a._dtype, a._device,
                                                a._requires_grad)
            if a._requires_grad and a._node is not None and not a._node.op.is_leaf:
                named = f"{names[i]}, " if names[i] else ""
                recorder.graph_arguments[id(copy)] = (copy, (
                    f"argument {i} ({named}made by {a._node.op.display_name} at "
                    f"{a._node.where()})"))
            copy._grad = a._grad  # a backward inside adds to it, as in eager mode
            aliases[copy], given[copy] = a, a._data
            recorder.arguments.add(id(a))
            recorder.argument_copies.add(id(copy))
            traced_args.append(copy)
        else:
            traced_args.append(a)
    for getter, reason in guarded_reads(fn):  # read before fn runs, as fn reads them
        recorder.guard(getter, reason)
    grad_mode = state.grad_enabled
    with _collector_paused(), capturing(recorder):
        result = fn(*traced_args)
    if state.grad_enabled is not grad_mode:  # a bare gg.set_grad_enabled(False) inside
        state.grad_enabled = grad_mode
        raise CompileError(
            f"gg.compile({_name(fn)}): the function switches grad mode "
            f"{'off' if grad_mode else 'on'} and leaves it so (gg.set_grad_enabled called "
            "alone): the plan's runs would not; use `with gg.set_grad_enabled(...):` "
            "inside the function, or call it before the call")
    recorder.grads = {aliases.get(t, t): g for t, g in recorder.grads.items()}
    for copy, original in aliases.items():
        if copy.grad is not None:
            original.grad = copy.grad
        if copy._data is not given[copy]:  # updated in place inside the function (not
            # merely another copy of a tensor passed twice, f(x, x), left as it was)
            original._data = copy._data
            original._mark_replaced()
    tensors, treedef = _flatten(result)
    recorder.settle_created(tensors)
    if not recorder.differentiated and any(t._requires_grad for t in tensors):
        warnings.warn("gg.compile: the function returns a tensor that requires grad; "
                      "compiled results come without a graph — call backward() inside "
                      "the function", CompileWarning, stacklevel=4)
    tensor_args = [a for a in traced_args if a.__class__ is Tensor]
    names = [name for name, a in zip(names, traced_args, strict=True)
             if a.__class__ is Tensor]
    with _collector_paused():
        traced = build(recorder, tensor_args, tensors, names)
        program = build(recorder, tensor_args, tensors, names)
        _detach_grads(recorder)
        stats = passes.run_all(program) if optimize else {}
        copy_constants_handed_out(program)
        memory = plan_memory(program)
        ready = graph_ready(program, memory, len(tensor_args), _name(fn)) if cuda_graph \
            else None
        if ready is not None:
            run, source = ready
        else:
            source, namespace = lower(program, memory, len(tensor_args))
            exec(builtins.compile(source, f"<gg.compile {_name(fn)}>", "exec"), namespace)
            run, arg_writes = namespace["run"], namespace["ARG_WRITES"]
    plan = Plan(run, source, program, traced, memory, stats, treedef,
                [(t._dtype, t._device) for t in tensors], time.perf_counter() - start_time,
                origin=f"gg.compile({_name(fn)})", reusable=not recorder.single_use,
                arg_writes=() if ready is not None else arg_writes)
    if ready is not None:  # a graph-ready plan writes into the arrays it reads: results
        # of this call (a .grad, a parameter) must not be those arrays
        tensors = [Tensor._wrap(t._data.copy(), t._dtype, t._device, False) for t in tensors]
    results = [t.detach() for t in tensors]
    for t in results:
        t._made_by = plan.origin  # as the plan's runs return them: without a graph
    return _unflatten(treedef, results), plan


def _detach_grads(recorder):
    """The .grad the trace left: without the trace's node, as eager gradients are (a
    later trace reading it would otherwise follow that node into a finished trace). A
    gradient that is a leaf (one from before the call, updated in place: p.grad *= 0.5)
    stays the tensor it is, as in eager mode."""
    for tensor in recorder.grads:
        g = tensor.grad
        if g is not None and g._node is not None and not g._node.op.is_leaf:
            tensor.grad = Tensor._wrap(g._data, g._dtype, g._device, False)


@contextmanager
def _collector_paused():
    """Compiling makes a few objects per node and frees none of them until the end: the
    cyclic garbage collector, run every few hundred allocations, would scan the whole
    growing program each time (quadratic on a 100,000-node graph). Paused, and run
    once after, the cost is linear."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _key(args, defaulted=()):
    """What a plan is made for: each tensor argument's shape, dtype, device and
    requires_grad, every other argument's value, the grad mode and the default device
    (where tensors made inside go). A default the call left out (its position in
    defaulted) that cannot be hashed (a dict) is the function's own object, the same on
    every call: it is part of the key by identity."""
    parts = [(state.grad_enabled, _backends.default_device())]
    positions = {}  # a tensor passed twice is one tensor in the plan: part of the key
    for i, a in enumerate(args):
        if a.__class__ is Tensor:
            first = positions.setdefault(id(a), i)
            parts.append((a._data.shape, a._dtype, a._device, a._requires_grad)
                         if first == i else ("same tensor as", first))
        elif i in defaulted and not _hashable(a):
            parts.append(("value", type(a), _Identity(a)))
        else:
            if not _hashable(a):
                raise CompileError(f"gg.compile: an argument of type {type(a).__name__} is "
                                   "neither a Tensor nor hashable; pass tensors, numbers or "
                                   "strings")
            if isinstance(a, (tuple, frozenset)) and any(isinstance(i, Tensor) for i in a):
                raise CompileError("gg.compile: an argument is a tuple of tensors; pass "
                                   "each tensor as an argument of its own (f(x, y), not "
                                   "f((x, y)))")
            parts.append(("value", type(a), by_bits(a)))
    return tuple(parts)


_UNKNOWN = object()


def _defaults_count(fn):
    """The number of arguments beyond which fn(*args) leaves out a parameter that has a
    default (or a keyword-only one), or None when no call can."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # no signature (a builtin): bind nothing
        return None
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY,
                                                       p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind is p.KEYWORD_ONLY for p in parameters):
        # every call: the keyword-only defaults are constants (after *args, a call of
        # any length)
        if any(p.kind is p.VAR_POSITIONAL for p in parameters):
            return math.inf
        return len(positional) + 1
    if any(p.default is not p.empty for p in positional):
        return len(positional)
    return None


def _positional(signature, args, kwargs):
    """(positional arguments, keyword-only ones, the defaults filled in: positions and
    keyword names) of a call: every parameter that can be given by position is
    (defaults filled in), so that fn(x, b=t) passes the tensor t by position even when a
    parameter before b was left out."""
    bound = signature.bind(*args, **kwargs)
    given = set(bound.arguments)
    bound.apply_defaults()
    positional, rest, defaulted = [], {}, set()
    for name, param in signature.parameters.items():
        value = bound.arguments[name]
        if name not in given and param.kind is not param.VAR_POSITIONAL:
            defaulted.add(len(positional) if param.kind in (
                param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD) else name)
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            positional.append(value)
        elif param.kind is param.VAR_POSITIONAL:
            positional.extend(value)
        elif param.kind is param.KEYWORD_ONLY:
            rest[name] = value
        else:  # **kwargs
            rest.update(value)
    return tuple(positional), rest, defaulted


def _hashable(value):
    try:
        hash(value)
    except TypeError:
        return False
    return True


class _Identity:
    """A default that cannot be hashed (a dict), in a key: the function's own object,
    the same on every call that leaves it out, so compared by identity."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, _Identity) and other.value is self.value

    def __hash__(self):
        return id(self.value)

    def __repr__(self):
        return f"the default {type(self.value).__name__}"


def _difference(old, new):
    """In words, what differs between two keys."""
    if len(old) != len(new):
        before, after = _positional_count(old), _positional_count(new)
        if before == after:  # keyword-only arguments given where none were, or back
            return f"keyword arguments {_keywords_in(old)} -> {_keywords_in(new)}"
        return f"{after} arguments instead of {before}"
    if old[0][0] != new[0][0]:
        return "grad mode " + ("on" if new[0][0] else "off")
    if old[0] != new[0]:
        return f"the default device {old[0][1]} -> {new[0][1]}"
    for i, (a, b) in enumerate(zip(old[1:], new[1:], strict=True)):
        if a != b and a[:2] == b[:2] == ("value", "keywords"):
            return f"keyword arguments {_change(a, b, _keyword_words)}"
        if a != b:
            return f"argument {i}: {_change(a, b, _describe)}"
    return "a guard of the plan failed"


def _positional_count(key):
    """How many arguments a key stands for (its keyword-only ones apart)."""
    return sum(1 for part in key[1:] if part[:2] != ("value", "keywords"))


def _keywords_in(key):
    """The keyword-only arguments of a key in words ({} where it has none)."""
    for part in key[1:]:
        if part[:2] == ("value", "keywords"):
            return _keyword_words(part, False)
    return "{}"


def _change(old, new, words):
    """'old -> new' of two parts of keys in words(part, typed), naming the values' types
    where the words are the same (2.0 and np.float32(2.0), (1,) and (1.0,))."""
    before, after = words(old, False), words(new, False)
    if before == after:
        before, after = words(old, True), words(new, True)
    return f"{before} -> {after}"


def _keyword_words(part, typed):
    """The keyword-only arguments of a key in words."""
    if not typed:
        return repr({name: from_bits(bits) for name, _, bits in part[2]})
    return "{" + ", ".join(f"{name!r}: {_typed_words(kind, bits)}"
                           for name, kind, bits in part[2]) + "}"


def _typed_words(kind, bits):
    """A value of a key as its type says it: 'numpy.float32 2.0', 'tuple (int 1, bool
    True)'."""
    if kind in (tuple, list) and isinstance(bits, tuple):  # (type, bits) per item
        return f"{_type_name(kind)} ({', '.join(_typed_words(*item) for item in bits)})"
    return f"{_type_name(kind)} {from_bits(bits)!r}"


def _type_name(kind):
    module = getattr(kind, "__module__", "builtins")
    name = getattr(kind, "__qualname__", repr(kind))
    return name if module == "builtins" else f"{module}.{name}"


def _describe(part, typed=False):
    if part[:2] == ("value", "keywords"):  # (beside a positional argument's part)
        return f"keyword arguments {_keyword_words(part, typed)}"
    if part[0] == "value":
        return _typed_words(part[1], part[2]) if typed else repr(from_bits(part[2]))
    if part[0] == "same tensor as":
        return f"the tensor passed as argument {part[1]}"
    shape, dtype, device, requires_grad = part
    grad = ", requires grad" if requires_grad else ""
    return f"{tuple(shape)} {dtype} on {device}{grad}"


def _name(fn):
    return getattr(fn, "__qualname__", None) or repr(fn)


def _holds_tensors(x):
    """Whether a result object of another kind holds a tensor among its items or
    attributes (one level: what a plan would hand back stale)."""
    if isinstance(x, (list, tuple, set, frozenset)):
        items = x
    elif isinstance(x, dict):
        items = x.values()
    else:
        items = getattr(x, "__dict__", {}).values()
    return any(isinstance(i, Tensor) for i in items)


_LONE_TENSOR = ("t",)  # the treedef of a tensor (the whole result, or one in a container)


def _flatten(result):
    """(tensors, treedef) of a result made of Tensors in tuples, lists, dicts,
    namedtuples and dataclasses; numbers and strings are kept as they are."""
    tensors = []

    def walk(x):  # results are shallow containers, never a graph: recursion is fine
        if isinstance(x, Tensor):
            tensors.append(x)
            return _LONE_TENSOR
        if isinstance(x, tuple) and hasattr(type(x), "_fields"):  # a namedtuple
            return ("n", type(x), tuple(walk(i) for i in x))
        if type(x) in (tuple, list):
            return (type(x), tuple(walk(i) for i in x))
        if type(x) in (dict, OrderedDict):
            return ("d", type(x), tuple(x.keys()), tuple(walk(v) for v in x.values()))
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            names = tuple(f.name for f in dataclasses.fields(x))
            return ("c", x, names, tuple(walk(getattr(x, n)) for n in names))
        if _holds_tensors(x):
            raise CompileError(
                f"gg.compile: the function returns a {type(x).__name__} that holds "
                "tensors; a plan hands back new tensors at every run in tuples, lists, "
                "dicts, namedtuples or dataclasses (this object would keep the first "
                "call's)")
        return ("v", x)  # a constant of the trace: a number, a device, an enum, ...

    return tensors, walk(result)


def _unflatten(treedef, tensors):
    it = iter(tensors)

    def build(d):
        kind = d[0]
        if kind == "t":
            return next(it)
        if kind == "d":
            return d[1](zip(d[2], [build(v) for v in d[3]], strict=True))
        if kind == "v":
            return d[1]
        if kind == "n":
            return d[1](*[build(i) for i in d[2]])
        if kind == "c":  # a copy of the traced object, its fields the run's
            obj = copy.copy(d[1])
            for name, field in zip(d[2], d[3], strict=True):
                object.__setattr__(obj, name, build(field))  # (frozen ones too)
            return obj
        return kind([build(i) for i in d[1]])

    return build(treedef)
