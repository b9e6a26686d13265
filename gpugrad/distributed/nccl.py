"""Collectives over NCCL, through CuPy's bindings (cupy.cuda.nccl): the GPU path.

One process drives one GPU. Rank 0 makes NCCL's unique id and sends it to the others over
MPI; every rank then joins the NCCL communicator. Collectives are queued on the current
CUDA stream, behind the kernels that computed the gradients, so no explicit
synchronisation is needed before them; completion is polled through a CUDA event against
a deadline (NCCL, like MPI, would otherwise wait forever for a rank that stopped), and on
a timeout the NCCL communicator is aborted before the error is raised.
"""

import numpy as np

from .errors import DistributedError
from .mpi import DeviceComm, wait_for

ID_BYTES = 128  # NCCL_UNIQUE_ID_BYTES


def load_nccl():
    """cupy.cuda.nccl, or a DistributedError saying what to install."""
    try:
        from cupy.cuda import nccl
    except ImportError as exc:
        raise DistributedError(f"NCCL through CuPy is not importable ({exc})") from exc
    if not getattr(nccl, "available", False) or not hasattr(nccl, "NcclCommunicator"):
        raise DistributedError("CuPy cannot load the NCCL library; install the one for "
                               "your CUDA, e.g. pip install nvidia-nccl-cu13")
    return nccl


def nccl_available():
    try:
        load_nccl()
    except DistributedError:
        return False
    return True


# CuPy 14 hands the unique id out as bytes; earlier releases as a tuple of 128 signed
# chars. Both travel as 128 raw bytes plus one byte saying which form to rebuild.
def id_to_bytes(unique_id):
    if isinstance(unique_id, bytes):
        return b"\x01" + unique_id
    return b"\x00" + bytes(b & 0xFF for b in unique_id)


def id_from_bytes(raw):
    body = bytes(raw[1:1 + ID_BYTES])
    if raw[0] == 1:
        return body
    return tuple(b - 256 if b > 127 else b for b in body)


def nccl_dtype(nccl, dtype):
    names = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64",
             "int32": "NCCL_INT32", "int64": "NCCL_INT64", "uint8": "NCCL_UINT8"}
    name = names.get(np.dtype(dtype).name)
    if name is None:
        raise DistributedError(f"NCCL cannot reduce arrays of {np.dtype(dtype)}")
    return getattr(nccl, name)


class NCCLComm(DeviceComm):
    """Sum-allreduce and broadcast on CuPy arrays over NCCL; allgather, barrier and abort
    over the MPI communicator `mpi` it was built from."""

    name = "nccl"

    def __init__(self, mpi, device_index):
        import cupy

        self.nccl, self.cupy, self.mpi = load_nccl(), cupy, mpi
        self.rank, self.size, self.timeout = mpi.rank, mpi.size, mpi.timeout
        raw = np.zeros(1 + ID_BYTES, np.uint8)
        if self.rank == 0:
            raw[:] = np.frombuffer(id_to_bytes(self.nccl.get_unique_id()), np.uint8)
        mpi.broadcast(raw, 0, "sharing the NCCL id")
        with cupy.cuda.Device(device_index):
            self.comm = self.nccl.NcclCommunicator(self.size, id_from_bytes(raw.tobytes()),
                                                   self.rank)

    def _enqueued(self):
        """An event recorded behind what was just queued on the current stream."""
        event = self.cupy.cuda.Event(disable_timing=True)
        event.record(self.cupy.cuda.get_current_stream())
        return event

    def allreduce_start(self, buffer):
        ptr, stream = buffer.data.ptr, self.cupy.cuda.get_current_stream().ptr
        self.comm.allReduce(ptr, ptr, buffer.size, nccl_dtype(self.nccl, buffer.dtype),
                            self.nccl.NCCL_SUM, stream)
        return self._enqueued()

    def wait(self, event, what):
        def done():
            self.comm.check_async_error()  # raises NcclError if NCCL failed on its own
            return event.done

        try:
            wait_for(done, self.timeout, what)
        except Exception:  # a timeout, or NCCL's own error: this communicator is done
            self.comm.abort()  # frees NCCL's side, so the process can exit
            raise

    def broadcast(self, buffer, root=0, what="broadcast"):
        self.comm.bcast(buffer.data.ptr, buffer.size, nccl_dtype(self.nccl, buffer.dtype),
                        root, self.cupy.cuda.get_current_stream().ptr)
        self.wait(self._enqueued(), what)
        return buffer
