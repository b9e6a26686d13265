"""Losses as modules (PyTorch's nn.CrossEntropyLoss and friends): each holds its options
and calls its function in nn.functional, so `loss_fn = nn.CrossEntropyLoss()` and
`loss_fn(logits, labels)` read as they do in PyTorch."""

from . import functional as F
from .module import Module


class _Loss(Module):
    function = None  # the nn.functional loss, called with the module's options

    def __init__(self, reduction="mean"):
        super().__init__()
        F._check_reduction(type(self).__name__, reduction)
        self.reduction = reduction

    def forward(self, input, target):  # noqa: A002  (PyTorch's argument names)
        return type(self).function(input, target, reduction=self.reduction)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    function = F.mse_loss


class L1Loss(_Loss):
    function = F.l1_loss


class BCELoss(_Loss):
    function = F.binary_cross_entropy


class BCEWithLogitsLoss(_Loss):
    function = F.binary_cross_entropy_with_logits


class NLLLoss(_Loss):
    function = F.nll_loss

    def __init__(self, weight=None, ignore_index=None, reduction="mean"):
        super().__init__(reduction)
        self.weight, self.ignore_index = weight, ignore_index  # (a weight is no parameter)

    def forward(self, input, target):  # noqa: A002
        return type(self).function(input, target, weight=self.weight,
                                   ignore_index=self.ignore_index, reduction=self.reduction)

    def extra_repr(self):
        extra = "" if self.ignore_index is None else f"ignore_index={self.ignore_index}, "
        return extra + super().extra_repr()


class CrossEntropyLoss(NLLLoss):
    function = F.cross_entropy

    def __init__(self, weight=None, ignore_index=None, label_smoothing=0.0, reduction="mean"):
        super().__init__(weight, ignore_index, reduction)
        self.label_smoothing = label_smoothing

    def forward(self, input, target):  # noqa: A002
        return F.cross_entropy(input, target, weight=self.weight,
                               ignore_index=self.ignore_index,
                               label_smoothing=self.label_smoothing, reduction=self.reduction)

    def extra_repr(self):
        return f"label_smoothing={self.label_smoothing}, " + super().extra_repr()
