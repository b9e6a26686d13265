"""Classification metrics on host arrays: accuracy, confusion matrix, per-class
precision and recall."""

import numpy as np

from .errors import ShapeError
from .ops.registry import _annotate
from .tensor import Tensor


def _host(values):
    return values.numpy() if isinstance(values, Tensor) else np.asarray(values)


def accuracy(predicted, labels):
    """The fraction of predicted labels equal to the true ones. `predicted` holds class
    indices of the labels' shape (from scores: `logits.argmax(axis=-1)`)."""
    predicted, labels = _host(predicted), _host(labels)
    if predicted.shape != labels.shape:
        hint = ""
        if predicted.shape == labels.shape + (1,):  # a column of classes
            hint = "; flatten the column of predicted classes, e.g. predicted[:, 0]"
        elif predicted.shape[:-1] == labels.shape:  # scores per class, not a class each
            hint = ("; these look like scores per class: pass the predicted classes, "
                    "e.g. logits.argmax(axis=-1)")
        raise _annotate("accuracy", ShapeError(
            f"predictions of shape {predicted.shape} for labels of shape {labels.shape}: "
            f"there must be one predicted class per label{hint}"))
    return float((predicted == labels).mean()) if labels.size else 0.0


def confusion_matrix(labels, predicted, num_classes=None):
    """counts[i, j]: how many samples of true class i were predicted as class j."""
    labels, predicted = _host(labels), _host(predicted)
    for name, values in (("labels", labels), ("predictions", predicted)):
        if values.dtype.kind not in "iub":
            raise ValueError(f"{name} must be integer class indices, got {values.dtype}")
        if values.size and values.min() < 0:
            raise ValueError(f"{name} must be class indices >= 0, got {values.min()}")
    labels, predicted = labels.astype(np.int64), predicted.astype(np.int64)
    largest = max(labels.max(initial=-1), predicted.max(initial=-1))
    if num_classes is not None and largest >= num_classes:
        raise ValueError(f"confusion_matrix: class {largest} among the labels or "
                         f"predictions, but num_classes={num_classes}")
    n = int(num_classes if num_classes is not None else largest + 1)
    counts = np.zeros((n, n), dtype=np.int64)
    np.add.at(counts, (labels, predicted), 1)
    return counts


def precision_recall(confusion):
    """(precision, recall) per class from a confusion matrix; 0 where undefined."""
    confusion = np.asarray(confusion, dtype=np.float64)
    hits = np.diag(confusion)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, actual, out=np.zeros_like(hits), where=actual > 0)
    return precision, recall
