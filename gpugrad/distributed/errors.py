"""The errors of distributed training, each a subclass of the built-in a user would catch."""

from ..errors import GpugradError


class DistributedError(GpugradError, RuntimeError):
    """Something went wrong between the processes of a distributed job."""


class CollectiveTimeout(DistributedError, TimeoutError):
    """A collective did not complete in time: another rank has stopped, died or is stuck."""


class ModelMismatchError(DistributedError, ValueError):
    """The ranks hold models of different shapes, so their gradients cannot be averaged."""


class MPIUnavailableError(GpugradError, ImportError):
    """mpi4py (or the MPI library under it) is missing."""
