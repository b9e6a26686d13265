"""Rendering DOT to SVG, PNG or PDF with Graphviz's `dot` program."""

import errno
import os
import shutil
import signal
import subprocess

from ..errors import GpugradError
from ..files import write_text, write_whole

FORMATS = ("svg", "png", "pdf")


class RenderError(GpugradError, RuntimeError):
    """Graphviz is missing or failed; the message says how to get it."""


def render(graph, path, format=None, timeout=600,  # noqa: A002  (Graphviz's word)
           **dot_options):
    """Write `graph` drawn by Graphviz to `path`; the format comes from the extension
    (.svg, .png, .pdf; .dot writes the DOT text itself, Graphviz or not) unless given.
    timeout: seconds Graphviz may take. Returns the path."""
    path = os.fspath(path)
    format = (format or os.path.splitext(path)[1].lstrip(".")).lower()
    if format not in FORMATS + ("dot",):
        raise ValueError(f"cannot render to {format or 'a file without extension'!r}; use "
                         f"one of {', '.join('.' + f for f in FORMATS + ('dot',))}")
    folder = os.path.dirname(path)
    if folder and not os.path.isdir(folder):  # said before Graphviz runs, as open() would
        raise FileNotFoundError(errno.ENOENT, f"no folder {folder!r} to render into", path)
    text = graph.to_dot(**dot_options)  # (a bad option fails before any file is touched)
    if format == "dot":
        write_text(path, text)
        return path
    dot = shutil.which("dot")
    if dot is None:
        raise RenderError("rendering needs Graphviz's `dot` program: install it (Debian/"
                          "Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
                          "conda: conda install graphviz); g.to_dot() gives the DOT text "
                          "without it")
    # Into a file beside path first: a drawing that fails midway (Graphviz killed, or
    # past its timeout, after writing part of it) leaves the file drawn before.
    write_whole(path, lambda tmp: _run_dot(dot, format, tmp, text, graph, timeout))
    return path


def _run_dot(dot, format, path, text, graph, timeout):  # noqa: A002  (Graphviz's word)
    """Graphviz drawing `text` into `path`; its failures as RenderErrors that say why."""
    try:
        result = subprocess.run([dot, f"-T{format}", "-o", path], input=text,
                                capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RenderError(f"Graphviz did not finish drawing this graph ({len(graph):,} "
                          f"nodes) in {timeout:g} s; {_SMALLER}") from None
    if result.returncode < 0:  # killed by a signal: no message of its own
        raise RenderError(f"Graphviz was killed by {_signal_name(-result.returncode)}"
                          f"{_likely_cause(-result.returncode)} while drawing this graph "
                          f"({len(graph):,} nodes); {_SMALLER}")
    if result.returncode != 0:
        reason = result.stderr.strip() or f"exit status {result.returncode}, no message"
        raise RenderError(f"Graphviz failed on this graph: {reason}")


# What to do about a graph too large for Graphviz.
_SMALLER = ("draw a part of it (the graph of an intermediate tensor) or open it in the "
            "HTML viewer, g.to_html(path), which lays out large graphs in the page")


def _signal_name(number):
    try:
        return f"signal {signal.Signals(number).name} ({signal.strsignal(number)})"
    except ValueError:
        return f"signal {number}"


def _likely_cause(number):
    """SIGKILL out of the blue is, nearly always, the kernel's out-of-memory killer."""
    return ", most likely for running out of memory" if number == signal.SIGKILL else ""
