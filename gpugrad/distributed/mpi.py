"""Collectives over MPI (mpi4py), on host arrays: the CPU path, and the control plane of
every path (shape checks, seeds, small totals).

Every collective is non-blocking and polled against a deadline. MPI's blocking calls have
no timeout, so a rank that stopped would leave the others waiting forever; here they get
a CollectiveTimeout instead, which ends the job with a message (see failure.py).
"""

import time

import numpy as np

from .errors import CollectiveTimeout, MPIUnavailableError

# Poll flat out for this long: a training step's allreduce finishes well within it, and
# MPI progresses shared-memory transfers only inside its calls, so napping between polls
# would slow every step down. Past it, the wait is for a slow rank (rank 0 writing a
# checkpoint, say): nap, with growing pauses, so as not to take a core from it.
SPIN_SECONDS = 0.5
MAX_PAUSE = 1e-3


def load_mpi():
    """mpi4py's MPI module (importing it initialises MPI), or a clear error."""
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError) as exc:
        raise MPIUnavailableError(
            f"distributed training needs mpi4py and an MPI library ({exc}); install both "
            "with: pip install 'gpugrad[distributed]'") from exc
    return MPI


def wait_for(done, timeout, what):
    """Call `done()` until it returns true; CollectiveTimeout after `timeout` seconds."""
    start = time.monotonic()
    spin_until, deadline = start + SPIN_SECONDS, start + timeout
    pause = 0.0
    while not done():
        now = time.monotonic()
        if now > deadline:
            raise CollectiveTimeout(
                f"{what} did not complete within {timeout:g} s: another rank has stopped, "
                "died or is stuck (the limit is GPUGRAD_DIST_TIMEOUT, or init(timeout=...))")
        if now > spin_until:
            time.sleep(pause)
            pause = min(MAX_PAUSE, 2 * pause + 1e-5)


class MPIComm:
    """Sum-allreduce, broadcast, allgather and barrier over an MPI communicator, on
    contiguous NumPy arrays, each with a deadline."""

    name = "mpi"

    def __init__(self, comm=None, timeout=300.0):
        self.MPI = load_mpi()
        self.comm = self.MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.timeout = timeout

    def wait(self, request, what):
        wait_for(request.Test, self.timeout, what)

    def allreduce_start(self, buffer):
        """Start summing `buffer` in place across ranks; a handle for wait()."""
        return self.comm.Iallreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)

    def allreduce(self, buffer, what="allreduce"):
        self.wait(self.allreduce_start(buffer), what)
        return buffer

    def broadcast(self, buffer, root=0, what="broadcast"):
        """Overwrite `buffer` on every rank with root's."""
        self.wait(self.comm.Ibcast(buffer, root=root), what)
        return buffer

    def allgather_bytes(self, data, what="allgather"):
        """Every rank's `data` (bytes of any length), in rank order."""
        lengths = np.zeros(self.size, np.int64)
        self.wait(self.comm.Iallgather(np.array([len(data)], np.int64), lengths), what)
        counts = [int(n) for n in lengths]
        displacements = [sum(counts[:i]) for i in range(self.size)]
        received = np.empty(sum(counts), np.uint8)
        self.wait(self.comm.Iallgatherv(np.frombuffer(data, np.uint8),
                                        [received, counts, displacements, self.MPI.BYTE]),
                  what)
        return [received[d:d + n].tobytes() for d, n in zip(displacements, counts,
                                                              strict=True)]

    def barrier(self, what="barrier"):
        self.wait(self.comm.Ibarrier(), what)

    def abort(self, code=1):
        """End every process of the job now (MPI_Abort)."""
        self.comm.Abort(code)


class DeviceComm:
    """What the communicators of device arrays share: the blocking allreduce made of
    their non-blocking one, and the control collectives of the MPI communicator `mpi`
    beside them."""

    def allreduce(self, buffer, what="allreduce"):
        self.wait(self.allreduce_start(buffer), what)
        return buffer

    def allgather_bytes(self, data, what="allgather"):
        return self.mpi.allgather_bytes(data, what)

    def barrier(self, what="barrier"):
        self.mpi.barrier(what)

    def abort(self, code=1):
        self.mpi.abort(code)


class HostStagedComm(DeviceComm):
    """MPI collectives on device arrays, through host copies: for CUDA where NCCL is not
    installed (slower than NCCL, but the same results)."""

    name = "mpi (through the host)"

    def __init__(self, mpi, backend):
        self.mpi, self.backend = mpi, backend
        self.rank, self.size = mpi.rank, mpi.size

    def allreduce_start(self, buffer):
        host = np.ascontiguousarray(self.backend.to_host(buffer))
        return self.mpi.allreduce_start(host), host, buffer

    def wait(self, handle, what):
        request, host, buffer = handle
        self.mpi.wait(request, what)
        buffer[...] = self.backend.from_host(host, host.dtype)

    def broadcast(self, buffer, root=0, what="broadcast"):
        host = np.ascontiguousarray(self.backend.to_host(buffer))
        self.mpi.broadcast(host, root, what)
        buffer[...] = self.backend.from_host(host, host.dtype)
        return buffer
