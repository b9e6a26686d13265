"""gpugrad.viz: looking at graphs — rendering through Graphviz, exports (node-link JSON,
GraphML) and summary tables. Graph's methods (render, to_json, to_graphml, summary) call
into these modules."""

from .diff import diff  # noqa: F401
from .export import to_graphml, to_json  # noqa: F401
from .html import to_html  # noqa: F401
from .profile import Profile, profile  # noqa: F401
from .render import RenderError, render  # noqa: F401
from .summary import summary  # noqa: F401
