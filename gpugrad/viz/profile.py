"""gg.profile(): time, memory and (opt-in) value and gradient statistics per op, forward
and backward, onto the graph's nodes.

While a profile is active every kernel in the registry runs inside a timer (on CUDA the
device is synchronised around it, so the numbers are the kernel's, not the launch's).
Each recorded node gets in its `meta`:

- "time": forward seconds; "backward_time": its VJP, the ops it dispatches included;
- "bytes": its output; "saved_bytes": what it keeps for its backward (see
  viz.memory.saved_bytes); "kernel_bytes": what its kernel allocated, where measured
  (memory=True; on CUDA by default: the memory pool's growth, which is cheap; on the host
  tracemalloc's peak during the kernel, output and temporaries, which slows every
  allocation while the profile runs);
- with stats=True, "stats" (its value) and "grad_stats" (the gradient of its output, all
  paths summed, as the backward pass reached it): min, max, mean, norm over the finite
  elements, counts of NaN, Inf and zeros (viz.stats). Parameters and other leaves get
  them too. Small dicts of Python numbers: no array is kept.

Nothing of this costs anything when no profile is active: the kernels are wrapped on
entry and restored on exit, and the dispatch and the scheduler call the profile only
while one is active.
"""

import threading
import time
import tracemalloc
from contextlib import contextmanager

from ..errors import GraphError
from ..mode import switch
from ..ops.registry import INPUT, REGISTRY
from .memory import nbytes, saved_bytes
from .stats import array_stats

_timing = threading.local()


class Profile:
    """What ran inside `with gg.profile() as prof:`; see table(), totals() and
    critical_path()."""

    def __init__(self, stats=False):
        self.records = []  # dicts: op, phase, seconds, bytes, saved_bytes, kernel_bytes, node
        self.wall = 0.0
        self.stats = stats  # record value and gradient statistics
        self.measures_memory = False  # kernel_bytes are measured
        self.in_backward = False  # ops run by VJPs count in their node's backward time
        self._leaves = set()  # leaves whose values were described in this profile

    # --- fed by dispatch and the scheduler ----------------------------------------------
    def forward(self, op, result, args=()):
        """After each kernel (dispatch's watch hook): the op's time and bytes."""
        seconds = getattr(_timing, "last", 0.0)
        allocated = getattr(_timing, "allocated", None)
        _timing.last, _timing.allocated = 0.0, None
        if self.in_backward:
            return
        out_bytes = nbytes(result._data.shape, result.dtype)
        node = result._node
        kept = 0
        if node is not None:
            kept = saved_bytes(node)
            meta = _meta(node)
            meta.update(time=seconds, bytes=out_bytes, saved_bytes=kept)
            if allocated is not None:
                meta["kernel_bytes"] = allocated
            if self.stats:
                xp = result._device.backend.xp
                meta["stats"] = array_stats(result._data, xp)
                self._describe_leaves(args)
        self.records.append({"op": op.display_name, "phase": "forward", "seconds": seconds,
                             "bytes": out_bytes, "saved_bytes": kept,
                             "kernel_bytes": allocated, "node": node})

    def backward(self, node, seconds, grad=None):
        """After each node's VJP (seconds), or as a leaf's gradient arrives (seconds None),
        from the scheduler; `grad` is the gradient of the node's output."""
        if seconds is not None:
            _meta(node)["backward_time"] = seconds
            self.records.append({"op": node.name, "phase": "backward", "seconds": seconds,
                                 "bytes": 0, "saved_bytes": 0, "kernel_bytes": None,
                                 "node": node})
        if self.stats and grad is not None:
            _meta(node)["grad_stats"] = array_stats(grad._data, grad._device.backend.xp)

    def _describe_leaves(self, args):
        """Value statistics of the leaves an op read (parameters, inputs), once each."""
        for arg in args:
            node = arg._node
            if node is not None and node.op is INPUT and node not in self._leaves:
                self._leaves.add(node)
                _meta(node)["stats"] = array_stats(arg._data, arg._device.backend.xp)

    # --- reading it ---------------------------------------------------------------------
    def totals(self):
        """{op name: {"calls", "forward", "backward", "bytes", "saved_bytes",
        "kernel_bytes"}} (seconds, bytes; kernel_bytes None where not measured)."""
        out = {}
        for r in self.records:
            row = out.setdefault(r["op"], {"calls": 0, "forward": 0.0, "backward": 0.0,
                                           "bytes": 0, "saved_bytes": 0,
                                           "kernel_bytes": None})
            if r["phase"] == "forward":
                row["calls"] += 1
                row["forward"] += r["seconds"]
                row["bytes"] += r["bytes"]
                row["saved_bytes"] += r["saved_bytes"] or 0
                if r["kernel_bytes"] is not None:
                    row["kernel_bytes"] = (row["kernel_bytes"] or 0) + r["kernel_bytes"]
            else:
                row["backward"] += r["seconds"]
        return out

    def table(self, limit=20):
        """The ops sorted by time (forward + backward), as text: calls, times, and the
        megabytes of their outputs, of what they saved for the backward, and (where
        measured) of what their kernels allocated."""
        rows = sorted(self.totals().items(),
                      key=lambda kv: -(kv[1]["forward"] + kv[1]["backward"]))[:limit]
        alloc = self.measures_memory
        lines = [f"{'op':<26}{'calls':>7}{'forward ms':>12}{'backward ms':>13}{'MB out':>9}"
                 f"{'MB saved':>10}" + (f"{'MB alloc':>10}" if alloc else "")]
        for name, r in rows:
            line = (f"{name:<26}{r['calls']:>7}{r['forward'] * 1e3:>12.3f}"
                    f"{r['backward'] * 1e3:>13.3f}{r['bytes'] / 1e6:>9.2f}"
                    f"{r['saved_bytes'] / 1e6:>10.2f}")
            if alloc:
                line += f"{(r['kernel_bytes'] or 0) / 1e6:>10.2f}"
            lines.append(line)
        timed = sum(r["seconds"] for r in self.records)
        lines.append(f"kernels and VJPs: {timed * 1e3:.3f} ms of {self.wall * 1e3:.3f} ms "
                     "wall time inside the profile")
        return "\n".join(lines)

    def __str__(self):
        return self.table()

    def critical_path(self, graph):
        """The chain of nodes of `graph` that took longest (forward time), as node ids.
        Raises GraphError where no node of `graph` was timed: any chain would do then."""
        import networkx as nx

        times = {seq: (graph.node(seq).meta or {}).get("time") for seq in graph}
        if all(t is None for t in times.values()):
            raise GraphError(_untimed(graph))
        weights = {seq: t or 0.0 for seq, t in times.items()}
        g = graph.nx.copy()
        for a, b in g.edges:
            g.edges[a, b]["weight"] = weights[b]
        return nx.dag_longest_path(g, weight="weight")


def _untimed(graph):
    """Why critical_path has nothing to go by."""
    text = "critical_path: no node of this graph was timed"
    if any("feed" in (graph.node(seq).meta or {}) for seq in graph):  # a compiled plan's
        return (text + ": it is a compiled function's graph (step.graph), and under "
                "gg.profile a compiled function runs eagerly, op by op, so that each op is "
                "timed; its plan never runs there. Pass the graph of what it returned "
                "inside the profile instead (loss.graph)")
    return (text + ": pass the graph of a tensor computed inside `with gg.profile() as "
            "prof:` (loss.graph)")


def _meta(node):
    if node.meta is None:
        node.meta = {}
    return node.meta


def _timed(kernel):
    def run(xp, *arrays, **attrs):
        sync = getattr(_timing, "sync", None)
        probe = getattr(_timing, "probe", None)
        if sync is not None:
            sync()
        if probe is not None:
            before = probe.start()
        start = time.perf_counter()
        out = kernel(xp, *arrays, **attrs)
        if sync is not None:
            sync()
        _timing.last = time.perf_counter() - start
        if probe is not None:
            _timing.allocated = probe.stop(before)
        return out

    run.__wrapped__ = kernel
    return run


class _HostAllocations:
    """A kernel's peak allocation on the host (output and temporaries), by tracemalloc,
    which NumPy reports its buffers to."""

    def __init__(self):
        self.owns = not tracemalloc.is_tracing()
        if self.owns:
            tracemalloc.start()

    def start(self):
        tracemalloc.reset_peak()
        return tracemalloc.get_traced_memory()[0]

    def stop(self, before):
        return max(0, tracemalloc.get_traced_memory()[1] - before)

    def close(self):
        if self.owns:
            tracemalloc.stop()


class _PoolAllocations:
    """What a kernel took from CuPy's memory pool (its used bytes' growth: the output
    and whatever else the kernel kept; temporaries it returned are not seen)."""

    def __init__(self):
        import cupy

        self.pool = cupy.get_default_memory_pool()

    def start(self):
        return self.pool.used_bytes()

    def stop(self, before):
        return max(0, self.pool.used_bytes() - before)

    def close(self):
        pass


def _probe(dev, memory):
    if memory is None:
        memory = dev.type == "cuda"  # cheap there; tracemalloc on the host is not
    if not memory:
        return None
    return _PoolAllocations() if dev.type == "cuda" else _HostAllocations()


def _wrap_all():
    """Every op's kernels, timed; returns what _unwrap_all needs to put them back."""
    saved = {}
    for op in REGISTRY.values():
        originals = dict(op.kernels)
        op.forward, forward = _timed(op.forward), op.forward
        op.kernels = {k: _timed(v) for k, v in originals.items()}
        saved[op] = forward, originals
    return saved


def _unwrap_all(saved):
    """The kernels back as they were, except those registered inside the block: a
    kernel or defvjp registered there replaced a timed one, and stays."""
    for op, (forward, originals) in saved.items():
        if getattr(op.forward, "__wrapped__", None) is forward:
            op.forward = forward
        for k, kernel in originals.items():
            if getattr(op.kernels.get(k), "__wrapped__", None) is kernel:
                op.kernels[k] = kernel


@contextmanager
def profile(device=None, stats=False, memory=None):
    """Profile what runs inside the block; yields the Profile. On a CUDA device, pass it
    (or rely on the default device) so kernels are timed to completion.

    stats=True also records each node's value statistics and, in a backward pass inside
    the block, its gradient's (min/max/mean/norm, NaN, Inf and zero counts): shown by
    summary(), to_dot(stats=True), to_json() and the HTML viewer. It costs a few passes
    over every output and gradient, inside the block only.
    memory: measure what each kernel allocates (kernel_bytes) — None: where that is cheap
    (CUDA), True: also on the host (tracemalloc: slower, times less exact), False: never.
    """
    from ..backends import device as as_device
    from ..mode import state

    if state.profiler is not None:
        # The inner one would take every record of its block, and the outer one, left
        # with none of them, would report those ops as never run.
        raise RuntimeError("gg.profile() inside another gg.profile(): the outer profile "
                           "records everything its block runs; use one of them")
    dev = as_device(device)
    prof = Profile(stats=stats)
    probe = _probe(dev, memory)
    prof.measures_memory = probe is not None
    saved = _wrap_all()
    outer = getattr(_timing, "sync", None), getattr(_timing, "probe", None)
    _timing.sync = dev.backend.synchronize if dev.type == "cuda" else None
    _timing.probe = probe
    start = time.perf_counter()
    try:
        with switch("profiler", prof):
            yield prof
    finally:
        prof.wall = time.perf_counter() - start
        _timing.sync, _timing.probe = outer
        if probe is not None:
            probe.close()
        _unwrap_all(saved)
