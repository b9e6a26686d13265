"""nn.Module: a container of parameters, buffers and submodules, found through its
attributes, with state dicts, train/eval modes and device moves."""

import weakref

import numpy as np

from ..backends import device as as_device
from ..backends import transfer
from ..errors import StateDictError
from ..mode import state
from ..node import next_seq
from ..tensor import Tensor


class Module:
    """Base class of layers and models. Assign Tensors and Modules as attributes in
    __init__ (after super().__init__()): a Tensor that requires grad is a parameter,
    any other Tensor a buffer (saved in the state dict, not trained). Tensors first
    assigned after the module's first call (a forward caching an activation) stay plain
    attributes."""

    def __init__(self):
        object.__setattr__(self, "_order", {})  # attribute name -> "param"|"buffer"|"module"
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        order = self.__dict__.get("_order")
        if order is None:
            raise AttributeError(f"{type(self).__name__}.__init__ must call "
                                 "super().__init__() before assigning attributes")
        if isinstance(value, Tensor):
            if name not in order and self.__dict__.get("_called"):
                # after the first call (e.g. a forward caching an activation): a plain
                # attribute, not a parameter or buffer of the model
                object.__setattr__(self, name, value)
                return
            order[name] = "param" if value.requires_grad else "buffer"
        elif isinstance(value, Module):
            order[name] = "module"
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
        if state.capture is not None:  # gg.compile's trace: the plan is for this mode
            _guard_mode(self, state.capture)
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
    def named_modules(self, prefix=""):
        """(name, module) for this module and every submodule, depth first."""
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            yield name, module
            children = [(f"{name}.{key}" if name else key, getattr(module, key))
                        for key, kind in module._order.items() if kind == "module"]
            stack.extend(reversed([(n, m) for n, m in children if m is not None]))

    def modules(self):
        return [m for _, m in self.named_modules()]

    def children(self):
        return [getattr(self, k) for k, kind in self._order.items() if kind == "module"]

    def _named_tensors(self, kinds):
        for prefix, module in self.named_modules():
            for key, kind in module._order.items():
                if kind in kinds:
                    value = getattr(module, key)
                    if value is not None:
                        yield (f"{prefix}.{key}" if prefix else key), value

    def named_parameters(self):
        """(name, parameter) pairs, e.g. ("0.weight", ...), in definition order."""
        seen = set()
        for name, p in self._named_tensors(("param",)):
            if id(p) not in seen:  # a parameter shared by two layers counts once
                seen.add(id(p))
                yield name, p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self):
        return self._named_tensors(("buffer",))

    # --- state ----------------------------------------------------------------------------
    def state_dict(self):
        """{name: tensor} of every parameter and buffer: copies, so a later optimiser
        step (which updates parameters in place) does not change a state dict taken
        before it."""
        return {name: _copy(t) for name, t in self._named_tensors(("param", "buffer"))}

    def load_state_dict(self, state_dict, strict=True):
        """Copy values from `state_dict` into this module's tensors, on their devices and
        in their dtypes. Raises StateDictError listing every missing, unexpected and
        mis-shaped key; nothing is changed unless everything fits."""
        own = dict(self._named_tensors(("param", "buffer")))
        missing = [k for k in own if k not in state_dict]
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
            target._mark_modified()
        return {"missing_keys": missing, "unexpected_keys": unexpected}

    # --- modes and devices -----------------------------------------------------------------
    def train(self, mode=True):
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def to(self, device):
        """Move every parameter and buffer (the same Tensor objects) to `device`."""
        dest = as_device(device)
        for _, t in self._named_tensors(("param", "buffer")):
            move_tensor(t, dest)
        return self

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None  # (inside gg.compile's trace, the plan clears it too)

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        children = [(k, getattr(self, k)) for k, kind in self._order.items()
                    if kind == "module"]
        if not children:
            return lines[0] + ")"
        for key, child in children:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({key}): {body}")
        return "\n".join(lines) + "\n)"

    def extra_repr(self):
        return ""


def _guard_mode(module, recorder):
    """A plan traced through a module is for its train()/eval() mode (dropout draws in
    one and not in the other): switching the mode traces anew."""
    recorder.guard(lambda: module.training, f"{type(module).__name__} switched between "
                   "train() and eval()", key=("training", id(module)))


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


def move_tensor(t, dest):
    """Move a leaf tensor's data (and its gradient) to another device, in place."""
    if t.device is dest:
        return
    t._data = transfer(t._data, t.device, dest)
    t._device = dest
    t._mark_modified()
    if t.grad is not None:
        t.grad = t.grad.detach().to(dest)
    t._node = None  # its next use records a leaf on the new device
