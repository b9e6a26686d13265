"""Starting jobs: where mpiexec is, and the command line that starts n ranks."""

import os
import shutil
import sys

from .errors import MPIUnavailableError


def find_mpiexec():
    """The mpiexec to use: the one beside this Python first (the `mpich` wheel installs
    it into the environment's bin/, which need not be on PATH), else PATH's."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("mpiexec")
    if found:
        return found
    raise MPIUnavailableError("no mpiexec found beside this Python or on PATH; install an "
                              "MPI with: pip install 'gpugrad[distributed]'")


def mpiexec_command(n, argv):
    """The command that runs `argv` (a list) on `n` ranks of this machine."""
    return [find_mpiexec(), "-n", str(n), *argv]
