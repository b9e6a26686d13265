"""Nodes: the record of one op applied to tensors, the unit the graph is made of.

Nodes are plain Python objects linked to their input nodes, cheap enough to create on
every op; the networkx view (`Graph`) is built from them only when someone asks. A node
holds what its backward rule needs (`saved`) until that rule has run, and no more: the
tensors it was computed from are not kept alive by the graph.
"""

import contextlib
import itertools
import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_sequence = itertools.count()
next_seq = _sequence.__next__  # a fresh creation number (nn.Module calls start with one)
FREED = ("<freed>",)  # `saved` once the backward rule ran without retain_graph


class Node:
    """One op application (or a leaf tensor) in the recorded graph.

    op: the OpDef (a LeafOp for leaves); inputs: tuple of Nodes; attrs: static arguments;
    shape, dtype, device: the output's; seq: creation order (inputs always have smaller
    seq, so sorting by seq is a topological order); site: (file, line) of the user's
    code that created it; saved, saved_output: what the VJP needs (saved becomes FREED
    once it ran);
    ref: a weak reference to a leaf's tensor, where gradients are accumulated;
    marks: None, or ((start, module weak reference, class name), ...): one per
    nn.Module call this node is the output of; the nodes made inside that call are those
    numbered after start, up to this node (gpugrad.viz.scopes reads them);
    meta: None, or a dict of what watching modes recorded (gg.profile: times, bytes,
    value and gradient statistics).
    """

    __slots__ = ("op", "inputs", "attrs", "saved", "saved_output", "shape", "dtype", "device",
                 "seq", "site", "requires_grad", "ref", "meta", "marks", "__weakref__")

    def __init__(self, op, inputs, attrs, shape, dtype, device, requires_grad, site,
                 saved=None, saved_output=None, ref=None):
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.shape = shape
        self.dtype = dtype
        self.device = device
        self.requires_grad = requires_grad
        self.site = site
        self.saved = saved  # the inputs the VJP reads (None where it reads none)
        self.saved_output = saved_output  # the output array, if the VJP reads it
        self.ref = ref
        self.meta = None
        self.marks = None
        self.seq = next(_sequence)

    @property
    def is_leaf(self):
        return self.op.is_leaf

    @property
    def name(self):
        return self.op.display_name

    def where(self):
        """'file.py:12' of the user's code that created this node, or '?'."""
        return format_site(self.site)

    def __repr__(self):
        return (f"<Node {self.seq} {self.name} shape={self.shape} dtype={self.dtype} "
                f"at {self.where()}>")


_internal = {}
# Modules of the package that are programs using the engine, not the engine: the lines
# that create nodes there are the "user's line".
_USER_LEVEL = ("demo.py", "bench.py", "train.py")


# The standard library's context managers: a `with gg.no_grad():` runs gpugrad's code
# from inside contextlib, whose line is not the user's either.
_PASSED_THROUGH = (os.path.abspath(contextlib.__file__),)


def _is_internal(filename):
    found = _internal.get(filename)
    if found is None:
        path = os.path.abspath(filename)
        found = (path.startswith(_PACKAGE_DIR) and os.path.basename(path) not in _USER_LEVEL
                 ) or path in _PASSED_THROUGH
        _internal[filename] = found
    return found


def user_site(depth=1):
    """(filename, lineno) of the innermost frame outside the gpugrad package."""
    frame = sys._getframe(depth)
    internal = _internal
    while frame is not None:
        filename = frame.f_code.co_filename
        inside = internal.get(filename)
        if inside is None:
            inside = _is_internal(filename)
        if not inside:
            return filename, frame.f_lineno
        frame = frame.f_back
    return None


def user_stacklevel():
    """The stacklevel for warnings.warn, called by the caller of this function, that
    points at the innermost frame outside the gpugrad package (the user's line), however
    deep inside gpugrad the warning is raised."""
    frame, level = sys._getframe(2), 2
    while frame is not None and _is_internal(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    return 2 if frame is None else level


def format_site(site):
    if site is None:
        return "?"
    filename, line = site
    return f"{os.path.basename(filename)}:{line}"


def walk(roots, stop=()):
    """Every node reachable from `roots` through inputs, without recursion (any order);
    the nodes in `stop` are reached but not gone through (a subgraph's inputs)."""
    seen = set()
    ends = {id(n) for n in stop}
    stack = [n for n in roots if n is not None]
    out = []
    while stack:
        node = stack.pop()
        key = id(node)
        if key in seen:
            continue
        seen.add(key)
        out.append(node)
        if key not in ends:
            stack.extend(node.inputs)
    return out
