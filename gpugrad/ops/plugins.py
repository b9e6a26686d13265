"""Plugins: packages that declare ops under the entry-point group "gpugrad.ops".

An entry point names a module (importing it registers its ops, e.g. with @gg.custom_op)
or a function in one (called with no arguments to register them). Plugins load on first
use — a registry lookup that misses, `gpugrad ops list` — or with load_plugins(). A
plugin that fails to load gives a warning naming it, and never breaks `import gpugrad`.
"""

import warnings

from ..errors import GpugradError
from ..node import user_stacklevel
from .registry import REGISTRY

GROUP = "gpugrad.ops"
_loaded = False


class UnknownOpError(GpugradError, LookupError):
    """No op of that name is registered (built-in or by a plugin)."""


class PluginWarning(RuntimeWarning):
    """A plugin failed to load; its ops are unavailable."""


def _entry_points():
    from importlib.metadata import entry_points

    return list(entry_points(group=GROUP))


def load_plugins(force=False):
    """Load every installed plugin once; returns {plugin name: [op names] or error}."""
    global _loaded
    if _loaded and not force:
        return {}
    _loaded = True
    results = {}
    for ep in _entry_points():
        before = set(REGISTRY)
        dist = getattr(getattr(ep, "dist", None), "name", None)
        label = f"plugin {ep.name}" + (f" ({dist})" if dist and dist != ep.name else "")
        try:
            target = ep.load()
            if callable(target) and not hasattr(target, "infer"):
                target()
        except Exception as exc:  # a broken plugin must not break its host
            where = f" ({ep.value})" if ep.value != ep.name else ""
            warnings.warn(f"gpugrad {label}{where} failed to load: "
                          f"{type(exc).__name__}: {exc}", PluginWarning,
                          stacklevel=user_stacklevel())
            results[ep.name] = exc
            continue
        module = ep.value.split(":")[0]
        # The plugin's ops: new in the registry, or defined in its module (which may
        # have been imported before, by the user).
        added = sorted(name for name, op in REGISTRY.items()
                       if name not in before or _defined_in(op, module))
        for name in added:
            REGISTRY[name].source = label
        results[ep.name] = added
    return results


def _defined_in(op, module):
    forward = getattr(op, "_user_forward", None)
    where = getattr(forward, "__module__", None) or ""
    return where == module or where.startswith(module + ".")


def get(name):
    """The op registered as `name`, loading plugins first if it is not there yet. A
    built-in op may be named as graphs label it ("tanh" for "gpugrad::tanh")."""
    if name not in REGISTRY:
        load_plugins()
    if name not in REGISTRY and "::" not in name and f"gpugrad::{name}" in REGISTRY:
        name = f"gpugrad::{name}"
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownOpError(f"no op named {name!r}; `gpugrad ops list` shows them") from None
