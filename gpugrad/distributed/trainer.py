"""What `gpugrad train --distributed` changes in a run, in one place, so that train.py
only asks for it: each rank trains on its share of every global batch (--batch-size is
the global batch, as in a single process), the model and optimiser are wrapped to average
gradients, the epoch's figures are summed over the ranks, and only rank 0 prints and
writes the run folder. With the same seed the run takes the same steps as a single
process, up to float rounding."""

from . import rank0
from .context import init
from .ddp import DistributedDataParallel, DistributedOptimizer
from .sampler import DistributedDataLoader


class DistributedRun:
    def __init__(self, device=None):
        self.context = init(device)
        self.device = self.context.device
        self.is_main = self.context.is_main
        self.world_size = self.context.world_size

    def output(self, stream):
        """Where this rank prints: `stream` on rank 0, nowhere elsewhere."""
        return rank0.output(stream)

    def loader(self, x, y, batch_size, seed, device):
        return DistributedDataLoader(x, y, batch_size=batch_size, shuffle=True, seed=seed,
                                     device=device)

    def wrap(self, model, optimizer):
        """(model, optimiser) that average gradients across the ranks in step(), starting
        from rank 0's parameters (and refusing models that differ between ranks)."""
        ddp = DistributedDataParallel(model, context=self.context)
        return ddp, DistributedOptimizer(optimizer, ddp)

    def epoch_totals(self, loss, accuracy, seen):
        """An epoch's (mean loss, accuracy, samples) over all ranks, from each rank's."""
        loss_sum, correct, total = self.context.sum([loss * seen, accuracy * seen, seen],
                                                    "summing the epoch's figures")
        return loss_sum / total, correct / total, int(total)
