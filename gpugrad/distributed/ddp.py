"""Data-parallel training: every rank holds the same model, computes gradients on its own
share of each global batch, and the ranks average those gradients before each step, so
every rank takes the same step that one process would take on the whole global batch.

Gradients travel in buckets: flat buffers of up to `bucket_cap_mb` megabytes, each the
gradients of several consecutive parameters. One collective per bucket instead of one per
parameter saves the per-call latency of many small messages; capping the size bounds the
extra memory, and lets the next bucket be packed while the previous one is on the wire.

The average is weighted by the samples each rank saw since the last sync or zero_grad
(counted from the first dimension of the model's input in grad mode), and each bucket carries that
count along, so a rank with a smaller (or empty) share of a short final batch counts for
what it holds: for a loss that is a mean over the batch, the result is exactly the
gradient of the mean over the global batch.
"""

import json
import time

from ..compiler.capture import CompileError
from ..mode import is_grad_enabled, state
from ..ops.custom import CustomOp
from ..tensor import Tensor
from .context import get_context, init, is_initialized
from .errors import DistributedError, ModelMismatchError

DEFAULT_BUCKET_MB = 25.0


# --- buckets -------------------------------------------------------------------------------
class Bucket:
    """Consecutive parameters of one device and dtype, and the flat buffer that carries
    their gradients: [gradients..., sample count, one has-a-gradient flag per parameter].
    """

    def __init__(self, params):
        self.params = params
        self.spans, start = [], 0
        for p in params:
            self.spans.append((start, start + p._data.size))
            start += p._data.size
        self.size = start
        backend = params[0].device.backend
        self.backend, self.xp = backend, backend.xp
        self.flat = backend.full((start + 1 + len(params),), 0, params[0].dtype)

    @property
    def nbytes(self):
        return self.flat.nbytes

    def pack_gradients(self, weight):
        """Write weight * gradient for every parameter (zeros where it has none)."""
        self.pack([None if p.grad is None else p.grad._data for p in self.params], weight)

    def pack(self, grads, weight):
        """Write weight * grads[i] (arrays, or None for no gradient) and the flags."""
        flat, n = self.flat, self.size
        for i, (g, (a, b)) in enumerate(zip(grads, self.spans, strict=True)):
            if g is None:
                flat[a:b] = 0
                flat[n + 1 + i] = 0
            else:
                self.xp.multiply(g.reshape(-1), weight, out=flat[a:b])
                flat[n + 1 + i] = 1
        flat[n] = weight

    def unpack_gradients(self):
        """Set every parameter's .grad to its summed gradient over the summed weight; a
        parameter that had no gradient on any rank keeps none."""
        for p, g in zip(self.params, self.unpack(), strict=True):
            p.grad = None if g is None else Tensor._wrap(g, p.dtype, p.device, False)

    def unpack(self):
        """The averaged gradient arrays (None where no rank had one): fresh arrays, not
        views of the buffer, which the next sync overwrites (optimisers may keep the
        gradient itself, e.g. as SGD's first momentum)."""
        flat, n = self.flat, self.size
        total = float(flat[n])
        if total <= 0:
            raise DistributedError("no rank counted any samples since the last gradient "
                                   "sync: run the model's forward through the "
                                   "DistributedDataParallel wrapper, or pass num_samples")
        present = self.backend.to_host(flat[n + 1:])
        return [(flat[a:b] / total).reshape(p._data.shape) if seen else None
                for p, (a, b), seen in zip(self.params, self.spans, present, strict=True)]

    def pack_values(self):
        for p, (a, b) in zip(self.params, self.spans, strict=True):
            self.flat[a:b] = p._data.reshape(-1)

    def unpack_values(self):
        """Copy the buffer into the parameters' own arrays (in place: optimisers and
        other holders of the parameters see the new values)."""
        for p, (a, b) in zip(self.params, self.spans, strict=True):
            p._data[...] = self.flat[a:b].reshape(p._data.shape)
            p._mark_modified()


def make_buckets(params, cap_bytes):
    """Parameters, in order, cut into buckets of at most `cap_bytes` of gradients (a
    larger parameter gets a bucket of its own) and of one device and dtype each."""
    buckets, current, current_bytes = [], [], 0
    for p in params:
        nbytes = p._data.nbytes
        same_kind = not current or (p.device is current[0].device
                                    and p.dtype == current[0].dtype)
        if current and (not same_kind or current_bytes + nbytes > cap_bytes):
            buckets.append(Bucket(current))
            current, current_bytes = [], 0
        current.append(p)
        current_bytes += nbytes
    if current:
        buckets.append(Bucket(current))
    return buckets


# --- the start: same shapes, same values ---------------------------------------------------
def parameter_signature(named_params):
    """[[name, shape, dtype], ...]: what must agree across ranks."""
    return [[name, list(p.shape), str(p.dtype)] for name, p in named_params]


def mismatches(signatures):
    """Lines describing how each rank's signature differs from rank 0's (none: agreed)."""
    reference = {name: (shape, dtype) for name, shape, dtype in signatures[0]}
    lines = []
    for rank, signature in enumerate(signatures[1:], 1):
        own = {name: (shape, dtype) for name, shape, dtype in signature}
        for name in reference.keys() - own.keys():
            lines.append(f"rank {rank} has no parameter {name}")
        for name in own.keys() - reference.keys():
            lines.append(f"rank {rank} has a parameter {name} that rank 0 has not")
        for name in reference.keys() & own.keys():
            if own[name] != reference[name]:
                lines.append(f"{name} is {_spec(*own[name])} on rank {rank} but "
                             f"{_spec(*reference[name])} on rank 0")
        if not lines and [n for n, _, _ in signature] != [n for n, _, _ in signatures[0]]:
            lines.append(f"rank {rank} orders its parameters differently from rank 0")
    return sorted(lines)


def _spec(shape, dtype):
    return f"{tuple(shape)} {dtype}"


def check_same_parameters(named_params, comm):
    """ModelMismatchError, raised on every rank alike, unless all ranks hold parameters
    of the same names, shapes and dtypes."""
    mine = json.dumps(parameter_signature(named_params)).encode()
    signatures = [json.loads(raw) for raw in comm.allgather_bytes(mine, "comparing models")]
    problems = mismatches(signatures)
    if problems:
        raise ModelMismatchError("the ranks hold different models, so their gradients "
                                 "cannot be averaged: " + "; ".join(problems))


def broadcast_parameters(params, comm=None, root=0, buckets=None):
    """Give every rank the parameter values of rank `root`, in place."""
    params = list(params)
    if comm is None:
        comm = get_context().comm_for(params[0].device)
    for bucket in buckets or make_buckets(params, DEFAULT_BUCKET_MB * 2**20):
        if comm.rank == root:
            bucket.pack_values()
        comm.broadcast(bucket.flat, root, "broadcasting the parameters")
        bucket.unpack_values()


# --- the wrapper ------------------------------------------------------------------------------
class DistributedDataParallel:
    """A model replicated on every rank, whose gradients are averaged across the ranks.

    At construction it checks that every rank holds a model of the same parameter names,
    shapes and dtypes (ModelMismatchError otherwise) and copies rank 0's values to all.
    Calling it runs the model and counts the batch's samples; after backward,
    `sync_gradients()` (or `backward(loss)`, which does both) replaces every parameter's
    .grad with the average over the ranks, weighted by their sample counts. Everything
    else (parameters(), state_dict(), train(), ...) is the wrapped module's, so a state
    dict loads into the plain model.

    Buffers are not synchronised: BatchNorm1d's running statistics are each rank's own
    (taken over its share of each batch), and a state_dict() holds this rank's.

        ddp = DistributedDataParallel(model)
        for xb, yb in loader:                 # this rank's share of each global batch
            opt.zero_grad()
            ddp.backward(F.cross_entropy(ddp(xb), yb))
            opt.step()
    """

    def __init__(self, module, bucket_cap_mb=DEFAULT_BUCKET_MB, weighted=True,
                 context=None):
        params = module.parameters()
        if not params:
            raise ValueError("DistributedDataParallel needs a module with parameters")
        devices = {str(p.device) for p in params}
        if len(devices) > 1:
            raise DistributedError(f"the module's parameters are on several devices "
                                   f"({', '.join(sorted(devices))}); put them on one")
        self.module = module
        self.context = context or (get_context() if is_initialized() else init())
        self.comm = self.context.comm_for(params[0].device)
        self.weighted = weighted
        check_same_parameters(module.named_parameters(), self.comm)
        self.buckets = make_buckets(params, bucket_cap_mb * 2**20)
        broadcast_parameters(params, self.comm, buckets=self.buckets)
        self.samples = 0  # counted by forward calls since the last sync or zero_grad
        self.comm_seconds, self.syncs = 0.0, 0  # time in sync_gradients, for benchmarks
        self._ops = {}  # bucket index -> its averaging op, for compiled steps

    def __call__(self, *args, **kwargs):
        if is_grad_enabled() and args and hasattr(args[0], "shape") and args[0].shape:
            self.samples += args[0].shape[0]
        return self.module(*args, **kwargs)

    def __getattr__(self, name):  # only for what this wrapper does not define itself
        if name == "module":  # not set yet: __init__ failed or is still running
            raise AttributeError(name)
        return getattr(self.module, name)

    def sync_gradients(self, num_samples=None):
        """Average the parameters' gradients across the ranks, in place of .grad.

        num_samples: this rank's weight in the average; default, the samples its forward
        calls saw since the last sync (0 for a rank that skipped a step). With
        weighted=False every rank weighs the same."""
        started = time.perf_counter()
        weight = 1 if not self.weighted else \
            (self.samples if num_samples is None else num_samples)
        self.samples = 0
        if state.capture is not None:
            self._traced_sync(weight)
            return
        in_flight = []
        for i, bucket in enumerate(self.buckets):
            # pack the next bucket while the previous ones are on the wire
            bucket.pack_gradients(weight)
            in_flight.append((bucket, self.comm.allreduce_start(bucket.flat), i))
        for bucket, handle, i in in_flight:
            self.comm.wait(handle, f"averaging gradients (bucket {i + 1} of "
                                   f"{len(self.buckets)}, {bucket.nbytes:,} bytes)")
            bucket.unpack_gradients()
        self.comm_seconds += time.perf_counter() - started
        self.syncs += 1

    def _traced_sync(self, weight):
        """Inside gg.compile's trace: each bucket's average is one op whose kernel packs
        the gradient arrays, allreduces and unpacks them, so the plan averages on every
        run between its backward and its update. The weight is this trace's sample
        count: a plan is made per batch shape, so the count is the plan's own."""
        for i, bucket in enumerate(self.buckets):
            grads = [p.grad for p in bucket.params]
            if any(g is None for g in grads):
                raise CompileError("a compiled step of a DistributedDataParallel model "
                                   "needs a gradient for every parameter; "
                                   f"{sum(g is None for g in grads)} have none")
            averaged = self._average_op(bucket, i)(*grads, weight=weight)
            if not isinstance(averaged, tuple):
                averaged = (averaged,)
            for p, g in zip(bucket.params, averaged, strict=True):
                p.grad = g  # a value of the trace: what the plan stores in .grad

    def _average_op(self, bucket, index):
        op = self._ops.get(index)
        if op is not None:
            return op
        what = (f"averaging gradients (bucket {index + 1} of {len(self.buckets)}, "
                f"{bucket.nbytes:,} bytes)")

        def average(*grads, weight):
            started = time.perf_counter()
            bucket.pack(grads, weight)
            self.comm.wait(self.comm.allreduce_start(bucket.flat), what)
            self.comm_seconds += time.perf_counter() - started
            self.syncs += index == 0
            averaged = bucket.unpack()
            return averaged[0] if len(averaged) == 1 else tuple(averaged)

        op = self._ops[index] = CustomOp("gpugrad::average_gradients", average,
                                         differentiable=False, source="gpugrad.distributed",
                                         outputs=len(bucket.params))
        # A collective: every run must make the call, once per call in the function
        # (the passes neither fold nor merge it).
        op.effects = True
        return op

    def zero_grad(self):
        """The module's zero_grad(), and a new count of samples: a forward run before
        it (e.g. to draw the graph) does not weigh in the next average."""
        self.module.zero_grad()
        self.samples = 0

    def backward(self, loss):
        """loss.backward(), then sync_gradients()."""
        loss.backward()
        self.sync_gradients()

    def __repr__(self):
        return (f"DistributedDataParallel({self.module!r}, rank {self.context.rank} of "
                f"{self.context.world_size}, {len(self.buckets)} bucket(s) over "
                f"{self.comm.name})")


class DistributedOptimizer:
    """An optimiser whose step() first averages the gradients across the ranks (through
    a DistributedDataParallel), so an unchanged training loop trains data-parallel.
    Everything else (zero_grad, state_dict, param_groups, ...) is the wrapped one's."""

    def __init__(self, optimizer, ddp):
        if not isinstance(ddp, DistributedDataParallel):
            raise TypeError("DistributedOptimizer takes the DistributedDataParallel of the "
                            "model it trains")
        self.optimizer, self.ddp = optimizer, ddp

    def step(self):
        self.ddp.sync_gradients()
        self.optimizer.step()

    def zero_grad(self):
        self.optimizer.zero_grad()
        self.ddp.samples = 0  # a new step: forwards before it do not count

    def __getattr__(self, name):
        if name == "optimizer":
            raise AttributeError(name)
        return getattr(self.optimizer, name)
