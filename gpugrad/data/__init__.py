"""gpugrad.data: loaders, splits, standardisation, and offline datasets."""

from .datasets import DatasetError, load_digits, load_mnist, load_npz  # noqa: F401
from .loader import DataLoader, Standardizer, standardize, train_val_split  # noqa: F401
