"""Sharding the data: each rank's share of every global batch.

Every rank draws the same order of the samples each epoch (the same seed), cuts it into
the same global batches, and takes its own contiguous piece of each: rank r of w gets
piece r of w nearly equal pieces (sizes differ by at most one, the larger ones first).
So each epoch covers every sample exactly once across the ranks (no padding, nothing
dropped), every rank runs the same number of steps (one per global batch, which keeps the
collectives in step), and the global batches are those of a single process's DataLoader
with the same seed and batch size. A rank's piece of a final batch smaller than the number
of ranks can be empty; that rank still joins the step (see DistributedDataParallel).
"""

import numpy as np

from ..creation import tensor
from ..data.loader import samples_on
from . import context as job


def shard_bounds(length, rank, world_size):
    """(start, stop) of rank's piece of a batch of `length` samples."""
    base, extra = divmod(length, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def _agreed_seed(seed):
    """Every rank must shuffle alike: without a seed, rank 0 draws one for all."""
    if seed is not None:
        return seed
    if job.is_initialized():
        return job.get_context().agreed_seed(None)
    from ..backends import host_generator

    return int(host_generator().integers(2**63))


class DistributedSampler:
    """Per epoch (each iteration), this rank's sample indices for each global batch of
    `batch_size`: an int64 array per step, len(self) steps, the same count on every rank.

    rank and world_size default to the job's (init()); seed, when None, is drawn on rank
    0 and shared."""

    def __init__(self, num_samples, batch_size, shuffle=True, seed=None, rank=None,
                 world_size=None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.num_samples, self.batch_size, self.shuffle = int(num_samples), batch_size, shuffle
        self.rank = job.rank() if rank is None else rank
        self.world_size = job.world_size() if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in a world of {self.world_size}")
        # the same generator, drawn from the same way, as DataLoader's: the same batches
        self._rng = np.random.default_rng(_agreed_seed(seed))

    def __len__(self):
        return -(-self.num_samples // self.batch_size)

    def global_batches(self):
        """The next epoch's global batches (index arrays), the same on every rank."""
        n = self.num_samples
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, n, self.batch_size):
            yield order[start:start + self.batch_size]

    def __iter__(self):
        for batch in self.global_batches():
            start, stop = shard_bounds(len(batch), self.rank, self.world_size)
            yield batch[start:stop]


class DistributedDataLoader:
    """DataLoader's counterpart for a distributed job: (x, y) tensors on `device` holding
    this rank's share of each global batch of `batch_size` samples.

    Every rank holds the whole data set (copied to the device once) and picks its rows,
    so nothing is sent between ranks. `num_samples` is the whole set's size."""

    def __init__(self, x, y=None, batch_size=32, shuffle=False, seed=None, device=None,
                 rank=None, world_size=None):
        from ..backends import device as as_device

        self.device = as_device(device)
        self.x, self.y = samples_on(x, y, self.device)
        n = self.x.shape[0]
        self.sampler = DistributedSampler(n, batch_size, shuffle=shuffle, seed=seed,
                                          rank=rank, world_size=world_size)
        self.batch_size = batch_size

    def __len__(self):
        return len(self.sampler)

    @property
    def num_samples(self):
        return self.x.shape[0]

    def __iter__(self):
        for indices in self.sampler:
            key = tensor(indices, device=self.device)
            xb = self.x[key]
            yield xb if self.y is None else (xb, self.y[key])
