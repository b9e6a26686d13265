"""Recording modes, per thread: whether ops record graph nodes, and for what.

- grad mode (on by default): an op records a node when one of its inputs requires grad;
- tracing (inside gg.trace): every op records a node, so the whole function is seen;
- anomaly detection (gg.detect_anomaly) and profiling (gg.profile): ops are watched.
"""

import functools
import threading
from contextlib import contextmanager


class _State(threading.local):
    grad_enabled = True
    tracing = False
    anomaly = False
    profiler = None
    capture = None  # the recorder of gg.compile's trace, while it runs
    special = False  # tracing, anomaly detection or profiling: dispatch's slower path


state = _State()


class _GradMode:
    """Record graphs (enabled) or not inside a `with` block, in this thread, restoring the
    previous mode after it; as a decorator, around each call of the function."""

    def __init__(self, enabled):
        self._enabled = bool(enabled)
        # thread id -> a stack: one object may be entered again inside its block, and in
        # several threads at once (a module's `NO_GRAD = gg.no_grad()`), each its own mode
        self._previous = {}

    def _push(self, previous):
        self._previous.setdefault(threading.get_ident(), []).append(previous)

    def __enter__(self):
        self._push(state.grad_enabled)
        state.grad_enabled = self._enabled
        return self

    def __exit__(self, *exc_info):
        thread = threading.get_ident()
        stack = self._previous[thread]
        state.grad_enabled = stack.pop()
        if not stack:
            del self._previous[thread]
        return False

    def __call__(self, func):
        enabled = self._enabled

        @functools.wraps(func)
        def in_mode(*args, **kwargs):
            with _GradMode(enabled):  # a mode per call: recursion and threads are safe
                return func(*args, **kwargs)

        return in_mode


class set_grad_enabled(_GradMode):  # noqa: N801  (PyTorch's name, a function to its users)
    """Record graphs (True) or not (False), as PyTorch's set_grad_enabled: from the call
    on, so `gg.set_grad_enabled(False)` alone switches recording off in this thread; in
    a `with` block, or as a decorator, only inside it (the previous mode comes back)."""

    def __init__(self, enabled):
        super().__init__(enabled)
        self._outside = state.grad_enabled
        state.grad_enabled = self._enabled

    def __enter__(self):
        self._push(self._outside)  # the mode before the call, as PyTorch's restores
        state.grad_enabled = self._enabled  # (set by the call; again where entered again)
        return self

    def __call__(self, func):
        state.grad_enabled = self._outside  # a decorator acts inside the calls only
        return super().__call__(func)


def no_grad(func=None):
    """Run ops without recording the graph: no gradients flow through what runs inside.
    A context manager, or a decorator (`@gg.no_grad()`, or `@gg.no_grad` as PyTorch's
    takes it too)."""
    mode = _GradMode(False)
    return mode if func is None else mode(func)


def enable_grad(func=None):
    """Turn recording back on inside a no_grad block (a context manager or decorator, as
    no_grad)."""
    mode = _GradMode(True)
    return mode if func is None else mode(func)


def is_grad_enabled():
    return state.grad_enabled


@contextmanager
def switch(mode, value):
    """Set one of the watching modes (tracing, anomaly, profiler) inside the block."""
    if mode in ("anomaly", "profiler") and value and state.capture is not None:
        _refuse_in_compile(mode)  # (turning one off, as backward does, is fine)
    previous = getattr(state, mode)
    setattr(state, mode, value)
    _update_special()
    try:
        yield
    finally:
        setattr(state, mode, previous)
        _update_special()


def _refuse_in_compile(mode):
    """A plan's runs neither check values nor time ops: inside a compiled function, the
    block would watch the tracing call only, and later runs would pass silently."""
    from .compiler.capture import CompileError
    from .node import format_site, user_site

    what = "gg.detect_anomaly()" if mode == "anomaly" else "gg.profile()"
    raise CompileError(f"{what} inside a compiled function (at {format_site(user_site(2))}) "
                       "would watch its first call only; put it around the call instead "
                       f"(`with {what}: step(x)` runs the function eagerly, watched)")


def _update_special():
    state.special = state.tracing or state.anomaly or state.profiler is not None


def tracing():
    """Record every op, whether or not its inputs require grad (used by gg.trace)."""
    return switch("tracing", True)


def detect_anomaly():
    """Raise at the first op whose forward output, or whose backward gradients, hold a
    NaN or an Inf — naming the op, its shapes and the line of code that created it."""
    return switch("anomaly", True)
