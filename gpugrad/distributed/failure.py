"""Ending a distributed job when one rank fails, with a message naming it.

A rank that raises and simply exits would leave the others blocked in their next
collective (and MPI_Finalize at exit can block as well): the job would hang without a
word. So a failing rank prints "rank R: <error>" and its traceback to stderr and calls
MPI_Abort, which makes mpiexec end every process and exit non-zero. Ranks waiting on a
rank that hangs without raising get a CollectiveTimeout and take the same way out.
"""

import sys
import time
import traceback
from contextlib import contextmanager

from .context import _context_or_none

ABORT_GRACE_SECONDS = 0.5


def describe(exc, rank):
    """'rank R: Type: message', then the traceback."""
    head = f"rank {rank}: {type(exc).__name__}: {exc}"
    if isinstance(exc, KeyboardInterrupt):
        head = f"rank {rank}: interrupted"
    body = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f"{head}\n{body}"


def fail(exc, context, code=1):
    """Report `exc` as this rank's and end the whole job (never returns)."""
    try:
        sys.stderr.write(describe(exc, context.rank))
        sys.stderr.flush()
        # mpiexec forwards a rank's stderr from a pipe; MPI_Abort tears its forwarding
        # down at once, and a message still in the pipe is lost (seen on MPICH 5 about
        # one job in six). A moment's pause lets the message out first.
        time.sleep(ABORT_GRACE_SECONDS)
    finally:
        context.abort(code)


def _ends_job(exc, context):
    if context is None or context.world_size == 1:
        return False  # nobody waits for this process: the error propagates as usual
    if isinstance(exc, SystemExit):
        return exc.code not in (None, 0)
    return True


@contextmanager
def abort_on_error():
    """Run the block; if it raises, in a job of several ranks, end the job with a message
    naming this rank and the error. In a job of one (or before init) errors propagate."""
    try:
        yield
    except BaseException as exc:
        context = _context_or_none()
        if _ends_job(exc, context):
            fail(exc, context)
        raise


def install_excepthook(context):
    """Make an uncaught exception end the whole job, naming this rank."""
    previous = sys.excepthook

    def hook(kind, exc, tb):
        if context.world_size == 1:
            previous(kind, exc, tb)
            return
        fail(exc.with_traceback(tb), context)

    sys.excepthook = hook
