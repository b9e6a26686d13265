"""gg.save / gg.load: checkpoints as NumPy .npz files, never pickle.

A checkpoint is a (nested) dict of tensors, arrays, numbers, strings, lists and None:
arrays go into the archive under their "/"-joined key paths, everything else into a JSON
index stored beside them, so loading runs no code (np.load with allow_pickle=False). The
file is written atomically: to a temporary file in the same folder, flushed to disk, then
renamed over the target, so a crash mid-save leaves the previous checkpoint intact.
"""

import contextlib
import json
import os
import zipfile
import zlib

import numpy as np

from .errors import DTypeError, GpugradError
from .files import create_temporary, remove_quietly, target_of
from .tensor import Tensor

_INDEX = "__gpugrad_index__"
FORMAT = "gpugrad-checkpoint-1"


def _store(array, path, arrays):
    """Keep an array under a generated name (user keys never meet np.savez's own
    arguments); the index maps it back to its path."""
    if array.dtype.kind in "OV":
        raise TypeError(f"cannot save an array of {array.dtype} at {path} without pickle")
    name = f"a{len(arrays)}"
    arrays[name] = array
    return name


def _flatten(value, path, arrays):
    """The JSON description of `value`; arrays found in it go into `arrays`."""
    if isinstance(value, Tensor):
        return {"tensor": _store(value.numpy(), path, arrays)}
    if isinstance(value, np.ndarray):
        return {"array": _store(value, path, arrays)}
    if isinstance(value, dict):
        names = {}
        for key in value:
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise TypeError(f"checkpoint keys must be str or int, got {key!r} at "
                                f"{path or 'the top'}")
            if str(key) in names:
                raise TypeError(f"keys {names[str(key)]!r} and {key!r} would collide at "
                                f"{path or 'the top'}")
            names[str(key)] = key
        return {"dict": {str(k): _flatten(v, f"{path}/{k}" if path else str(k), arrays)
                         for k, v in value.items()},
                "int_keys": [str(k) for k in value if isinstance(k, int)]}
    if isinstance(value, (list, tuple)):
        return {"list" if isinstance(value, list) else "tuple":
                [_flatten(v, f"{path}/{i}", arrays) for i, v in enumerate(value)]}
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    raise TypeError(f"cannot save a {type(value).__name__} at {path or 'the top'} "
                    "without pickle; use tensors, arrays, numbers, strings, lists, dicts")


def _write_npz(f, arrays):
    """What np.savez(f, **arrays) writes (one .npy member per array, zip64, stored),
    but cleaned up so that an interrupt mid-write is what the caller gets.

    np.savez closes its archive in a `finally`: when a Ctrl-C lands while zipfile
    closes a member, the member stays open, and that close fails with "Can't close
    the ZIP file while there is an open writing handle" - a ValueError that replaces
    the KeyboardInterrupt (so `gpugrad train` would die instead of finishing its run),
    and the archive, never closed, prints a traceback when it is collected. Here the
    member is closed again, then the archive, before the interrupt goes on. (Deferring
    SIGINT during the write instead would work only in the main thread, swap the
    process's handler under whoever installed it, and leave Ctrl-C unanswered for as
    long as a large checkpoint takes.)"""
    archive = zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True)
    member = None
    try:
        for name, array in arrays.items():
            member = archive.open(f"{name}.npy", "w", force_zip64=True)
            np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
            member.close()
        archive.close()
    except BaseException:
        # The file is about to be deleted: only the archive's state matters here, and
        # its errors must not replace the one going on.
        for handle in (member, archive):
            if handle is not None:
                with contextlib.suppress(Exception):
                    handle.close()
        raise


def save(obj, path):
    """Write `obj` (e.g. model.state_dict(), or {"model": ..., "epoch": 3}) to `path`."""
    asked = os.fspath(path)
    path = target_of(asked)
    arrays = {}
    index = {"format": FORMAT, "root": _flatten(obj, "", arrays)}
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):  # said for the path asked for, not the temporary one
        raise FileNotFoundError(f"cannot save to {asked}: no folder {folder}")
    if os.path.isdir(path):  # (else the rename failed naming the temporary file)
        raise IsADirectoryError(f"cannot save to {asked}: it is a folder; give a file "
                                f"in it, e.g. {os.path.join(asked, 'checkpoint.npz')}")
    fd, tmp = create_temporary(folder, ".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, {_INDEX: np.array(json.dumps(index)), **arrays})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise


def _unflatten(desc, archive, device):
    from .creation import tensor

    if "tensor" in desc:
        values = archive[desc["tensor"]]
        try:
            return tensor(values, device=device)
        except TypeError as exc:  # the file is fine; the device cannot hold the dtype
            raise DTypeError(f"a {values.dtype} tensor of the checkpoint cannot be put on "
                             f"{device or 'the default device'}: {exc}") from None
    if "array" in desc:
        return archive[desc["array"]]
    if "dict" in desc:
        int_keys = set(desc.get("int_keys", ()))
        return {(int(k) if k in int_keys else k): _unflatten(v, archive, device)
                for k, v in desc["dict"].items()}
    if "list" in desc:
        return [_unflatten(v, archive, device) for v in desc["list"]]
    if "tuple" in desc:
        return tuple(_unflatten(v, archive, device) for v in desc["tuple"])
    return desc["value"]


def load(path, device=None):
    """Read a checkpoint written by gg.save; tensors land on `device` (default: the
    default device), whatever device they were saved from."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            is_zip = f.read(4) == b"PK\x03\x04"
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint at {path}") from None
    if not is_zip:
        raise ValueError(f"{path} is not a readable checkpoint (not an .npz archive)")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not a readable checkpoint ({exc})") from None
    with archive:
        if _INDEX not in archive.files:
            raise ValueError(f"{path} is a .npz file but not a gpugrad checkpoint")
        try:
            index = json.loads(str(archive[_INDEX]))
        except ValueError as exc:
            raise ValueError(f"{path} is not a readable checkpoint (its index: "
                             f"{type(exc).__name__}: {exc})") from None
        found = index.get("format") if isinstance(index, dict) else None
        if found != FORMAT:
            raise ValueError(f"{path}: unknown checkpoint format {found!r} (this gpugrad "
                             f"reads {FORMAT!r})")
        try:
            return _unflatten(index["root"], archive, device)
        except GpugradError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, OSError, EOFError,
                zipfile.BadZipFile, zlib.error) as exc:  # (a damaged member, too)
            # A damaged or crafted file (an index that is not JSON, or names a missing
            # array; an object array NumPy refuses to load without pickle): say which.
            raise ValueError(f"{path} is not a readable checkpoint "
                             f"({type(exc).__name__}: {exc})") from None
