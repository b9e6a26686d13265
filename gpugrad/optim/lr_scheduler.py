"""Learning-rate schedules, stepped once per epoch: StepLR and CosineAnnealingLR.

A schedule is a closed form of the epoch, lr = lr_at(initial lr, epoch), as in PyTorch
kept in each param group under "initial_lr": so an optimiser's state dict carries it,
and a run resumed from checkpoints (a new optimiser and scheduler, each given its
load_state_dict) goes on with the learning rates of the run it continues.
"""

import math


class LRScheduler:
    """last_epoch: -1 for a new run (each group's lr becomes its "initial_lr"); the last
    finished epoch to resume a run without a state dict, the optimiser then needing the
    "initial_lr" of each group (from its load_state_dict), as in PyTorch."""

    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        for index, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"param group {index} has no 'initial_lr' to resume a "
                               f"schedule at last_epoch={last_epoch}: load the "
                               "optimiser's state dict first")
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = int(last_epoch) + 1
        self._apply()

    def state_dict(self):
        """The schedule's position and settings, plain numbers and lists (gg.save stores
        them), without the optimiser: {"last_epoch": ..., "base_lrs": [...], ...}."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in vars(self).items() if key != "optimizer"}

    def load_state_dict(self, state_dict):
        """Take up the schedule where state_dict left it, and give the optimiser that
        epoch's learning rates (a scheduler made anew had set the first epoch's)."""
        base_lrs = state_dict.get("base_lrs", self.base_lrs)
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise ValueError(f"the scheduler state has {len(base_lrs)} learning rates, "
                             f"the optimiser {len(self.optimizer.param_groups)} groups")
        unknown = sorted(set(state_dict) - set(vars(self)))
        if unknown:
            raise ValueError(f"{type(self).__name__}.load_state_dict: unexpected keys "
                             f"{unknown}")
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "optimizer"})
        self.base_lrs = list(base_lrs)
        self._apply()

    def lr_at(self, base_lr, epoch):
        raise NotImplementedError

    def _apply(self, epoch=None):
        """Set each group's lr to the schedule's at `epoch` (default: last_epoch); all
        computed and checked before any is set."""
        groups = self.optimizer.param_groups
        if len(groups) != len(self.base_lrs):
            raise ValueError(f"{type(self).__name__} schedules {len(self.base_lrs)} parameter "
                             f"groups, the optimiser has {len(groups)}: make the scheduler "
                             "after add_param_group")
        epoch = self.last_epoch if epoch is None else epoch
        lrs = [self.lr_at(base, epoch) for base in self.base_lrs]
        for group, lr in zip(groups, lrs, strict=True):
            group["lr"] = lr

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
        self._apply(self.last_epoch + 1)  # (a step that fails leaves the epoch as it was)
        self.last_epoch += 1

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

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size, self.gamma = int(step_size), gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):  # noqa: N803
        self.T_max, self.eta_min = T_max, eta_min  # (T_max: PyTorch's name)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return self.eta_min + (base_lr - self.eta_min) * \
            (1 + math.cos(math.pi * epoch / self.T_max)) / 2
