"""nn.Module: a container of parameters, buffers and submodules, found through its
attributes, with state dicts, train/eval modes and device moves."""

import weakref
from typing import NamedTuple

import numpy as np

from ..backends import device as as_device
from ..backends import transfer
from ..errors import StateDictError, retyped
from ..mode import state
from ..node import next_seq
from ..tensor import Tensor


class IncompatibleKeys(NamedTuple):
    """What load_state_dict found on one side only: unpacked as a pair, or read by name
    (result.missing_keys), as PyTorch's result is."""

    missing_keys: list
    unexpected_keys: list


class Module:
    """Base class of layers and models. Assign Tensors and Modules as attributes in
    __init__ (after super().__init__()): a Tensor that requires grad (or made by
    nn.Parameter, frozen or not) is a parameter, any other Tensor a buffer (saved in the
    state dict, not trained) until it is made to require grad. A parameter stays one: a
    tensor assigned in its place must be trainable too (as in PyTorch; else it would
    silently drop out of training). Tensors first assigned after the module's first call
    (a forward caching an activation) stay plain attributes, but for one made by
    nn.Parameter, a parameter whenever it is assigned."""

    def __init__(self):
        object.__setattr__(self, "_order", {})  # attribute name -> "param"|"buffer"|"module"
        object.__setattr__(self, "_training", True)

    @property
    def training(self):
        """True in train() mode, False in eval(). Read inside gg.compile's trace (by
        Dropout, BatchNorm, a forward of one's own, called or not through the module),
        it makes the plan one for this mode: switching it traces anew. A module whose
        forward never reads it keeps its plan in either mode."""
        if state.capture is not None:
            _guard_mode(self, state.capture)
        return self.__dict__["_training"]

    @training.setter
    def training(self, mode):
        object.__setattr__(self, "_training", bool(mode))

    def __setattr__(self, name, value):
        order = self.__dict__.get("_order")
        if order is None:
            raise AttributeError(f"{type(self).__name__}.__init__ must call "
                                 "super().__init__() before assigning attributes")
        if isinstance(value, Tensor):
            if name not in order and self.__dict__.get("_called") and \
                    not _is_declared(value):
                # after the first call (e.g. a forward caching an activation): a plain
                # attribute, not a parameter or buffer of the model. An nn.Parameter is
                # one whenever it is assigned, as in PyTorch (a learned scale added to a
                # model already run): a plain attribute, it was silently never trained
                # and missing from the state dict.
                object.__setattr__(self, name, value)
                return
            order[name] = _tensor_kind(self, name, value, order.get(name))
        elif isinstance(value, Module):
            order[name] = "module"
        elif isinstance(value, (list, tuple, dict)) and _holds_a_module(value):
            raise TypeError(_unregistered_container(self, name, value))
        elif value is None and name in order:
            pass  # e.g. bias=None: keeps its place, yields nothing
        else:
            order.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._order.pop(name, None)
        object.__delattr__(self, name)

    def __call__(self, *args, **kwargs):
        tag = self.__dict__.get("_tag")
        if tag is None:
            tag = self._first_call()
        # The nodes made inside this call are numbered after `start`; the output's node
        # keeps (start, module, class name), and its own number ends the range: a graph
        # can then group its nodes by module (clusters, the viewer's boxes) at no cost
        # per op, and a few attribute reads per call.
        start = next_seq()
        out = self.forward(*args, **kwargs)
        if out.__class__ is Tensor:
            node = out._node
            if node is not None and node.seq > start:
                mark = (start,) + tag
                node.marks = (mark,) if node.marks is None else node.marks + (mark,)
        elif out.__class__ is tuple or out.__class__ is list:
            _mark_outputs(out, (start,) + tag)
        return out

    def _first_call(self):
        """Note the first call (see __setattr__), and make the tag that marks calls: a
        weak reference (a graph does not keep the module alive) and the class name."""
        object.__setattr__(self, "_called", True)
        tag = (weakref.ref(self), type(self).__name__)
        object.__setattr__(self, "_tag", tag)
        return tag

    def __getstate__(self):
        # The weak reference in the tag of calls does not pickle; made again on a call.
        state = dict(self.__dict__)
        state.pop("_tag", None)
        return state

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    # --- walking the tree (iteratively) ------------------------------------------------
    def named_modules(self, prefix="", remove_duplicate=True):
        """(name, module) for this module and every submodule, depth first. A module held
        in two places, or one that holds a module above it (a cycle), is listed once,
        under its first name, as PyTorch's named_modules does; remove_duplicate=False
        lists it under every name, cutting only the cycles."""
        return _walk(self, prefix, every_path=not remove_duplicate)

    def modules(self):
        return [m for _, m in self.named_modules()]

    def named_children(self):
        """(attribute name, module) of the direct submodules, each module once."""
        seen = set()
        for key, kind in self._order.items():
            module = getattr(self, key)
            if kind == "module" and module is not None and id(module) not in seen:
                seen.add(id(module))
                yield key, module

    def children(self):
        """The direct submodules, each once, as PyTorch's children()."""
        return [m for _, m in self.named_children()]

    def _named_tensors(self, kinds, every_path=False):
        for prefix, module in _walk(self, "", every_path):
            for key, kind in module._order.items():
                if kind == "module":
                    continue
                value = getattr(module, key)
                if value is None:
                    continue
                if kind == "buffer" and value._requires_grad:
                    kind = "param"  # self.w = randn(...) * 0.1; self.w.requires_grad_()
                if kind in kinds:
                    yield (f"{prefix}.{key}" if prefix else key), value

    def named_parameters(self):
        """(name, parameter) pairs, e.g. ("0.weight", ...), in definition order."""
        return _first_of_each(self._named_tensors(("param",)))

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self):
        return _first_of_each(self._named_tensors(("buffer",)))

    # --- state ----------------------------------------------------------------------------
    def state_dict(self):
        """{name: tensor} of every parameter and buffer: copies, so a later optimiser
        step (which updates parameters in place) does not change a state dict taken
        before it."""
        # Every name of a submodule held in two places, as PyTorch keys it (so that its
        # state dicts load here and ours there); a cycle is cut.
        return {name: _copy(t) for name, t in self._named_tensors(("param", "buffer"),
                                                                   every_path=True)}

    def load_state_dict(self, state_dict, strict=True):
        """Copy values from `state_dict` into this module's tensors, on their devices and
        in their dtypes. Raises StateDictError listing every missing, unexpected and
        mis-shaped key; nothing is changed unless everything fits. A key a module
        declares optional (BatchNorm1d's num_batches_tracked, as in PyTorch) may be
        absent: that tensor keeps its value, and is not a missing key. Returns the keys
        passed over (strict=False) as PyTorch does: `missing, unexpected = ...`."""
        own = dict(self._named_tensors(("param", "buffer"), every_path=True))
        optional = _optional_keys(self)
        missing = [k for k in own if k not in state_dict and k not in optional]
        unexpected = [k for k in state_dict if k not in own]
        updates, mismatched = [], []
        for name, target in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            host = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
            if tuple(host.shape) != target.shape:
                mismatched.append(f"{name}: checkpoint {tuple(host.shape)}, model "
                                  f"{target.shape}")
                continue
            updates.append((target, host))
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if mismatched:
            problems.append("shape mismatch for " + "; ".join(mismatched))
        if problems:
            raise StateDictError(f"cannot load the state dict into {type(self).__name__}: "
                                 + "; ".join(problems))
        arrays = [(t, t.device.backend.from_host(h, t.dtype)) for t, h in updates]
        for target, array in arrays:  # all converted first: no half-loaded module
            target._data = array
            target._mark_replaced()
        return IncompatibleKeys(missing, unexpected)

    def _optional_state(self):
        """Names of this module's own tensors that a state dict may lack (each then keeps
        its value): none, unless a module says otherwise."""
        return ()

    # --- modes and devices -----------------------------------------------------------------
    def train(self, mode=True):
        for module in self.modules():
            object.__setattr__(module, "_training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def to(self, device):
        """Move every parameter and buffer (the same Tensor objects) to `device`: all are
        copied there first, then all switched, so that a copy that fails (the device's
        memory, a dtype it lacks) leaves the whole module where it was, not split."""
        dest = as_device(device)
        moves = [_copied_to(self, name, t, dest)
                 for name, t in _first_of_each(self._named_tensors(("param", "buffer")))
                 if t.device is not dest]
        for t, data, grad in moves:
            _switch(t, data, grad, dest)
        return self

    def zero_grad(self, set_to_none=True):
        zero_grads(self.parameters(), set_to_none)

    def __repr__(self):
        return _tree_repr(self)

    def extra_repr(self):
        return ""


# Tensors made by nn.Parameter, by id (a weak map: an id is not reused while its tensor
# lives): parameters even when made frozen (requires_grad=False), as PyTorch's are.
_declared = weakref.WeakValueDictionary()


def declare_parameter(t):
    _declared[id(t)] = t
    return t


def _is_declared(t):
    return _declared.get(id(t)) is t


def _tensor_kind(owner, name, value, before):
    """"param" or "buffer" for a Tensor assigned as `name`; in place of a parameter, a
    tensor that cannot be trained is a TypeError, as in PyTorch."""
    trainable = value._requires_grad or _is_declared(value)
    if before == "param" and not trainable:
        raise TypeError(
            f"cannot assign a tensor that does not require grad as parameter {name!r} of "
            f"{type(owner).__name__}: it would silently never be trained; assign "
            "nn.Parameter(t) (or t.requires_grad_()), or `del` the attribute first to keep "
            "it as a buffer")
    return "param" if trainable else "buffer"


def _guard_mode(module, recorder):
    """A plan traced through a module is for its train()/eval() mode (dropout draws in
    one and not in the other): switching the mode traces anew."""
    recorder.guard(lambda: module.__dict__["_training"], f"{type(module).__name__} "
                   "switched between train() and eval()", key=("training", id(module)))


def _mark_outputs(outputs, mark):
    """Mark the nodes made inside a call among the tensors it returned."""
    for out in outputs:
        node = out._node if isinstance(out, Tensor) else None
        if node is not None and node.seq > mark[0]:
            node.marks = (mark,) if node.marks is None else node.marks + (mark,)


def child_name(parent, child):
    """The attribute name under which `parent` holds `child` (None if it does not)."""
    for name, kind in parent._order.items():
        if kind == "module" and parent.__dict__.get(name) is child:
            return name
    return None


def _copy(t):
    return Tensor._wrap(t.device.backend.astype(t._data, t.dtype), t.dtype, t.device, False)


def _copied_to(module, name, t, dest):
    """(t, its array on dest, its gradient's array on dest or None); an error names the
    module's call, the tensor and what it is."""
    try:
        data = transfer(t._data, t.device, dest)
        grad = t._grad
        grad = None if grad is None else transfer(grad._data, grad.device, dest)
    except Exception as exc:
        raise retyped(exc, f"{type(module).__name__}.to({str(dest)!r}): {name} (shape "
                           f"{t.shape}, {t.dtype}, on {t.device}) could not be copied: "
                           f"{exc}; nothing was moved") from exc
    return t, data, grad


def _switch(t, data, grad, dest):
    """Give a leaf tensor its array (and gradient) on another device, in place."""
    t._data = data
    t._device = dest
    t._mark_replaced()
    if grad is not None:
        t.grad = Tensor._wrap(grad, t._grad.dtype, dest, False)
    t._node = None  # its next use records a leaf on the new device


def _walk(root, prefix, every_path):
    """(name, module) for root and its submodules, depth first, with a stack (no
    recursion: a tree may be deep, or hold a cycle). Without every_path a memo lists each
    module once, at its first name, as PyTorch's named_modules does; with it a module is
    listed at every path that reaches it, and a path stops where it would enter a module
    already on it (a cycle, such as `self.c.parent = self`)."""
    seen = set()
    stack = [(prefix, root, frozenset((id(root),)))]
    while stack:
        name, module, path = stack.pop()
        if not every_path:
            if id(module) in seen:  # reached again, after a sibling's subtree reached it
                continue
            seen.add(id(module))
        yield name, module
        children = []
        for key, kind in module._order.items():
            child = getattr(module, key) if kind == "module" else None
            if child is None or id(child) in (path if every_path else seen):
                continue
            children.append((f"{name}.{key}" if name else key, child,
                             path | {id(child)} if every_path else path))
        stack.extend(reversed(children))


def _optional_keys(root):
    """The state-dict keys, under every path to each module, that may be absent."""
    return {f"{prefix}.{key}" if prefix else key
            for prefix, module in _walk(root, "", every_path=True)
            for key in module._optional_state()}


def _first_of_each(named):
    """The (name, tensor) pairs of `named`, each tensor once: a parameter shared by two
    layers is trained (and counted) once, under its first name."""
    seen = set()
    for name, t in named:
        if id(t) not in seen:
            seen.add(id(t))
            yield name, t


def _holds_a_module(value):
    """Whether a list, tuple or dict holds a Module, also inside nested ones."""
    stack, seen = [value], set()
    while stack:
        container = stack.pop()
        if id(container) in seen:
            continue
        seen.add(id(container))
        for item in container.values() if isinstance(container, dict) else container:
            if isinstance(item, Module):
                return True
            if isinstance(item, (list, tuple, dict)):
                stack.append(item)
    return False


def _unregistered_container(owner, name, value):
    """The error for `self.name = [modules...]`: a plain container would hide the modules
    from parameters(), state_dict(), train()/eval() and .to(), so an optimiser given
    model.parameters() would never train them."""
    kind = type(value).__name__
    fix = "nn.ModuleDict({...})" if isinstance(value, dict) else "nn.ModuleList([...])"
    return (f"{type(owner).__name__}.{name}: a {kind} holding Modules is not registered "
            "(their parameters would be missing from parameters(), state_dict() and the "
            f"optimiser, and train()/eval()/.to() would skip them); use {fix}")


def check_child_name(owner, name):
    """A name under which a container (Sequential, ModuleDict) holds a submodule as an
    attribute: a non-empty str without '.' (the separator of state-dict keys), not
    already an attribute of another kind (ModuleDict({"forward": ...}) would shadow the
    method, as PyTorch refuses too)."""
    what = type(owner).__name__
    if not isinstance(name, str):
        raise TypeError(f"{what}: a module name must be a str, got {type(name).__name__} "
                        f"{name!r}")
    if not name or "." in name:
        raise ValueError(f"{what}: a module name must be non-empty and have no '.', got "
                         f"{name!r}")
    if owner._order.get(name) != "module" and (hasattr(owner, name) or
                                               name in ("_called", "_tag")):
        raise ValueError(f"{what}: {name!r} cannot name a module: it is an attribute of "
                         f"the {what} itself")


def replace_children(owner, items):
    """Make `items` ((name, module) pairs) owner's submodules, in that order: how a
    container renumbers its modules after an insert or a delete."""
    for key in [k for k, kind in owner._order.items() if kind == "module"]:
        delattr(owner, key)
    for name, module in items:
        setattr(owner, name, module)


def zero_grads(params, set_to_none=True):
    """Clear each tensor's .grad: to None (the default, as in PyTorch: the next backward
    stores its gradient rather than adding it to zeros), or, with set_to_none=False, to
    zeros in the same grad tensor, as PyTorch does (code holding `g = p.grad` sees the
    zeros). A .grad that is None stays None either way."""
    for p in params:
        if set_to_none:
            p.grad = None  # (inside gg.compile's trace, the plan clears it too)
        elif p.grad is not None:
            _zero_grad_in_place(p)


def _zero_grad_in_place(p):
    g = p.grad
    if state.capture is not None:
        # A plan records writes into the tensors it reads, not into a .grad from before
        # the call: zeros the function makes are given to .grad on every run instead.
        from ..creation import zeros

        p.grad = zeros(shape=g.shape, dtype=g.dtype, device=g.device)
        return
    # A fresh array, not zeros written into g's: backward may have handed one gradient
    # array to several tensors, which must not change with it.
    g._data = g.device.backend.full(g.shape, 0, g.dtype)
    g._node = None  # detached from the graph that made it, as PyTorch detaches it
    g._requires_grad = False
    g._mark_replaced()  # (it shares no array any more)


def _tree_repr(root):
    """The module tree as PyTorch prints it: each module on a line, its submodules
    indented below it; built with a stack (no recursion over the tree). A module that
    holds one above it (a cycle) names it instead of printing it again."""
    lines = []
    stack = [(0, "", root, frozenset())]
    while stack:
        entry = stack.pop()
        if isinstance(entry, str):  # the closing line of a module with submodules
            lines.append(entry)
            continue
        depth, label, module, above = entry
        indent = "  " * depth
        if module is None or id(module) in above:
            what = "None" if module is None else \
                f"<cycle: the {type(module).__name__} above>"
            lines.append(f"{indent}{label}{what}")
            continue
        head = f"{indent}{label}{type(module).__name__}(" + \
            module.extra_repr().replace("\n", "\n" + indent)
        children = [(k, getattr(module, k)) for k, kind in module._order.items()
                    if kind == "module"]
        if not children:
            lines.append(head + ")")
            continue
        lines.append(head)
        stack.append(indent + ")")
        inner = above | {id(module)}
        stack.extend((depth + 1, f"({key}): ", child, inner)
                     for key, child in reversed(children))
    return "\n".join(lines)
