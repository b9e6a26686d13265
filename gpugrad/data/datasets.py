"""Datasets that work offline: the 8x8 digits scikit-learn ships inside its package, and
MNIST from files the user has (IDX, plain or .gz, or an .npz)."""

import gzip
import importlib.util
import os
import zipfile

import numpy as np

from ..errors import GpugradError


class DatasetError(GpugradError, ValueError):
    """A data file that is missing or not what was expected; the message says which."""


def load_digits():
    """(x, y): 1,797 images of 8x8 digits as float32 in [0, 1] of shape (1797, 64), and
    int64 labels 0-9. Read from the copy scikit-learn ships (no network needed)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("load_digits reads the digits that scikit-learn ships in its "
                           "package; install it: pip install scikit-learn "
                           "(or pip install 'gpugrad[datasets]')")
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data",
                        "digits.csv.gz")
    if not os.path.exists(path):
        raise DatasetError(f"scikit-learn is installed but has no {path}")
    data = np.loadtxt(path, delimiter=",", dtype=np.float32)
    if data.shape != (1797, 65):
        raise DatasetError(f"{path}: expected 1797 rows of 64 pixels and a label, got "
                           f"{data.shape}")
    return data[:, :64] / 16.0, data[:, 64].astype(np.int64)


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049


def load_mnist(path):
    """((x_train, y_train), (x_test, y_test)) from `path`: a folder with the four
    standard MNIST IDX files (each plain or .gz), or an .npz with x_train, y_train,
    x_test, y_test. Images come as float32 of shape (N, 784), 8-bit pixel values
    scaled to [0, 1] (values a user standardised already are kept)."""
    path = os.path.expanduser(os.fspath(path))
    if not os.path.exists(path):
        raise DatasetError(f"no MNIST data at {path}: expected a folder with "
                           f"{', '.join(f for pair in _IDX_FILES.values() for f in pair)} "
                           "(plain or .gz), or an .npz file")
    if os.path.isdir(path):
        return tuple(_load_idx_pair(path, *_IDX_FILES[split]) for split in ("train", "test"))
    return _load_npz(path)


def _open(folder, name):
    for candidate in (name, name + ".gz"):
        full = os.path.join(folder, candidate)
        if os.path.exists(full):
            return full, (gzip.open if candidate.endswith(".gz") else open)
    raise DatasetError(f"{folder} has no {name} (or {name}.gz)")


def _read_idx(folder, name, magic, ndim):
    full, opener = _open(folder, name)
    try:
        with opener(full, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:  # EOFError: a truncated .gz
        raise DatasetError(f"{full}: cannot read it ({exc})") from None
    header = 4 + 4 * ndim
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        raise DatasetError(f"{full}: not an IDX file of {'images' if ndim == 3 else 'labels'}"
                           f" (expected magic number {magic})")
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    count = int(np.prod(dims))
    if len(raw) - header != count:
        raise DatasetError(f"{full}: header says {dims} ({count} bytes of data) but the "
                           f"file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _load_idx_pair(folder, images_name, labels_name):
    images = _read_idx(folder, images_name, _IMAGES_MAGIC, 3)
    labels = _read_idx(folder, labels_name, _LABELS_MAGIC, 1)
    if len(images) != len(labels):
        raise DatasetError(f"{folder}: {len(images)} images but {len(labels)} labels")
    return _as_xy(images, labels)


def load_npz(path):
    """((x_train, y_train), (x_test, y_test)) from a user's .npz holding those four
    arrays; features are flattened to (N, features) float32 and kept as they are."""
    path = os.path.expanduser(os.fspath(path))
    if not os.path.isfile(path):
        raise DatasetError(f"no .npz file at {path}: expected one with arrays x_train, "
                           "y_train, x_test, y_test")
    return _load_npz(path, scale=False)


_ZIP_MAGIC = b"PK\x03\x04"  # what every .npz (a zip archive) starts with


def _load_npz(path, scale=True):
    # np.load takes any other file for a .npy (a TypeError later) or a pickle (whose
    # refusal advises loading it unsafely, of a text file too): say what it is not.
    with open(path, "rb") as f:
        if f.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
            raise DatasetError(f"{path}: not an .npz archive (np.savez writes one) with "
                               "arrays x_train, y_train, x_test, y_test")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test")
                       if k not in data.files]
            if missing:
                raise DatasetError(f"{path}: expected arrays x_train, y_train, x_test, "
                                   f"y_test; missing {', '.join(missing)}")
            return tuple(_as_xy(data[f"x_{split}"], data[f"y_{split}"], scale,
                                f"{path}: x_{split}", f"{path}: y_{split}")
                         for split in ("train", "test"))
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # (cut short)
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{path}: not a readable .npz file ({exc})") from None


def _as_xy(images, labels, scale=True, x_name="the images", y_name="the labels"):
    """(x as float32 (N, features), y as int64 (N,)), checked: the arrays are a user's,
    and a float label cut to an int (1.7 -> 1) or a NaN feature trained on quietly."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype.kind not in "biuf":
        raise DatasetError(f"{x_name} must be numbers, got {images.dtype}")
    if images.ndim == 0 or len(images) == 0:  # nothing to train on, or to test
        raise DatasetError(f"{x_name} must hold samples along its first axis, got shape "
                           f"{images.shape}")
    x = images.reshape(len(images), -1).astype(np.float32)
    if not np.isfinite(x).all():
        raise DatasetError(f"{x_name} holds {int((~np.isfinite(x)).sum())} NaN or infinite "
                           "value(s)")
    if scale and _pixels(images, x):
        x /= 255.0
    return x, _class_labels(labels, len(x), y_name)


def _pixels(images, x):
    """Whether MNIST's images hold 8-bit pixel values, which are scaled to [0, 1]: values
    above 1, of an integer dtype or all within [0, 255]. Features a user standardised
    already (negative values) or scaled are kept as they are."""
    if x.max(initial=0) <= 1.0:
        return False
    return images.dtype.kind in "biu" or (x.min() >= 0.0 and x.max() <= 255.0)


def _class_labels(labels, count, name):
    """Labels as int64 class indices: integers >= 0 (whole floats too), one per sample."""
    if labels.shape != (count,):
        raise DatasetError(f"{name} must be one class index per sample, shape ({count},); "
                           f"got {labels.shape}")
    whole = labels.dtype.kind in "iub" or (
        labels.dtype.kind == "f" and np.isfinite(labels).all()
        and np.array_equal(labels, np.round(labels)))
    if not whole:
        raise DatasetError(f"{name} must be class indices (whole numbers), got "
                           f"{labels.dtype} values such as {labels.ravel()[:3].tolist()}")
    y = labels.astype(np.int64)
    if y.size and y.min() < 0:
        raise DatasetError(f"{name} must be class indices >= 0, got {y.min()}")
    return y
