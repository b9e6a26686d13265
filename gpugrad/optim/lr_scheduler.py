"""Learning-rate schedules, stepped once per epoch: StepLR and CosineAnnealingLR.

A schedule is a closed form of the epoch, lr = lr_at(initial lr, epoch), as in PyTorch
kept in each param group under "initial_lr": so an optimiser's state dict carries it,
and a run resumed from checkpoints (a new optimiser and scheduler, each given its
load_state_dict) goes on with the learning rates of the run it continues.
"""

import math
import numbers
import warnings

from ..node import user_stacklevel
from ..spec import whole_number


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
        # For the warnings below (not part of the schedule's state): the optimiser's
        # step() calls so far, whether the first step() was checked, and whether an lr
        # changed behind the schedule's back was said.
        self._optimizer_steps = getattr(optimizer, "_step_calls", None)
        self._order_checked = self._overwrite_said = False
        self._apply()

    def state_dict(self):
        """The schedule's position and settings, plain numbers and lists (gg.save stores
        them), without the optimiser: {"last_epoch": ..., "base_lrs": [...], ...}."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in self._settings().items()}

    def _settings(self):
        """The attributes a state dict holds: the public ones, but the optimiser."""
        return {key: value for key, value in vars(self).items()
                if key != "optimizer" and not key.startswith("_")}

    def load_state_dict(self, state_dict):
        """Take up the schedule where state_dict left it, and give the optimiser that
        epoch's learning rates (a scheduler made anew had set the first epoch's)."""
        base_lrs = state_dict.get("base_lrs", self.base_lrs)
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise ValueError(f"the scheduler state has {len(base_lrs)} learning rates, "
                             f"the optimiser {len(self.optimizer.param_groups)} groups")
        unknown = sorted(set(state_dict) - set(self._settings()))
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
        self._lrs_set = lrs

    def step(self):
        from ..mode import state

        self._check_order()
        if state.capture is None:
            self._advance()
            return
        # Inside gg.compile's function: every run steps, and a run that fails before it
        # changed anything takes its step back
        advance, retreat = self._undoable_step()
        state.capture.host_call(advance, retreat)
        advance()

    def _check_order(self):
        """PyTorch's warning: a first step() before any optimizer.step() skips the
        schedule's first learning rate (the loop has the two calls the wrong way round)."""
        if self._order_checked:
            return
        self._order_checked = True
        steps = getattr(self.optimizer, "_step_calls", None)
        if steps is not None and steps == self._optimizer_steps:
            warnings.warn(f"{type(self).__name__}.step() was called before "
                          "optimizer.step(): the schedule's first learning rate is "
                          "skipped. Call optimizer.step() first, then the scheduler's "
                          "step(), as in PyTorch", UserWarning, stacklevel=user_stacklevel())

    def _check_overwrite(self):
        """Say once when a group's lr is no longer the one this schedule set: changed by
        hand, or by a second scheduler on the optimiser. The closed form overwrites it,
        where PyTorch's chained schedulers would build on it (two schedulers here give
        the lrs of whichever stepped last)."""
        groups = self.optimizer.param_groups
        if len(groups) != len(self._lrs_set):
            return  # a group added since: _apply names that
        changed = [index for index, (group, lr) in enumerate(
            zip(groups, self._lrs_set, strict=True)) if group["lr"] != lr]
        if changed and not self._overwrite_said:
            self._overwrite_said = True
            warnings.warn(f"{type(self).__name__}.step(): the lr of parameter group(s) "
                          f"{changed} changed since this scheduler set it (by hand, or by "
                          "another scheduler of the same optimiser); it is overwritten "
                          "with the schedule's closed form: gpugrad's schedulers do not "
                          "chain as PyTorch's do", UserWarning,
                          stacklevel=user_stacklevel())

    def _advance(self):
        self._check_overwrite()
        self._apply(self.last_epoch + 1)  # (a step that fails leaves the epoch as it was)
        self.last_epoch += 1

    def _undoable_step(self):
        """(advance, retreat) of one step() call in a compiled function: retreat restores
        what that call's advance found (each call keeps its own: a function stepping
        twice is taken back step by step)."""
        before = []

        def advance():
            before[:] = [self.last_epoch, self.get_last_lr(), self._lrs_set]
            self._advance()

        def retreat():
            self.last_epoch, lrs, self._lrs_set = before
            for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
                group["lr"] = lr

        return advance, retreat

    def get_last_lr(self):
        return [g["lr"] for g in self.optimizer.param_groups]


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        step_size = whole_number(step_size, "StepLR: step_size")
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1 (epochs per decay), got "
                             f"{step_size}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):  # noqa: N803
        if isinstance(T_max, bool) or not isinstance(T_max, numbers.Real) or \
                not 0 < T_max < math.inf:
            raise ValueError(f"CosineAnnealingLR: T_max must be a number of epochs > 0, "
                             f"got {T_max!r}")
        self.T_max, self.eta_min = T_max, eta_min  # (T_max: PyTorch's name)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return self.eta_min + (base_lr - self.eta_min) * \
            (1 + math.cos(math.pi * epoch / self.T_max)) / 2
