"""The recorder behind gg.compile's trace: what a function reads and writes besides the
ops it runs.

The function runs once, eagerly, with every op recorded (tracing mode). The recorder
collects what the op graph alone does not say: which leaf tensors the ops read (the
model's parameters, constants), the gradients `backward()` writes into `.grad`, the
values written back into tensors (an optimiser's update, `w -= ...`), the optimiser's
state, the scalars computed on the host on every step (learning rate, bias
corrections), and random draws — each of which a plan must redo on every run.
"""

import collections
import itertools
import sys
from contextlib import contextmanager

from ..errors import GpugradError
from ..mode import state, switch
from ..node import format_site, user_site

_GRAD_SET = ("a .grad accumulated into was None when traced and holds a gradient now "
             "(zero the gradients inside the function, or before every call)")
_GRAD_READ = ("a .grad read was None when traced and holds a gradient now (the plan did "
              "without it: zero the gradients inside the function, or before every call)")
_ARGUMENT_GRAD = ("a backward() into an argument traces anew at every call: compute it "
                  "with gg.grad(loss, [x]) inside the function and return it")


class CompileError(GpugradError, RuntimeError):
    """gg.compile cannot turn this function into a plan (the message says why)."""


class Feed:
    """How a plan gets the value of one of its leaves on each run.

    kind: "arg" (the function's i-th tensor argument), "tensor" (a tensor read by
    identity: its current values, e.g. a parameter), "grad" (the current .grad of a
    tensor), "state" (an optimiser's state array, through a getter), "scalar" (one value
    of a dict of host scalars computed on each run), "random" (a fresh draw), "const"
    (an array fixed at compile time).

    about: for drawings, what the value belongs to, as (tensor, text, fallback) with "{}"
    in text standing for the tensor's name: (w, "{}.exp_avg", "param 0") is drawn
    "MLP.0.weight.exp_avg", or "param 0.exp_avg" where no module call names w
    (gpugrad.viz.scopes.parameter_names; fallback None: no name then); None for values
    that need no name.
    """

    __slots__ = ("kind", "source", "key", "about")

    def __init__(self, kind, source, key=None, about=None):
        self.kind = kind
        self.source = source
        self.key = key
        self.about = about

    def __repr__(self):
        return f"<feed {self.kind}>"


class Recorder:
    """Collects a trace's reads and writes (see the module's docstring)."""

    def __init__(self, start_seq):
        self.start_seq = start_seq  # nodes older than this were made before the trace
        self.leaves = {}  # leaf Node -> the Tensor it stands for
        self.feeds = {}  # leaf Node -> Feed, for leaves with a source other than a tensor
        # the ordered host work of each run: ("feed", node), ("call", fn, undo),
        # ("scalars", fn, {key: node}, undo); undo (or None) takes the work back
        self.host = []
        self.grads = {}  # tensor -> the traced Tensor now in its .grad
        self.cleared = set()  # tensors whose .grad was set to None (zero_grad)
        self.cleared_first = []  # (host items before, tensor) of those cleared before
        # any op or other host work than first calls (see lower.HostUndo)
        self.ops = 0  # the ops recorded so far
        self.writes_from = None  # len(host) when the first write into a tensor was traced
        self.first_calls = 0  # how many host items are calls made before anything else
        self.assigns = {}  # tensor -> traced Tensor of its new values
        self.into_array = set()  # ids of those whose own array takes them (see assign)
        self.states = []  # (setter, traced Tensor, feed leaf Node or None)
        self.guards = []  # (getter, expected value, reason)
        self._assigned_leaves = set()
        self.differentiated = False  # whether a backward ran inside the function
        self.arguments = set()  # ids of the tensors passed as arguments (traced as copies)
        self.argument_copies = set()  # ids of those copies
        self.graph_arguments = {}  # id of the copy -> (copy, words naming an argument
        # that carries a graph from outside; see differentiating)
        # id -> (tensor, its array as made) of the tensors the function made itself
        # (gg.zeros, gg.tensor, ...): new at every eager call, so a plan feeds each
        # run that array, never what the previous run left in the tensor - unless
        # something outside still holds one after the call (see settle_created)
        self.created = {}
        self._created_writes = {}  # id -> (latest value, len(host) then) of those
        self._created_guards = {}  # id -> (tensor, reason): .grad guards left out
        self.single_use = False  # a guard that never holds again: the plan serves no run
        self._guard_keys = set()
        # trace Node -> strides of the array it made, where that array was not row-major
        # (a transpose, an op over one): the memory plan writes an op's result into a
        # buffer only of the layout eager mode gave it (see memory.same_layout)
        self.layouts = {}

    # --- reads ---------------------------------------------------------------------------
    def note_leaves(self, args):
        """The tensors an op read: remember those that enter the trace as leaves."""
        start = self.start_seq
        self.ops += 1
        for a in args:
            node = a._node
            if node.op.is_leaf or node.seq < start:
                if id(a) in self.arguments:
                    raise CompileError(
                        f"the function reads a tensor it was also given as an argument "
                        f"directly (at {format_site(user_site(3))}); a plan reads each "
                        "argument from the call: use the argument, or leave it out of "
                        "the call")
                if node in self._assigned_leaves:
                    raise CompileError(
                        f"the function reads a tensor after updating it in place (at "
                        f"{format_site(user_site(3))}); a compiled step may update a "
                        "tensor in place only as its last use")
                if node not in self.leaves:
                    self.leaves[node] = a

    def note_output(self, tensor):
        """An op made tensor: remember its array's layout where it is not row-major."""
        flags = getattr(tensor._data, "flags", None)  # (the standard's arrays have none)
        if flags is not None and not flags.c_contiguous and tensor._node is not None:
            self.layouts[tensor._node] = tensor._data.strides

    def host_read(self, tensor):
        raise CompileError(
            f"the function reads a tensor's values on the host (.numpy(), .item(), "
            f"np.asarray(), float(), bool(), print(), ... at {format_site(user_site(2))}); "
            "inside gg.compile a value is only known when the plan runs: return the tensor "
            "and read it after the call")

    def read_grad(self, owner, g):
        """owner.grad (g) was read inside the function. A gradient from before the call
        (zero_grad never ran, or backward happened in another function) is a leaf that
        every run reads from owner.grad anew: the tensor itself, so that each of the
        function's uses of it (an optimiser's, a returned `old = w.grad`) reads it.
        None from before the call is a guard: what the function did without that
        gradient (an optimiser skipping the parameter) holds only while it is None."""
        if g is None:
            self.guard_none_grad(owner, _GRAD_READ)
            return
        node = g._node
        if node is not None and not node.op.is_leaf and node.seq >= self.start_seq:
            return  # a value of this trace
        if self.grads.get(owner) is g or node in self.feeds:
            return
        self.feed(g, "grad", owner, about=(owner, "{}.grad", None))
        self.guard(lambda t=owner: t.grad is not None and t.grad.shape,
                   "a .grad read or accumulated into changed from None or in shape",
                   key=("grad read", id(owner)))

    def guard_none_grad(self, owner, reason):
        """owner.grad is None at the call's start, as when traced (unless the function
        itself cleared or set it, or owner is an argument's copy, never read again)."""
        if owner in self.cleared or owner in self.grads or id(owner) in self.argument_copies:
            return
        if id(owner) in self.created:  # made by the function: None at each call
            self._created_guards.setdefault(id(owner), (owner, reason))
            return
        self.guard(lambda t=owner: t.grad is None, reason, key=("grad was None", id(owner)))

    def grad_assigned(self, owner, value):
        """owner.grad = value inside the function: None clears it (as zero_grad does);
        a tensor is this trace's gradient from then on, not one from before the call."""
        if value is None:
            if not (self.ops or len(self.host) > self.first_calls or self.grads
                    or owner in self.cleared or id(owner) in self.argument_copies):
                # before any op or host work (zero_grad first): then a run that fails
                # anywhere before its writes leaves this .grad None too, as eager does
                self.cleared_first.append((len(self.host), owner))
            self.cleared.add(owner)
            self.grads.pop(owner, None)
        else:
            self.grads[owner] = value

    def made(self, tensor):
        """tensor was made inside the function (see self.created). Its array stays as
        made: an in-place update inside the trace gives the tensor a new one (assign)."""
        self.created[id(tensor)] = (tensor, tensor._data)

    def settle_created(self, results):
        """After the function returned: a tensor it made that something else still holds
        (stored on an object, in a global) lives on between calls, as in eager mode, so
        a plan reads it as any tensor, writes its in-place updates back, and guards its
        .grad. Only a tensor nothing but the trace holds is made anew at every run.
        Decided by counting references: one the trace cannot account for keeps the
        tensor alive, which is always a correct reading (only a slower one)."""
        ours = collections.Counter(id(t) for t in self.leaves.values())
        ours.update(id(t) for t in self.grads)
        ours.update(id(t) for t in self.cleared)
        ours.update(id(t) for _, t in self.cleared_first)
        ours.update(id(t) for t in results)  # the flat list, and each one's container:
        ours.update(id(t) for t in results)  # (the result itself where it is one tensor)
        for key, (tensor, _) in list(self.created.items()):
            # references: the entry here, `tensor` and getrefcount's own argument
            if sys.getrefcount(tensor) > 3 + ours[key]:
                self._lives_on(key, tensor)

    def _lives_on(self, key, tensor):
        """A tensor the function made turns out to outlive the call: read and written
        as any tensor the function uses."""
        del self.created[key]
        write = self._created_writes.pop(key, None)
        if write is not None:
            value, position = write
            self.assigns[tensor] = value
            self.writes_from = position if self.writes_from is None else \
                min(self.writes_from, position)
            tensor._node = None  # a leaf again after the call, as eager's update leaves it
        guard = self._created_guards.pop(key, None)
        if guard is not None:
            owner, reason = guard
            self.guards.append((lambda t=owner: t.grad is None, True, reason))

    def random(self, tensor, draw):
        """A tensor of random numbers made inside the function: drawn anew on every run."""
        self.host.append(("feed", self.feed(tensor, "random", draw)))

    def feed(self, tensor, kind, source, key=None, about=None):
        """Make `tensor` a leaf whose value comes from `source` on every run (about: see
        Feed)."""
        from ..ops.registry import node_of

        node = node_of(tensor)
        self.leaves[node] = tensor
        self.feeds[node] = Feed(kind, source, key, about)
        return node

    def scalars(self, compute, example, specs, undo=None, about=None):
        """0-d tensors of host scalars that `compute()` returns as a dict, computed anew
        on every run (a learning rate a scheduler changes, a bias correction); specs:
        {key: (dtype, device)} of each tensor; undo() takes back what compute() changed
        (a step counter), for a run that fails before it changed any tensor; about:
        {key: what the scalar belongs to} (see Feed), where known."""
        from ..backends import device as as_device
        from ..tensor import Tensor

        nodes, tensors = {}, {}
        for key, value in example.items():
            dtype, device = specs[key]
            device = as_device(device)
            t = Tensor._wrap(device.backend.full((), value, dtype), dtype, device, False)
            nodes[key] = self.feed(t, "scalar", compute, key, (about or {}).get(key))
            tensors[key] = t
        self.host.append(("scalars", compute, nodes, undo))
        return tensors

    def guard(self, getter, reason, key=None):
        """A value the plan was made for: when getter() returns something else, the
        function is traced anew (reason says what changed). One guard per key."""
        if key is not None:
            if key in self._guard_keys:
                return
            self._guard_keys.add(key)
        self.guards.append((getter, getter(), reason))

    def differentiating(self, reached):
        """A backward() or gg.grad runs inside the function, over the nodes `reached`
        (those a backward() accumulates into). One that reaches an argument made by
        ops outside would eagerly go on into them (an encoder's weights); a plan stops
        at its arguments, so it is refused, before any gradient is stored."""
        self.differentiated = True
        if not self.graph_arguments:
            return
        arguments = {copy._node: words for copy, words in self.graph_arguments.values()
                     if copy._node is not None}
        for node in reached:
            if node in arguments:
                raise CompileError(
                    f"{arguments[node]} carries a graph from outside the function: a "
                    "compiled function's backward() stops at its arguments, so the tensors "
                    "that made it would get no gradient; make it inside the function, or "
                    "pass it .detach()ed")

    # --- writes --------------------------------------------------------------------------
    def accumulate_grad(self, tensor, g):
        """backward() adds g into tensor.grad."""
        from ..ops import elementwise as ew
        from ..ops.registry import node_of
        from ..tensor import Tensor

        if id(tensor) in self.argument_copies:
            # A plan stores gradients into the tensors it was traced with; an argument
            # is another tensor at every call: such a plan is never reused.
            self.single_use = True
            self.guard(itertools.count().__next__, _ARGUMENT_GRAD,
                       key=("argument grad", id(tensor)))
        elif tensor._grad is None:  # (guarded here first, to say "accumulated into")
            self.guard_none_grad(tensor, _GRAD_SET)
        prev = tensor.grad  # a gradient from before the call is fed (see read_grad)
        if g._node is None or g._node.op.is_leaf:
            self.leaves.setdefault(node_of(g), g)
        total = g if prev is None else ew.add(prev, g)
        # The trace's gradient keeps its node, so that ops reading .grad later in the
        # function (an optimiser) are recorded as reading it.
        # (Assigning .grad tells grad_assigned: it is this trace's gradient from now on.)
        tensor.grad = Tensor._wrap(total._data, total._dtype, total._device,
                                   total._requires_grad, total._node)  # create_graph

    def host_call(self, fn, undo=None):
        """fn() is host work the function did (a scheduler's step): each run does it
        again, in the function's order; undo() takes it back (see scalars)."""
        if not self.ops and len(self.host) == self.first_calls:
            self.first_calls += 1  # before any op: eager mode did it whatever fails later
        self.host.append(("call", fn, undo))

    def assign(self, tensor, value, into_array=False):
        """tensor's values become value's (an in-place update): as a new array, as an
        eager x += 1 gives it, or written into its array (into_array: an optimiser's
        step, which views and tensors sharing the array, nn.Parameter(w), follow)."""
        from ..ops.registry import node_of

        leaf = tensor._node
        if (leaf is not None and not leaf.op.is_leaf and leaf.seq >= self.start_seq) or \
                id(tensor) in self.created:
            # A value of this trace (a .grad backward made, say, or a tensor the function
            # made): it now stands for the new value, for every later reader and sink, as
            # its array does in eager mode; nothing outlives the run.
            if (tensor._requires_grad and not value._requires_grad and leaf is not None
                    and not leaf.op.is_leaf):
                raise CompileError(
                    f"an in-place update under no_grad of a tensor that requires grad (at "
                    f"{format_site(user_site(3))}): eager mode gives it the new values but "
                    "keeps its gradient's old graph, which a plan cannot hold apart; "
                    "compute a new tensor instead (y = y + 1)")
            if id(tensor) in self.created:
                previous = self._created_writes.get(id(tensor))
                self._created_writes[id(tensor)] = (
                    value, previous[1] if previous else len(self.host))
            tensor._data, tensor._node = value._data, value._node
            if value._requires_grad:  # acc = gg.zeros(2); acc += w * 3: as in eager
                tensor._requires_grad = True
            tensor._mark_replaced()
            return
        if leaf is not None:
            self._assigned_leaves.add(leaf)
        self._writing()
        self.assigns[tensor] = value
        if value._node is None:
            self.leaves.setdefault(node_of(value), value)
        if into_array:  # (so does each run: in place, or copied at its end)
            self.into_array.add(id(tensor))
            tensor._data[...] = value._data
            tensor._mark_modified()
        else:  # as eager updates giving a new array do (so do runs)
            tensor._data = value._data
            tensor._mark_replaced()

    def state(self, setter, value, feed_node=None):
        """An optimiser's new state array: setter(array) stores it after each run."""
        self._writing()
        self.states.append((setter, value, feed_node))
        setter(value._data)

    def _writing(self):
        """A write into a tensor (or optimiser state) is traced: host work recorded
        from now on came after it in the function (see program.split_host)."""
        if self.writes_from is None:
            self.writes_from = len(self.host)

    # --- the trace -----------------------------------------------------------------------
    def grad_sinks(self):
        """(tensor, traced Tensor or None) for every .grad the function left set."""
        out = []
        for tensor, g in self.grads.items():
            if tensor.grad is g:
                out.append((tensor, g))
            elif tensor.grad is None:
                out.append((tensor, None))
        for tensor in self.cleared:
            if tensor not in self.grads and tensor.grad is None:
                out.append((tensor, None))
        return out


@contextmanager
def capturing(recorder):
    """Record every op, and the reads and writes above, inside the block."""
    if state.capture is not None:
        raise CompileError("gg.compile: a compiled function cannot be traced inside another "
                           "one's trace")
    with switch("tracing", True), switch("capture", recorder):
        yield recorder
