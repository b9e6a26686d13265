"""What a node is called in a drawing (DOT and the HTML viewer alike), as str(g) calls
it: a parameter by its name in its module, a trace's argument by its position (arg0,
arg1, ...), a constant by its value, an op by its op name; other leaves are "input"."""


def title(data):
    """The first line of the label of a node of the networkx view (its attribute dict)."""
    if data.get("name"):  # a parameter: "MLP.0.weight"
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
