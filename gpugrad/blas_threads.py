"""How many threads NumPy's BLAS (OpenBLAS, MKL) runs a CPU training run's matrix products on.

A BLAS starts a thread per core and splits each product between them. On products as small
as an MLP's on the digits (64 x 64 by 64 x 256), splitting gains nothing: one thread ran
them as fast on 2 cores. And where another job keeps a core busy, the threads wait for each
other: `gpugrad train` on the digits fell from 56,000 to 9,300 samples/s beside one busy
process (to 900 beside a test suite), where one thread kept 22,000-33,000. Products of
256 x 784 by 784 x 512 (MNIST at batch 256) run 1.8x faster on 2 threads than on one, and
keep them.

So a CPU run whose largest product is small runs its BLAS on one thread, and processes of
a distributed run sharing a machine split its cores between them, unless the user chose:
--blas-threads N, or a thread variable set in the environment (read by the BLAS when NumPy
loads), which is left as it says.
"""

import itertools
import os
from contextlib import contextmanager

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

# Multiply-adds of a product below which one thread is as fast as two: measured on 2 cores,
# one thread took 0.95x the time of two at 2M (64 x 256 by 256 x 128), 1.2x at 34M (256 x 512
# by 512 x 256) and 1.76x at 103M (256 x 784 by 784 x 512).
SMALL_PRODUCT = 8_000_000


def largest_product(batch, sizes):
    """Multiply-adds of the largest matrix product of an MLP with layer `sizes` (inputs
    first) at `batch` samples: batch x fan_in x fan_out of its widest layer."""
    return max(batch * n_in * n_out for n_in, n_out in itertools.pairwise(sizes))


def chosen_threads(requested, device_type, product, ranks_here=1, environ=os.environ):
    """(threads or None, why): the BLAS threads of a run, one of `ranks_here` processes
    on this machine. None leaves the BLAS as it is."""
    if requested is not None:
        return requested, "--blas-threads"
    if device_type != "cpu":
        return None, "the products run on the GPU"
    named = [name for name in THREAD_VARIABLES if name in environ]
    if named:
        return None, f"as {named[0]} says"
    if product < SMALL_PRODUCT:
        return 1, "small matrices, where more threads only wait for each other"
    if ranks_here > 1:  # each its share of the cores: 2 ranks on 2 cores ran 45x slower
        return max((os.cpu_count() or 1) // ranks_here, 1), \
            f"a share of the cores for each of {ranks_here} processes"
    return None, "large matrices"


@contextmanager
def limited(threads):
    """Within the block, NumPy's BLAS uses `threads` threads (None: unchanged); as before
    afterwards. threadpoolctl finds the BLAS NumPy loaded and sets its count."""
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="blas"):
        yield
