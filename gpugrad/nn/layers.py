"""Layers: Linear, the containers (Sequential, ModuleList, ModuleDict), activations,
Identity, Flatten, Dropout, the norms (LayerNorm, BatchNorm1d), and MLP."""

import math
import numbers
import operator

from ..creation import ones, zeros
from ..errors import ShapeError
from ..mode import no_grad
from ..ops import elementwise as ew
from ..ops.registry import _annotate
from ..spec import whole_number
from . import functional as F
from .init import INITIALISERS
from .module import Module, check_child_name, replace_children


class Linear(Module):
    """y = x @ W.T + b, W of shape (out_features, in_features), as in PyTorch."""

    def __init__(self, in_features, out_features, bias=True, init="kaiming", dtype=None,
                 device=None):
        super().__init__()
        if init not in INITIALISERS:
            raise ValueError(f"unknown init {init!r}; use one of {sorted(INITIALISERS)}")
        self.in_features = whole_number(in_features, "Linear's in_features")
        self.out_features = whole_number(out_features, "Linear's out_features")
        if self.in_features < 1 or self.out_features < 1:
            raise ValueError(f"Linear needs positive sizes, got in_features={in_features}, "
                             f"out_features={out_features}")
        weight = INITIALISERS[init]((self.out_features, self.in_features), dtype, device)
        self.weight = weight.detach().requires_grad_()
        self.bias = zeros(self.out_features, dtype=weight.dtype, device=weight.device,
                          requires_grad=True) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)  # one op: x @ W.T + b

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"bias={self.bias is not None}"


def _module_or_error(owner, how, module):
    if not isinstance(module, Module):
        raise TypeError(f"{type(owner).__name__}.{how} takes a Module, got a "
                        f"{type(module).__name__}")
    return module


class _ModuleSequence(Module):
    """What Sequential and ModuleList share: submodules in order, held as attributes
    under their names ("0", "1", ... unless given), so that they are registered like any
    other submodule; indexable (negative indices too), iterable, editable in place."""

    def __len__(self):
        return len(self._named_children_in_order())

    def __iter__(self):
        return iter([m for _, m in self._named_children_in_order()])

    def __getitem__(self, index):
        items = self._named_children_in_order()
        if isinstance(index, slice):
            return self._slice(items[index])
        return items[_position(self, index, len(items))][1]

    def __setitem__(self, index, module):
        if isinstance(index, slice):
            raise TypeError(f"{type(self).__name__} takes one module at a time: assign "
                            "s[i] = module")
        _module_or_error(self, "__setitem__", module)
        items = self._named_children_in_order()
        setattr(self, items[_position(self, index, len(items))][0], module)  # same name

    def __delitem__(self, index):
        modules = [m for _, m in self._named_children_in_order()]
        if isinstance(index, slice):
            del modules[index]
        else:
            del modules[_position(self, index, len(modules))]
        self._renumber(modules)  # as PyTorch: "0", "1", ... again

    def append(self, module):
        _module_or_error(self, "append", module)
        setattr(self, self._free_name(), module)
        return self

    def extend(self, modules):
        if not hasattr(modules, "__iter__"):
            raise TypeError(f"{type(self).__name__}.extend takes an iterable of Modules, "
                            f"got a {type(modules).__name__}")
        modules = [_module_or_error(self, "extend", m) for m in modules]  # all or none
        for module in modules:
            setattr(self, self._free_name(), module)
        return self

    def insert(self, index, module):
        """Put `module` before position `index` (len(self): at the end), renumbering."""
        _module_or_error(self, "insert", module)
        modules = [m for _, m in self._named_children_in_order()]
        index = operator.index(index)
        if not -len(modules) <= index <= len(modules):
            raise IndexError(f"{type(self).__name__}.insert: index {index} is out of range "
                             f"for {len(modules)} modules")
        modules.insert(index, module)
        self._renumber(modules)
        return self

    def pop(self, index):
        module = self[index]
        del self[index]
        return module

    def _named_children_in_order(self):
        return [(k, getattr(self, k)) for k, kind in self._order.items() if kind == "module"]

    def _renumber(self, modules):
        replace_children(self, [(str(i), m) for i, m in enumerate(modules)])

    def _free_name(self):
        """The name of an appended module: its position, as in PyTorch, unless a module
        holds that name already (a slice keeps its names: s[1:] holds "1" and "2", and
        PyTorch's append would replace "2"); then the next number free."""
        n = len(self)
        while self._order.get(str(n)) == "module":
            n += 1
        return str(n)


def _position(owner, index, n):
    """index as a position in [0, n), counting from the end when negative."""
    i = operator.index(index)  # ints and NumPy ints; a float or str is a TypeError
    if not -n <= i < n:
        raise IndexError(f"{type(owner).__name__} index {index} is out of range for "
                         f"{n} modules")
    return i % n


class Sequential(_ModuleSequence):
    """Modules applied one after another; indexable, iterable, editable (append, extend,
    insert, s[i] = m, del s[i]). A slice is a Sequential of the same module objects
    under their names here (s[1:] of three Linears has "1.weight" and "2.weight"), as
    in PyTorch."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], dict):  # Sequential(OrderedDict(...))
            items = [(str(name), module) for name, module in modules[0].items()]
        else:
            items = [(str(i), module) for i, module in enumerate(modules)]
        for name, module in items:
            if not isinstance(module, Module):
                hint = " (unpack a list: Sequential(*layers))" \
                    if isinstance(module, (list, tuple)) else ""
                raise TypeError(f"Sequential takes Modules, got a {type(module).__name__} "
                                f"as its entry {name!r}{hint}")
            check_child_name(self, name)
            setattr(self, name, module)

    def _slice(self, items):
        return Sequential(dict(items))

    def forward(self, x):
        for module in self:  # every entry in order: a module held twice runs twice
            x = module(x)
        return x


class ModuleList(_ModuleSequence):
    """A list of submodules, registered as "0", "1", ...: their parameters are the
    model's (model.layers.0.weight), train()/eval() and .to() reach them. It has no
    forward: the owner's forward decides how to use them. A slice is a new ModuleList
    of the same modules, numbered from 0, as in PyTorch."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _slice(self, items):
        return ModuleList([m for _, m in items])


class ModuleDict(Module):
    """A dict of submodules, registered under their keys (str, without '.'): their
    parameters are the model's (model.heads.cls.weight), train()/eval() and .to() reach
    them. Keys keep their insertion order. It has no forward."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        if key not in self:
            raise KeyError(key)
        return getattr(self, key)

    def __setitem__(self, key, module):
        _module_or_error(self, "__setitem__", module)
        check_child_name(self, key)
        setattr(self, key, module)

    def __delitem__(self, key):
        if key not in self:
            raise KeyError(key)
        delattr(self, key)

    def __len__(self):
        return len(self.keys())

    def __iter__(self):
        return iter(self.keys())

    def __contains__(self, key):
        return isinstance(key, str) and self._order.get(key) == "module"

    def keys(self):
        return [k for k, kind in self._order.items() if kind == "module"]

    def values(self):
        return [getattr(self, k) for k in self.keys()]

    def items(self):
        return [(k, getattr(self, k)) for k in self.keys()]

    def pop(self, key):
        module = self[key]
        del self[key]
        return module

    def clear(self):
        replace_children(self, [])

    def update(self, modules):
        """Add or replace modules from a mapping (a dict, a ModuleDict) or an iterable of
        (key, module) pairs; all are checked before any is added."""
        if hasattr(modules, "keys") and hasattr(modules, "__getitem__"):
            pairs = [(key, modules[key]) for key in modules.keys()]
        elif hasattr(modules, "__iter__") and not isinstance(modules, Module):
            pairs = [_pair(entry) for entry in modules]
        else:
            raise TypeError("ModuleDict.update takes a mapping or an iterable of (key, "
                            f"module) pairs, got a {type(modules).__name__}")
        for key, module in pairs:
            _module_or_error(self, "update", module)
            check_child_name(self, key)
        for key, module in pairs:
            setattr(self, key, module)


def _pair(entry):
    if not isinstance(entry, (list, tuple)) or len(entry) != 2:
        raise TypeError(f"ModuleDict.update takes (key, module) pairs, got {entry!r}")
    return tuple(entry)


class ReLU(Module):
    def forward(self, x):
        return ew.relu(x)


class Sigmoid(Module):
    def forward(self, x):
        return ew.sigmoid(x)


class Tanh(Module):
    def forward(self, x):
        return ew.tanh(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class SiLU(Module):
    def forward(self, x):
        return F.silu(x)


class GELU(Module):
    """x * Phi(x), Phi the standard normal distribution function; approximate="tanh" for
    the tanh form (F.gelu). A wrong `approximate` fails here, not at the first call."""

    def __init__(self, approximate="none"):
        super().__init__()
        F._check_gelu_approximation("GELU", approximate)
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class LayerNorm(Module):
    """Each sample normalised over its last axes (normalized_shape), then scaled and
    shifted by a learned weight (ones) and bias (zeros), as PyTorch's LayerNorm."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 dtype=None, device=None):
        super().__init__()
        # numbers.Integral, not int: a NumPy integer (a shape read off an array) is one size
        shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) \
            else tuple(normalized_shape)
        self.normalized_shape = tuple(whole_number(n, "LayerNorm's normalized_shape")
                                      for n in shape)
        self.eps = eps
        self.weight = ones(*self.normalized_shape, dtype=dtype, device=device,
                           requires_grad=True) if elementwise_affine else None
        self.bias = zeros(*self.normalized_shape, dtype=dtype, device=device,
                          requires_grad=True) if elementwise_affine and bias else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, " \
               f"elementwise_affine={self.weight is not None}, bias={self.bias is not None}"


class BatchNorm1d(Module):
    """Each feature normalised over the batch (N, C) or (N, C, L) in training, by the
    running mean and variance in eval mode; scaled and shifted by a learned weight and
    bias, as PyTorch's BatchNorm1d. Training normalises by the batch's biased variance
    and updates the running variance with the unbiased one (momentum: the new batch's
    share; None: a cumulative average)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=None, device=None):
        super().__init__()
        self.num_features = whole_number(num_features, "BatchNorm1d's num_features")
        self.eps, self.momentum = eps, momentum
        make = {"dtype": dtype, "device": device}
        self.weight = ones(self.num_features, requires_grad=True, **make) if affine else None
        self.bias = zeros(self.num_features, requires_grad=True, **make) if affine else None
        if track_running_stats:
            self.running_mean = zeros(self.num_features, **make)
            self.running_var = ones(self.num_features, **make)
            self.num_batches_tracked = zeros((), dtype="int64", device=device)
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def forward(self, x):
        axes = _batch_axes("BatchNorm1d", x, self.num_features)
        F._check_norm_dtypes("BatchNorm1d", x, weight=self.weight, bias=self.bias,
                             running_mean=self.running_mean, running_var=self.running_var)
        shape = (1, self.num_features) + (1,) * (x.ndim - 2)
        if self.training or self.running_mean is None:
            n = _values_per_feature("BatchNorm1d", x, axes)
            y, mean, var = F._standardized(x, axes, self.eps)
            if self.training and self.running_mean is not None:
                self._track(mean, var, n)
        else:
            y = (F._working(x) - self.running_mean.reshape(shape)) / \
                (self.running_var.reshape(shape) + self.eps).sqrt()
        if self.weight is not None:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y.astype(x.dtype)  # rounded once, after the scale and shift

    def _optional_state(self):
        # As PyTorch: a state dict from before the count existed (PyTorch < 0.4.1) has
        # none, and loads, the module keeping its own count.
        return () if self.num_batches_tracked is None else ("num_batches_tracked",)

    def _track(self, mean, var, n):
        """The running statistics moved towards this batch's by the momentum m (the
        variance unbiased: n / (n - 1), as PyTorch keeps it), outside the graph. Each
        buffer is updated once, as its last use (what a compiled step can replay):
        r += m (batch - r), PyTorch's (1 - m) r + m batch to a rounding."""
        with no_grad():
            m = self.momentum
            if m is None:  # a cumulative average over the batches so far, this one too
                m = 1.0 / (self.num_batches_tracked + 1).astype(self.running_mean.dtype)
            unbiased = var.reshape(-1) * (n / max(n - 1, 1))
            self.running_mean += m * (mean.reshape(-1) - self.running_mean)
            self.running_var += m * (unbiased - self.running_var)
            self.num_batches_tracked += 1

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, " \
               f"affine={self.weight is not None}, " \
               f"track_running_stats={self.running_mean is not None}"


def _batch_axes(name, x, features):
    """The axes a batch norm averages over: the batch and, for (N, C, L), the length."""
    if x.ndim not in (2, 3) or x.shape[1] != features:
        raise _annotate(name, ShapeError(
            f"expected input of shape (N, {features}) or (N, {features}, L), got "
            f"{tuple(x.shape)}"))
    return (0,) if x.ndim == 2 else (0, 2)


def _values_per_feature(name, x, axes):
    """How many values each feature's batch statistics are taken over. One alone has no
    spread: it would normalise to 0 whatever it is (and put a variance of 0 in the running
    one), silently, so it is refused, as PyTorch refuses it."""
    n = math.prod(x.shape[axis] for axis in axes)
    if n == 1:
        raise _annotate(name, ValueError(
            f"expected more than 1 value per channel for batch statistics (training, or "
            f"no running statistics), got input of shape {tuple(x.shape)}"))
    return n


class Identity(Module):
    """Its input, as it is (a placeholder where a layer is optional); arguments are
    taken and ignored, as PyTorch's, so it stands in for any layer's constructor."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Flatten(Module):
    """The axes from start_dim to end_dim as one (by default all but the batch axis),
    as PyTorch's Flatten."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.reshape(_flattened_shape(x.shape, self.start_dim, self.end_dim))

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


def _flattened_shape(shape, start_dim, end_dim):
    ndim = max(len(shape), 1)  # a 0-d input flattens to one element, as in PyTorch
    start, end = (d + ndim if d < 0 else d for d in (start_dim, end_dim))
    if not (0 <= start < ndim and 0 <= end < ndim) or start > end:
        raise _annotate("Flatten", ShapeError(
            f"start_dim={start_dim}, end_dim={end_dim} do not name axes start <= end of "
            f"a tensor of shape {tuple(shape)}"))
    return tuple(shape[:start]) + (math.prod(shape[start:end + 1]),) + tuple(shape[end + 1:])


class Softmax(Module):
    def __init__(self, axis=-1, *, dim=None):
        super().__init__()
        self.axis = axis if dim is None else dim  # dim=: PyTorch's word, as F.softmax takes

    def forward(self, x):
        return F.softmax(x, axis=self.axis)

    def extra_repr(self):
        return f"dim={self.axis}"


class LogSoftmax(Softmax):
    def forward(self, x):
        return F.log_softmax(x, axis=self.axis)


class Dropout(Module):
    """Zeroes each element with probability p in training, scaling the rest by 1/(1-p);
    the identity in eval mode. p=1 zeroes everything (and the gradient), as in PyTorch."""

    def __init__(self, p=0.5):
        super().__init__()
        F._check_probability("Dropout", p)
        self.p = float(p)

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh, "gelu": GELU, "silu": SiLU,
               "leaky_relu": LeakyReLU}
# He (Kaiming) initialisation keeps the variance of activations through layers that pass
# about half of it (ReLU and its smooth kin); Glorot (Xavier) through the symmetric ones.
KAIMING_ACTIVATIONS = ("relu", "gelu", "silu", "leaky_relu")
OUTPUTS = {None: None, "linear": None, "sigmoid": Sigmoid, "softmax": Softmax}


class MLP(Sequential):
    """A multilayer perceptron: MLP([784, 256, 10]) is Linear(784, 256), ReLU,
    Linear(256, 10). activation: "relu" | "sigmoid" | "tanh" | "gelu" | "silu" |
    "leaky_relu"; output: None (logits, for
    the *_with_logits and cross_entropy losses) | "sigmoid" | "softmax"."""

    def __init__(self, sizes, activation="relu", output=None, dropout=0.0, init=None,
                 dtype=None, device=None):
        sizes = [whole_number(s, "an MLP's layer size") for s in sizes]
        if len(sizes) < 2:
            raise ValueError(f"an MLP needs at least an input and an output size, got {sizes}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; use one of "
                             f"{sorted(ACTIVATIONS)}")
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}; use None, 'sigmoid' or 'softmax'")
        init = init or ("kaiming" if activation in KAIMING_ACTIVATIONS else "xavier")
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(Linear(n_in, n_out, init=init, dtype=dtype, device=device))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[activation]())
                if dropout:
                    layers.append(Dropout(dropout))
        if OUTPUTS[output] is not None:
            layers.append(OUTPUTS[output]())
        super().__init__(*layers)
