"""gpugrad.distributed: data-parallel training over MPI (the CPU, and launching) and NCCL
(GPUs, through CuPy).

    mpiexec -n 4 python train.py          # one process per GPU, or per core on a CPU

    import gpugrad.distributed as dist
    ctx = dist.init()                     # rank, world_size, local_rank, device
    model = dist.DistributedDataParallel(model)      # same shapes checked, rank 0's values
    loader = dist.DistributedDataLoader(x, y, batch_size=256, shuffle=True, seed=0)
    for xb, yb in loader:                 # this rank's share of each global batch of 256
        opt.zero_grad()
        model.backward(F.cross_entropy(model(xb), yb))  # backward, then average gradients
        opt.step()
    dist.save(model.state_dict(), "model.npz")        # rank 0 writes; dist.print0 speaks

mpi4py is imported on init(), never by `import gpugrad`; without it, init() raises an
ImportError naming the `distributed` extra. A rank that raises ends the whole job with
"rank R: <error>" (an excepthook, and abort_on_error() around code that catches its own
errors); collectives time out after GPUGRAD_DIST_TIMEOUT seconds (default 300) instead
of waiting forever for a rank that stopped.
"""

from .context import (  # noqa: F401
    Context,
    get_context,
    init,
    is_initialized,
    is_main_process,
    rank,
    world_size,
)
from .ddp import (  # noqa: F401
    DistributedDataParallel,
    DistributedOptimizer,
    broadcast_parameters,
    check_same_parameters,
)
from .errors import (  # noqa: F401
    CollectiveTimeout,
    DistributedError,
    ModelMismatchError,
    MPIUnavailableError,
)
from .failure import abort_on_error  # noqa: F401
from .launch import find_mpiexec  # noqa: F401
from .rank0 import print0, save  # noqa: F401
from .sampler import DistributedDataLoader, DistributedSampler, shard_bounds  # noqa: F401
