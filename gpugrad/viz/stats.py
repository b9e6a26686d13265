"""Summary statistics of one array — the value or the gradient of a node — as a small
dict of Python numbers, so that recording them never keeps an array alive.

Computed with the array's own namespace (NumPy, CuPy, array-api-strict), and moved to
the host in one transfer: on a GPU that is one synchronisation per array, not one per
number.
"""

import math

KEYS = ("min", "max", "mean", "norm", "nan", "inf", "zeros", "size")


def array_stats(array, xp):
    """{"min", "max", "mean", "norm"} over the finite elements (None where there are
    none), and the counts "nan", "inf", "zeros" (exact zeros) and "size"; None for arrays
    that are not real floating point (indices, masks)."""
    dtype = getattr(array, "dtype", None)
    if dtype is None or not xp.isdtype(dtype, "real floating"):
        return None
    size = math.prod(array.shape)
    finite_mask = xp.isfinite(array)
    finite = int(xp.count_nonzero(finite_mask))
    nans = int(xp.count_nonzero(xp.isnan(array))) if finite < size else 0
    zeros = size - int(xp.count_nonzero(array))
    stats = {"min": None, "max": None, "mean": None, "norm": None, "nan": nans,
             "inf": size - finite - nans, "zeros": zeros, "size": size}
    if finite:
        values = array if finite == size else array[finite_mask]
        numbers = xp.stack([xp.min(values), xp.max(values), xp.mean(values),
                            xp.sqrt(xp.sum(values * values))])
        low, high, mean, norm = (float(v) for v in _to_host(numbers))
        stats.update(min=low, max=high, mean=mean, norm=norm)
    return stats


def _to_host(array):
    """The numbers as a host sequence (one copy from the device)."""
    host = getattr(array, "get", None)  # CuPy
    if host is not None:
        return host().tolist()
    try:
        return array.tolist()  # NumPy
    except AttributeError:  # array-api-strict: element by element
        return [array[i] for i in range(array.shape[0])]


def has_nonfinite(stats):
    """Whether recorded statistics counted a NaN or an Inf."""
    return bool(stats) and (stats["nan"] > 0 or stats["inf"] > 0)


def all_zero(stats):
    """Whether recorded statistics describe an array of zeros only (a zero gradient)."""
    return bool(stats) and stats["size"] > 0 and stats["zeros"] == stats["size"]


def describe(stats):
    """One short line: 'min -1 max 2 mean 0.5 norm 3' (+ NaN/Inf counts), for labels."""
    if stats is None:
        return ""
    if stats["min"] is None:
        text = "no finite values"
    else:
        text = " ".join(f"{k} {_number(stats[k])}" for k in ("min", "max", "mean", "norm"))
    bad = [f"{stats[key]} {word}" for key, word in (("nan", "NaN"), ("inf", "Inf"))
           if stats[key]]
    return text + (" | " + ", ".join(bad) if bad else "")


def _number(value):
    return f"{value:.3g}"
