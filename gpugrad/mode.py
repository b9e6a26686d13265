"""Recording modes, per thread: whether ops record graph nodes, and for what.

- grad mode (on by default): an op records a node when one of its inputs requires grad;
- tracing (inside gg.trace): every op records a node, so the whole function is seen;
- anomaly detection (gg.detect_anomaly) and profiling (gg.profile): ops are watched.
"""

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


@contextmanager
def set_grad_enabled(enabled):
    """Record graphs (True) or not (False) inside the block; restores the previous mode."""
    previous = state.grad_enabled
    state.grad_enabled = bool(enabled)
    try:
        yield
    finally:
        state.grad_enabled = previous


def no_grad():
    """Run ops without recording the graph: no gradients flow through what runs inside.
    A context manager, or a decorator."""
    return set_grad_enabled(False)


def enable_grad():
    """Turn recording back on inside a no_grad block."""
    return set_grad_enabled(True)


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
