"""gg.trace: the graph of a whole function, whether or not anything requires grad."""

from .creation import tensor
from .graph import Graph
from .mode import tracing
from .ops.registry import node_of
from .tensor import Tensor


def _flatten(result):
    if isinstance(result, Tensor):
        return [result]
    if isinstance(result, dict):
        result = list(result.values())
    if isinstance(result, (list, tuple)):
        out = []
        for item in result:
            out.extend(_flatten(item))
        return out
    raise TypeError(f"gg.trace: the function returned {type(result).__name__}; it must "
                    "return a Tensor or a list/tuple/dict of Tensors")


def trace(fn, *inputs):
    """Run fn(*inputs) once, recording every op, and return the gg.Graph from the inputs
    (arrays or numbers become tensors) to the outputs; the inputs are drawn by the names
    of fn's parameters (`def step(x, labels)`: "x", "labels")."""
    from .viz.labels import argument_names

    args = [x if isinstance(x, Tensor) else tensor(x) for x in inputs]
    # The arguments' nodes as they are now: an argument updated in place inside fn
    # (acc += x) carries the update's node after it, and the graph starts before.
    starts = [node_of(a) for a in args]
    with tracing():
        result = fn(*args)
    return Graph.between([node_of(t) for t in _flatten(result)], starts,
                         argument_names(fn, len(args)))
