"""gpugrad.viz: looking at graphs — DOT (dot: forward and backward passes, module and
composite clusters, statistics on labels), rendering through Graphviz (render), exports
(node-link JSON, GraphML), summary tables, the self-contained HTML viewer (html), the
profiler (profile: time, memory, value and gradient statistics), and what they share:
the backward pass derived from a graph (backward), what nodes are called (labels),
module scopes (scopes), array statistics (stats) and memory accounting (memory).
Graph's methods (to_dot, render, to_html, to_json, to_graphml, summary) call into
these modules."""

from .diff import diff  # noqa: F401
from .export import to_graphml, to_json  # noqa: F401
from .html import to_html  # noqa: F401
from .profile import Profile, profile  # noqa: F401
from .render import RenderError, render  # noqa: F401
from .summary import summary  # noqa: F401
