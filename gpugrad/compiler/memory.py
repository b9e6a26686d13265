"""The memory plan: when each value's buffer can go, and which ops write into a buffer
that is free by then instead of allocating one.

A value's buffer is free after the last op that reads it — or reads a view of it: ops
that may return a view of an input (reshape, transpose, a custom op's kernel) extend
their input's life to their own output's. An op with an `out_kernel` (one elementwise
ufunc) writes into an input that dies at that op, when shapes and dtypes agree: on
NumPy and CuPy a chain of elementwise ops then runs in one buffer, in place — where the
buffer has the layout eager mode gives the result (a sum over it then adds in eager's
order: an op over a transpose and a row-major array is row-major). Values a
run hands out (results, gradients, new state) are never reused. The plan knows its
peak before it runs: the most bytes of the run's own buffers alive at once.
"""

import math

from .fusion import FUSED, scratch_buffers

# Ops whose output is always a new array (never a view of an input), besides the ops
# with an out_kernel: a buffer they read may be reused as soon as they ran. (getitem is
# not one: an int or slice index returns a view; scatter_add starts from new zeros.)
FRESH = frozenset({"gpugrad::matmul", "gpugrad::linear", "gpugrad::sum", "gpugrad::mean",
                   "gpugrad::max", "gpugrad::min", "gpugrad::cross_entropy",
                   "gpugrad::cross_entropy_backward", "gpugrad::tanh_backward",
                   "gpugrad::sigmoid_backward", "gpugrad::sigmoid",
                   "gpugrad::binary_cross_entropy", "gpugrad::where", "gpugrad::pow",
                   "gpugrad::cross_entropy_with_grad", "gpugrad::bias_act",
                   "gpugrad::scatter_add", "gpugrad::setitem"})
IN_PLACE_BACKENDS = ("numpy", "cupy")  # namespaces whose ufuncs take out=


class MemoryPlan:
    """out[node] = the value whose buffer node writes into (in place); free_after[node] =
    values whose buffers go once node ran; peak_bytes: the most bytes of the run's own
    buffers alive at once; allocated_bytes: what the run allocates in all."""

    def __init__(self):
        self.out = {}
        self.free_after = {}
        self.peak_bytes = 0
        self.allocated_bytes = 0
        self.in_place = 0

    def __repr__(self):
        return (f"<MemoryPlan: peak {self.peak_bytes:,} bytes, {self.in_place} ops in "
                f"place>")


def nbytes(node):
    return math.prod(node.shape) * node.dtype.itemsize


def writes_in_place(node):
    """An op that can write its result into a given buffer: one ufunc call (an
    out_kernel), or a fused chain of them."""
    return node.op.out_kernel is not None or node.op is FUSED


def fresh(node):
    return writes_in_place(node) or node.op.name in FRESH


def plan_memory(program):
    """Decide in-place writes and frees for the program's final node list."""
    ops = program.op_nodes()
    position = {id(n): i for i, n in enumerate(ops)}
    escaping = {id(n) for n in program.sink_nodes()}
    last = _last_reads(ops, escaping)
    plan = MemoryPlan()
    backend = program.backend()
    in_place_ok = backend is not None and backend.name in IN_PLACE_BACKENDS
    homes = _homes(program, last, position) if in_place_ok else {}
    taken = set()
    for i, node in enumerate(ops):
        target = None
        # 0-d values stay out: NumPy hands them out as scalars, which take no out=.
        if in_place_ok and writes_in_place(node) and not node.meta and node.shape:
            target = homes.get(id(node)) or _dying_input(node, i, last, escaping, taken,
                                                         program.layouts)
        if target is not None:
            plan.out[node] = target
            taken.add(id(target))
    for node in ops:
        end = last.get(id(node))
        if id(node) in escaping or end is None or end >= len(ops):
            continue
        plan.free_after.setdefault(ops[end], []).append(node)
    _count_bytes(plan, ops, escaping)
    for sink in program.sinks:
        if sink.home is not None and plan.out.get(sink.node) is sink.home:
            sink.in_place = True
    plan.in_place = len(plan.out)
    return plan


def _last_reads(ops, escaping):
    """Position of the last op reading each value, or a view of it (newest first, so a
    view's own end is known before its input's); values handed out live past the end."""
    last = {key: len(ops) for key in escaping}
    for i in range(len(ops) - 1, -1, -1):
        node = ops[i]
        end = i
        if not fresh(node):  # its output may be a view of its inputs: they live as long
            end = max(i, last.get(id(node), i))
        for inp in node.inputs:
            if last.get(id(inp), -1) < end:
                last[id(inp)] = end
    return last


def _dying_input(node, i, last, escaping, taken, layouts):
    """An input of node whose buffer node may overwrite: made by this run, not handed
    out, read for the last time here, of the output's shape, dtype and layout."""
    for inp in node.inputs:
        if (not inp.op.is_leaf and fresh(inp) and id(inp) not in escaping
                and id(inp) not in taken and last.get(id(inp)) == i
                and inp.shape == node.shape and inp.dtype is node.dtype
                and not inp.meta and same_layout(layouts, node, inp)
                and not _overlaps(node, inp)):
            return inp
    return None


def same_layout(layouts, a, b):
    """Whether the trace made a's and b's arrays (of one shape) with the same strides:
    writing a into b's buffer then gives a the layout eager mode gave it. (A ufunc over
    a transpose makes a column-major array; NumPy's sums add such an array in another
    order than a row-major one, which may change the last bit.)"""
    return layouts.get(a) == layouts.get(b)


def _overlaps(node, target):
    """Whether another input of node may be a view of target's buffer (a transpose of
    it, say): writing the output there would change elements still to be read (NumPy
    copies around such overlaps, CuPy's kernels do not)."""
    for inp in node.inputs:
        if inp is target:
            continue
        base = _view_base(inp)
        if base is None or base is target:
            return True
    return False


def _view_base(value):
    """The value whose buffer `value` may share: through view ops, their input; itself
    when it is a leaf or fresh; None where unknown (an op that may return a view of any
    of its inputs)."""
    while not value.op.is_leaf and not fresh(value):
        if not value.op.returns_view or not value.inputs:
            return None
        value = value.inputs[0]
    return value


def _homes(program, last, position):
    """Sinks written back into a leaf's buffer (a parameter's own array, the optimiser's
    old state): the op making the value writes there when the leaf has no reader after
    it."""
    homes = {}
    for sink in program.sinks:
        node, home = sink.node, sink.home
        # A home is a leaf: the tensor's own array (a value computed in the run, such as
        # a detach() of another value, shares that value's buffer instead).
        if (node is None or home is None or not home.op.is_leaf or node.op.is_leaf
                or sink.kind == "assign_arg"  # (an argument gets a new array: lower.py)
                or not writes_in_place(node) or _overlaps(node, home)):
            continue
        if home.shape != node.shape or home.dtype is not node.dtype:
            continue
        if last.get(id(home), -1) <= position[id(node)]:
            homes[id(node)] = home
    return homes


def _scratch_bytes(node, target):
    """Bytes an op allocates and frees within its own call (a fused chain's steps)."""
    if node.op is not FUSED:
        return 0
    steps = node.attrs["steps"]
    return scratch_buffers(steps, len(node.inputs), target is not None,
                           node.attrs.get("layouts")) * nbytes(node)


def _count_bytes(plan, ops, escaping):
    """Walk the schedule once: bytes alive after each op, and the most at once."""
    owner = {}  # id(value) -> id of the buffer it lives in
    users = {}  # buffer -> values alive in it
    alive = peak = total = 0
    for node in ops:
        target = plan.out.get(node)
        if target is not None and target.op.is_leaf:  # written into a tensor's own array
            buffer = ("leaf", id(target))
            users.setdefault(buffer, [0, 0])
        elif target is not None:
            buffer = owner.get(id(target))
        elif not fresh(node) and node.inputs and node.op.returns_view:
            buffer = owner.get(id(node.inputs[0]))
        else:
            buffer = None
        if buffer is None:
            buffer = id(node)
            size = nbytes(node)
            alive += size
            total += size
            users[buffer] = [size, 0]
        owner[id(node)] = buffer
        users[buffer][1] += 1
        peak = max(peak, alive + _scratch_bytes(node, target))
        for gone in plan.free_after.get(node, ()):
            buf = owner.get(id(gone))
            if buf is None:
                continue
            users[buf][1] -= 1
            if users[buf][1] == 0:
                alive -= users[buf][0]
    plan.peak_bytes = peak
    plan.allocated_bytes = total
