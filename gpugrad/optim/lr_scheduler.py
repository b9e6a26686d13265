"""Learning-rate schedules, stepped once per epoch: StepLR and CosineAnnealingLR."""

import math


class LRScheduler:
    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def lr_at(self, base_lr, epoch):
        raise NotImplementedError

    def _apply(self):
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = self.lr_at(base, self.last_epoch)

    def step(self):
        from ..mode import state

        if state.capture is None:
            self._advance()
            return
        # Inside gg.compile's function: every run steps, and a run that fails before it
        # changed anything takes its step back
        advance, retreat = self._undoable_step()
        state.capture.host_call(advance, retreat)
        advance()

    def _advance(self):
        self.last_epoch += 1
        self._apply()

    def _undoable_step(self):
        """(advance, retreat) of one step() call in a compiled function: retreat restores
        what that call's advance found (each call keeps its own: a function stepping
        twice is taken back step by step)."""
        before = []

        def advance():
            before[:] = [self.last_epoch, self.get_last_lr()]
            self._advance()

        def retreat():
            self.last_epoch, lrs = before
            for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
                group["lr"] = lr

        return advance, retreat

    def get_last_lr(self):
        return [g["lr"] for g in self.optimizer.param_groups]


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size, self.gamma = int(step_size), gamma
        super().__init__(optimizer)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2."""

    def __init__(self, optimizer, T_max, eta_min=0.0):  # noqa: N803  (PyTorch's name)
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def lr_at(self, base_lr, epoch):
        return self.eta_min + (base_lr - self.eta_min) * \
            (1 + math.cos(math.pi * epoch / self.T_max)) / 2
