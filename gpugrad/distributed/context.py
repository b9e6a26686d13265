"""init(): this process's place in the job (rank, world size, local rank), its device, and
the communicators it uses, from the environment that mpiexec sets up."""

import os

import numpy as np

from .errors import DistributedError
from .mpi import HostStagedComm, MPIComm

DEFAULT_TIMEOUT = 300.0  # seconds a collective may wait for the other ranks

_context = None


class Context:
    """This process in a distributed job: `rank` of `world_size`, `local_rank` of the
    `local_size` ranks on its node, the `device` it computes on, the collective `timeout`,
    and `mpi` (an MPIComm).
    """

    def __init__(self, mpi, local_rank, local_size, device, timeout):
        self.mpi, self.device, self.timeout = mpi, device, timeout
        self.local_rank, self.local_size = local_rank, local_size
        self.rank, self.world_size = mpi.rank, mpi.size
        self._comms = {}

    @property
    def is_main(self):
        """Rank 0: the one that prints and writes files."""
        return self.rank == 0

    def comm_for(self, device):
        """The communicator for arrays on `device`: NCCL for CUDA where it is installed
        (else MPI through host copies), MPI for the CPU."""
        comm = self._comms.get(device)
        if comm is None:
            comm = self._comms[device] = _make_comm(self.mpi, device, self.local_size)
        return comm

    def sum(self, values, what="sum"):
        """Element-wise sums over the ranks of a few numbers (float64, on the host)."""
        return self.mpi.allreduce(np.array(values, np.float64), what)

    def agreed_seed(self, seed):
        """`seed`, or when None one drawn on rank 0 (following gg.manual_seed) and shared,
        so that every rank shuffles alike."""
        if seed is not None:
            return seed
        from ..backends import host_generator

        drawn = np.array([host_generator().integers(2**63)], np.int64)
        return int(self.mpi.broadcast(drawn, 0, "sharing a seed")[0])

    def abort(self, code=1):
        self.mpi.abort(code)

    def __repr__(self):
        return (f"Context(rank={self.rank}, world_size={self.world_size}, "
                f"local_rank={self.local_rank}, local_size={self.local_size}, "
                f"device={self.device})")


def _make_comm(mpi, device, local_size):
    if device.type == "cpu":
        return mpi
    if device.type == "cuda":
        from .. import cuda
        from .nccl import NCCLComm, nccl_available

        # NCCL wants a GPU of its own for every rank; ranks sharing one go through MPI
        if nccl_available() and local_size <= cuda.device_count():
            return NCCLComm(mpi, device.index or 0)
        return HostStagedComm(mpi, device.backend)
    raise DistributedError(f"distributed training runs on 'cpu' and 'cuda' devices, not "
                           f"{device}")


def init(device=None, timeout=None, excepthook=True):
    """Join the job that mpiexec started (a job of one without mpiexec) and return its
    Context; a second call returns the same one.

    device: "cpu", "cuda" (each rank takes GPU local_rank modulo the GPUs on its node),
    "cuda:N", or None for GPUGRAD_DEVICE / auto. It becomes the default device.
    timeout: seconds a collective may wait for the other ranks before the job ends
    (default GPUGRAD_DIST_TIMEOUT, else 300).
    excepthook: end the whole job, naming this rank, on an uncaught exception (otherwise
    the other ranks would wait for this one until their timeout).
    """
    global _context
    if _context is not None:
        return _context
    mpi = MPIComm(timeout=_timeout(timeout))
    local_rank, local_size = _place_on_node(mpi)
    dev = _pick_device(device, local_rank)
    _context = Context(mpi, local_rank, local_size, dev, mpi.timeout)
    if excepthook:
        from .failure import install_excepthook

        install_excepthook(_context)
    return _context


def get_context():
    """The Context of init(); DistributedError before it."""
    if _context is None:
        raise DistributedError("gpugrad.distributed.init() has not been called")
    return _context


def is_initialized():
    return _context is not None


def _context_or_none():
    return _context


def rank():
    """This process's rank; 0 outside a distributed job."""
    return _context.rank if _context is not None else 0


def world_size():
    """The number of processes; 1 outside a distributed job."""
    return _context.world_size if _context is not None else 1


def is_main_process():
    """True on rank 0, and outside a distributed job."""
    return rank() == 0


def _timeout(timeout):
    if timeout is None:
        text = os.environ.get("GPUGRAD_DIST_TIMEOUT", "").strip()
        try:
            timeout = float(text) if text else DEFAULT_TIMEOUT
        except ValueError:
            raise ValueError(f"GPUGRAD_DIST_TIMEOUT must be a number of seconds, got "
                             f"{text!r}") from None
    if not timeout > 0:
        raise ValueError(f"the collective timeout must be positive, got {timeout}")
    return float(timeout)


def _place_on_node(mpi):
    """(local rank, local size): this process among those sharing its node's memory (a
    blocking collective, but made once, at start, when every rank is calling init())."""
    node = mpi.comm.Split_type(mpi.MPI.COMM_TYPE_SHARED)
    try:
        return node.Get_rank(), node.Get_size()
    finally:
        node.Free()


def _pick_device(spec, local_rank):
    import gpugrad as gg

    spec = (spec or os.environ.get("GPUGRAD_DEVICE", "auto")).strip().lower() or "auto"
    if spec == "auto":
        spec = "cuda" if gg.cuda.is_available() else "cpu"
    dev = gg.device(spec)
    if dev.type == "cuda" and ":" not in spec:  # one GPU per rank on each node
        dev = gg.device(f"cuda:{local_rank % max(1, gg.cuda.device_count())}")
    gg.set_default_device(dev)  # fails here, with gpugrad's reason, if it is unusable
    if dev.type == "cuda":
        import cupy

        cupy.cuda.Device(dev.index).use()  # NCCL and new buffers go to this rank's GPU
    return dev

