"""Rendering DOT to SVG, PNG or PDF with Graphviz's `dot` program."""

import os
import shutil
import subprocess

from ..errors import GpugradError

FORMATS = ("svg", "png", "pdf")


class RenderError(GpugradError, RuntimeError):
    """Graphviz is missing or failed; the message says how to get it."""


def render(graph, path, format=None, **dot_options):  # noqa: A002  (Graphviz's word)
    """Write `graph` drawn by Graphviz to `path`; the format comes from the extension
    (.svg, .png, .pdf) unless given. Returns the path."""
    path = os.fspath(path)
    format = (format or os.path.splitext(path)[1].lstrip(".")).lower()
    if format not in FORMATS:
        raise ValueError(f"cannot render to {format or 'a file without extension'!r}; use "
                         f"one of {', '.join('.' + f for f in FORMATS)}")
    dot = shutil.which("dot")
    if dot is None:
        raise RenderError("rendering needs Graphviz's `dot` program: install it (Debian/"
                          "Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
                          "conda: conda install graphviz); g.to_dot() gives the DOT text "
                          "without it")
    result = subprocess.run([dot, f"-T{format}", "-o", path],
                            input=graph.to_dot(**dot_options), capture_output=True,
                            text=True, timeout=600)
    if result.returncode != 0:
        raise RenderError(f"Graphviz failed on this graph: {result.stderr.strip()}")
    return path
