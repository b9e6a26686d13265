"""Memory accounting of nodes: the bytes of an output, and of what a node keeps saved for
its backward pass. Counted from shapes and dtypes, so nothing is allocated or synchronised
to know them."""

import math

from ..node import FREED


def nbytes(shape, dtype):
    """Bytes of an array of `shape` and (gpugrad) `dtype`."""
    return math.prod(shape) * getattr(dtype, "itemsize", 0)


def output_bytes(node):
    """Bytes of a node's output."""
    return nbytes(node.shape, node.dtype)


def saved_bytes(node):
    """Bytes of the arrays a node keeps for its backward: the inputs its VJP reads and
    its output where the VJP reads that (an array kept twice counts once). Part of it is
    usually another node's output or a parameter, alive anyway; the rest is what the
    graph holds on to until the backward has run. None once the backward freed them."""
    saved = node.saved
    if saved is FREED:
        return None
    arrays = {}
    for tensor in saved or ():
        if tensor is not None and hasattr(tensor, "_data"):
            arrays[id(tensor._data)] = nbytes(tensor._data.shape, tensor._dtype)
    output = node.saved_output
    if output.__class__ is tuple:  # an op with several outputs keeps them all
        for array, sibling in zip(output, node.meta["siblings"], strict=True):
            arrays[id(array)] = nbytes(array.shape, sibling.dtype)
    elif output is not None:
        arrays[id(output)] = nbytes(output.shape, node.dtype)
    return sum(arrays.values())
