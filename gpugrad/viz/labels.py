"""What a node is called in a drawing (DOT, the HTML viewer and summary() alike), as
str(g) calls it: a leaf by its name where the graph knows one — a parameter by its name
in its module ("MLP.0.weight"), a traced function's argument by the function's
parameter ("x", "labels") —, an unnamed argument by its position (arg0, arg1, ...), a
constant by its value, an op by its op name; other leaves are "input"."""

import inspect


def title(data):
    """The first line of the label of a node of the networkx view (its attribute dict)."""
    if data.get("name"):  # a parameter "MLP.0.weight", an argument "x"
        return data["name"]
    if data["kind"] == "input":
        if data.get("input_index") is not None:
            return f"arg{data['input_index']}"
        value = constant_value(data)
        if value is not None:
            return f"constant {value}"
    return data["op"]


def constant_value(data):
    """The value of a constant made of a Python number (x * 2.0), as text; None for any
    other node (an array gg.compile folded into a constant has no one value to show)."""
    if data["kind"] == "input" and data["op"] == "constant":
        return data["attrs"].get("value")
    return None


def argument_names(fn, count):
    """The names a call fn(*args) with `count` positional arguments binds them to, read
    from fn's signature once per trace (nothing per op): ["x", "labels"]; arguments
    that a *args parameter takes are "args[0]", "args[1]", ...; None where the
    signature does not say (a builtin, more arguments than fn takes by position). An
    nn.Module is called through its forward, whose signature names them (its __call__
    takes *args)."""
    from ..nn.module import Module

    fn = inspect.unwrap(fn)  # a gg.compile of fn, a decorated fn: fn's own parameters
    if isinstance(fn, Module):
        fn = fn.forward
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no signature to read
        return [None] * count
    names, rest = [], None
    for p in parameters:
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        elif p.kind is p.VAR_POSITIONAL:
            rest = p.name
    names = names[:count]
    return names + [None if rest is None else f"{rest}[{i}]"
                    for i in range(count - len(names))]
