"""Rank-0-only logging and checkpointing: one process speaks and writes for the job."""

import io

from .context import is_main_process


def print0(*args, **kwargs):
    """print() on rank 0 (and outside a distributed job); nothing elsewhere."""
    if is_main_process():
        print(*args, **kwargs)


def output(stream):
    """`stream` on rank 0; a sink that swallows everything on the other ranks."""
    return stream if is_main_process() else _Discard()


def save(obj, path):
    """gg.save on rank 0 only (the ranks hold the same model); True where it wrote."""
    if not is_main_process():
        return False
    from ..checkpoint import save as save_checkpoint

    save_checkpoint(obj, path)
    return True


class _Discard(io.TextIOBase):
    def write(self, text):
        return len(text)

    def isatty(self):
        return False
