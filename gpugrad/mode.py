"""Recording modes, per thread: whether ops record graph nodes, and for what.

- grad mode (on by default): an op records a node when one of its inputs requires grad;
- tracing (inside gg.trace): every op records a node, so the whole function is seen;
- anomaly detection is left to the inspection tools.
"""

import threading
from contextlib import contextmanager


class _State(threading.local):
    grad_enabled = True
    tracing = False


state = _State()


@contextmanager
def no_grad():
    """Run ops without recording the graph: no gradients flow through what runs inside."""
    previous = state.grad_enabled
    state.grad_enabled = False
    try:
        yield
    finally:
        state.grad_enabled = previous


@contextmanager
def enable_grad():
    """Turn recording back on inside a no_grad block."""
    previous = state.grad_enabled
    state.grad_enabled = True
    try:
        yield
    finally:
        state.grad_enabled = previous


def is_grad_enabled():
    return state.grad_enabled


@contextmanager
def set_grad_enabled(enabled):
    previous = state.grad_enabled
    state.grad_enabled = bool(enabled)
    try:
        yield
    finally:
        state.grad_enabled = previous


@contextmanager
def tracing():
    """Record every op, whether or not its inputs require grad (used by gg.trace)."""
    previous = state.tracing
    state.tracing = True
    try:
        yield
    finally:
        state.tracing = previous
