"""Module scopes: which nn.Module call each node of a graph was made in.

An nn.Module call takes a creation number when it starts and marks the node of its
output with it (node.marks), so recording costs nothing per op: the nodes made in the
call are those numbered after the start, up to the output (a node made after the output,
inside the same call, counts in the caller). Calls nest, so their ranges nest: a sweep
over the ranges in order, with an explicit stack, names each call after the one around
it ("MLP" at the top, "MLP.0" for its attribute "0"; a second call of one module
"MLP.0#2") and gives each node the innermost call that contains it.

A compiled program (gpugrad.compiler.program) keeps the trace's numbers on its nodes, but
its passes merge and drop nodes, the marked outputs among them: it reads the calls off
the trace once (module_calls) and hands them to its graphs.
"""


def module_scopes(nodes, calls):
    """({node seq: scope}, {path: module class name}) for `nodes` (seq -> Node, in
    creation order) made in `calls` (module_calls); a scope is a tuple of paths,
    outermost first, e.g. ("MLP", "MLP.0"), and () for a node made outside any module."""
    named, classes = _name(calls)
    scopes = {}
    open_, i = [], 0
    for seq in nodes:
        while i < len(named) and named[i][0] < seq:
            open_.append(named[i])
            i += 1
        while open_ and open_[-1][1] < seq:
            open_.pop()
        scopes[seq] = open_[-1][2] if open_ else ()
    return scopes, classes


def module_calls(nodes):
    """[(start, end, module reference, class name)] of the calls marked on `nodes` (an
    iterable of Nodes), in the order they began (a call returning several outputs ends
    at the last)."""
    calls = {}
    for node in nodes:
        for start, ref, cls in node.marks or ():
            known = calls.get(start)
            if known is None or node.seq > known[1]:
                calls[start] = (start, node.seq, ref, cls)
    return [calls[start] for start in sorted(calls)]


def _name(calls):
    """[(start, end, scope)] and {path: class name}: each call named inside the call
    that contains it; a later call of a name already taken (a module called twice,
    `self.shared(self.shared(x))`) is numbered, "Net.shared#2", so that each call is a
    scope of its own: one scope for both would hold the work done between them too."""
    from ..nn.module import child_name

    named, classes, around = [], {}, []  # around: (end, scope, module) of open calls
    taken = {}  # path -> how many calls have had it
    for start, end, ref, cls in calls:
        while around and around[-1][0] < start:
            around.pop()
        module = ref()  # None once the module is gone: then named by its class
        if around:
            _, outer, parent = around[-1]
            key = child_name(parent, module) if parent is not None and module is not None \
                else None
            path = f"{outer[-1]}.{key or cls}"
        else:
            outer, path = (), cls
        taken[path] = taken.get(path, 0) + 1
        if taken[path] > 1:
            path = f"{path}#{taken[path]}"
        scope = outer + (path,)
        classes[path] = cls
        around.append((end, scope, module))
        named.append((start, end, scope))
    return named, classes


def parameter_names(nodes, calls):
    """{leaf seq: "MLP.0.weight"} for the leaves of `nodes` that are parameters (or
    buffers: "Net.bn.running_mean") of a module called in `calls` (module_calls), named
    from the outermost call that holds them; in a compiled program, also the leaves that
    belong to a parameter (its .grad, its optimiser state "MLP.0.weight.exp_avg", the
    update's host scalars), from their feed's `about` (gpugrad.compiler.capture.Feed)."""
    owners = {}  # id(parameter or buffer) -> its full name
    for (_, _, ref, _), (_, _, scope) in zip(calls, _name(calls)[0], strict=True):
        module = ref()
        if module is None:
            continue
        for name, t in (*module.named_parameters(), *module.named_buffers()):
            owners.setdefault(id(t), f"{scope[-1]}.{name}")
            if t._node is not None:  # (see _tensor_of)
                owners.setdefault(id(t._node), f"{scope[-1]}.{name}")
    names = {}
    for seq, node in nodes.items():
        key = _tensor_of(node) if node.op.is_leaf else None
        if key is not None and id(key) in owners:
            names[seq] = owners[id(key)]
        about = getattr((node.meta or {}).get("feed"), "about", None)
        if about is not None:
            owner, text, fallback = about
            name = owners.get(id(owner), fallback)
            if name is not None:
                names[seq] = text.format(name)
    return names


def _tensor_of(leaf):
    """What tells which tensor a leaf node stands for: the tensor, where the node keeps a
    reference to it (one that requires grad; in a compiled program, the tensor each run
    reads); else the node itself, which a leaf tensor keeps as its own (a buffer, which
    requires no grad, is known that way)."""
    if leaf.ref is not None:
        return leaf.ref()
    feed = (leaf.meta or {}).get("feed")
    if feed is not None:
        return feed.source if feed.kind == "tensor" else None
    return leaf
