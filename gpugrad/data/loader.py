"""Batches for training: a DataLoader over arrays, a train/validation split, and
standardisation with statistics from the training set only."""


import numpy as np

from ..backends import device as as_device
from ..backends import host_generator
from ..creation import tensor
from ..spec import whole_number
from ..tensor import Tensor


class DataLoader:
    """Mini-batches (x, y) of tensors on `device`, from arrays of equal length.

    The data is copied to the device once; each batch is then picked there. With
    shuffle=True every epoch draws a new order: from a generator seeded with `seed` (the
    same seed gives the same batches), or without one, as PyTorch's loader does, from
    gg.manual_seed's generator when the epoch starts (a loader that does not shuffle
    draws nothing). drop_last drops a final short batch.
    """

    def __init__(self, x, y=None, batch_size=32, shuffle=False, seed=None, drop_last=False,
                 device=None):
        batch_size = whole_number(batch_size, "batch_size")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = as_device(device)
        self.x, self.y = samples_on(x, y, self.device)
        self.batch_size = batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self._rng = None if seed is None else np.random.default_rng(_seed(seed))

    def _epoch_generator(self):
        """The loader's own generator, or one seeded from gg.manual_seed's now."""
        if self._rng is not None:
            return self._rng
        return np.random.default_rng(host_generator().integers(2**63))

    def __len__(self):
        n = self.x.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_samples(self):
        return self.x.shape[0]

    def __iter__(self):
        n = self.x.shape[0]
        order = self._epoch_generator().permutation(n) if self.shuffle else None
        # (No no_grad block here: a generator suspended inside one would turn gradients
        # off in the caller's loop. The data does not require grad, so nothing records.)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            stop = min(start + self.batch_size, n)
            if order is None:
                key = slice(start, stop)
            else:  # the batch's positions, as a small index tensor on the device
                key = tensor(order[start:stop], device=self.device)
            xb = self.x[key]
            yield xb if self.y is None else (xb, self.y[key])


def _seed(seed):
    """A seed as NumPy's generators take it, refused by name otherwise (NumPy's own
    errors speak of a SeedSequence's entropy)."""
    seed = whole_number(seed, "DataLoader: seed")
    if seed < 0:
        raise ValueError(f"DataLoader: seed must be >= 0, got {seed}")
    return seed


def samples_on(x, y, device):
    """(x, y) as tensors on `device` (y may be None), checked to hold as many samples."""
    x = _samples(_on_device(x, device), "x")
    y = None if y is None else _samples(_on_device(y, device), "y")
    if y is not None and y.shape[0] != x.shape[0]:
        raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
    return x, y


def _samples(data, name):
    """`data`, checked to have a first axis to take samples along (a bare number has
    none, and failed later with 'tuple index out of range')."""
    if data.ndim == 0:
        raise ValueError(f"{name} must hold samples along its first axis, "
                         f"got a single value ({data.dtype}, shape ())")
    return data


def _on_device(data, device):
    if isinstance(data, Tensor):
        data = data.detach()
        return data if data.device is device else data.to(device)
    return tensor(data, device=device)  # lists of floats become float32, as everywhere


def train_val_split(x, y, val_fraction=0.2, seed=0):
    """((x_train, y_train), (x_val, y_val)): a random split of NumPy arrays."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = max(1, int(round(len(x) * val_fraction)))
    if n_val >= len(x):  # an empty training set failed later, in a reduction's message
        raise ValueError(f"train_val_split: {len(x)} sample(s), of which val_fraction "
                         f"{val_fraction} holds out {n_val}: none is left to train on")
    val, train = order[:n_val], order[n_val:]
    return (x[train], y[train]), (x[val], y[val])


class Standardizer:
    """(x - mean) / std per feature, with mean and std from the data it was fit on (the
    training set), so validation and test data get the same transform."""

    def __init__(self, eps=1e-8):
        self.eps = eps
        self.mean = self.std = None

    def fit(self, x):
        x = np.asarray(x, dtype=np.float64)
        self.mean, std = x.mean(axis=0), x.std(axis=0)
        # A feature constant in the training set (a digit's always-blank corner pixel)
        # is only centred: dividing by ~0 would blow other sets' values up.
        self.std = np.where(std > 0, std, 1.0)
        return self

    def transform(self, x):
        if self.mean is None:
            raise RuntimeError("Standardizer.transform before fit")
        x = np.asarray(x)
        out = (x - self.mean) / (self.std + self.eps)
        return out.astype(x.dtype if x.dtype.kind == "f" else np.float32)

    def fit_transform(self, x):
        return self.fit(x).transform(x)

    def state_dict(self):
        return {"mean": self.mean, "std": self.std, "eps": self.eps}

    def load_state_dict(self, state):
        self.mean, self.std = np.asarray(state["mean"]), np.asarray(state["std"])
        self.eps = state["eps"]


def standardize(train, *others):
    """Standardise `train` and any other arrays with the training set's statistics."""
    scaler = Standardizer().fit(train)
    out = [scaler.transform(train)] + [scaler.transform(o) for o in others]
    return out[0] if not others else tuple(out)
