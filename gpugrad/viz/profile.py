"""gg.profile(): time and memory per op, forward and backward, onto the graph's nodes.

While a profile is active every kernel in the registry runs inside a timer (on CUDA the
device is synchronised around it, so the numbers are the kernel's, not the launch's);
each recorded node gets meta["time"] (forward seconds), meta["backward_time"] (its VJP,
the ops it dispatches included) and meta["bytes"] (its output). Nothing of this costs
anything when no profile is active: the kernels are wrapped on entry and restored on
exit.
"""

import threading
import time
from contextlib import contextmanager

from ..mode import switch
from ..ops.registry import REGISTRY

_timing = threading.local()


class Profile:
    """What ran inside `with gg.profile() as prof:`; see table() and critical_path()."""

    def __init__(self):
        self.records = []  # dicts: op, phase, seconds, bytes, node (or None)
        self.wall = 0.0
        self.in_backward = False  # ops run by VJPs count in their node's backward time

    # --- fed by dispatch and the scheduler ----------------------------------------------
    def forward(self, op, result):
        seconds = getattr(_timing, "last", 0.0)
        _timing.last = 0.0
        if self.in_backward:
            return
        nbytes = result._data.size * result.dtype.itemsize
        node = result._node
        if node is not None:
            meta = node.meta if node.meta is not None else {}
            meta.update(time=seconds, bytes=nbytes)
            node.meta = meta
        self.records.append({"op": op.display_name, "phase": "forward", "seconds": seconds,
                             "bytes": nbytes, "node": node})

    def backward(self, node, seconds):
        meta = node.meta if node.meta is not None else {}
        meta["backward_time"] = seconds
        node.meta = meta
        self.records.append({"op": node.name, "phase": "backward", "seconds": seconds,
                             "bytes": 0, "node": node})

    # --- reading it ---------------------------------------------------------------------
    def totals(self):
        """{op name: {"calls", "forward", "backward", "bytes"}} (seconds, bytes)."""
        out = {}
        for r in self.records:
            row = out.setdefault(r["op"], {"calls": 0, "forward": 0.0, "backward": 0.0,
                                           "bytes": 0})
            if r["phase"] == "forward":
                row["calls"] += 1
                row["forward"] += r["seconds"]
                row["bytes"] += r["bytes"]
            else:
                row["backward"] += r["seconds"]
        return out

    def table(self, limit=20):
        """The ops sorted by time (forward + backward), as text."""
        rows = sorted(self.totals().items(),
                      key=lambda kv: -(kv[1]["forward"] + kv[1]["backward"]))[:limit]
        lines = [f"{'op':<26}{'calls':>7}{'forward ms':>12}{'backward ms':>13}{'MB out':>9}"]
        for name, r in rows:
            lines.append(f"{name:<26}{r['calls']:>7}{r['forward'] * 1e3:>12.3f}"
                         f"{r['backward'] * 1e3:>13.3f}{r['bytes'] / 1e6:>9.2f}")
        timed = sum(r["seconds"] for r in self.records)
        lines.append(f"kernels and VJPs: {timed * 1e3:.3f} ms of {self.wall * 1e3:.3f} ms "
                     "wall time inside the profile")
        return "\n".join(lines)

    def critical_path(self, graph):
        """The chain of nodes of `graph` that took longest (forward time), as node ids."""
        import networkx as nx

        weights = {seq: (graph.node(seq).meta or {}).get("time", 0.0) for seq in graph}
        g = graph.nx.copy()
        for a, b in g.edges:
            g.edges[a, b]["weight"] = weights[b]
        return nx.dag_longest_path(g, weight="weight")


def _timed(kernel):
    def run(xp, *arrays, **attrs):
        sync = getattr(_timing, "sync", None)
        if sync is not None:
            sync()
        start = time.perf_counter()
        out = kernel(xp, *arrays, **attrs)
        if sync is not None:
            sync()
        _timing.last = time.perf_counter() - start
        return out

    run.__wrapped__ = kernel
    return run


def _wrap_all():
    saved = {}
    for op in REGISTRY.values():
        saved[op] = (op.forward, dict(op.kernels))
        op.forward = _timed(op.forward)
        op.kernels = {k: _timed(v) for k, v in op.kernels.items()}
    return saved


@contextmanager
def profile(device=None):
    """Profile what runs inside the block; yields the Profile. On a CUDA device, pass it
    (or rely on the default device) so kernels are timed to completion."""
    from ..backends import device as as_device

    dev = as_device(device)
    prof = Profile()
    saved = _wrap_all()
    _timing.sync = dev.backend.synchronize if dev.type == "cuda" else None
    start = time.perf_counter()
    try:
        with switch("profiler", prof):
            yield prof
    finally:
        prof.wall = time.perf_counter() - start
        for op, (forward, kernels) in saved.items():
            op.forward, op.kernels = forward, kernels
