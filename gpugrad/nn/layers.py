"""Layers: Linear, Sequential, activations, Dropout, and MLP."""

from ..creation import rand, zeros
from ..ops import elementwise as ew
from ..ops.linalg import linear, matmul
from .init import INITIALISERS
from .module import Module


class Linear(Module):
    """y = x @ W.T + b, W of shape (out_features, in_features), as in PyTorch."""

    def __init__(self, in_features, out_features, bias=True, init="kaiming", dtype=None,
                 device=None):
        super().__init__()
        if init not in INITIALISERS:
            raise ValueError(f"unknown init {init!r}; use one of {sorted(INITIALISERS)}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        if self.in_features < 1 or self.out_features < 1:
            raise ValueError(f"Linear needs positive sizes, got in_features={in_features}, "
                             f"out_features={out_features}")
        weight = INITIALISERS[init]((self.out_features, self.in_features), dtype, device)
        self.weight = weight.detach().requires_grad_()
        self.bias = zeros(self.out_features, dtype=weight.dtype, device=weight.device,
                          requires_grad=True) if bias else None

    def forward(self, x):
        if x.ndim < 2:  # a single sample: the general product
            y = matmul(x, self.weight, transpose_b=True)
            return y if self.bias is None else y + self.bias
        if self.bias is None:
            return linear(x, self.weight)
        return linear(x, self.weight, self.bias)  # one op: x @ W.T + b

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"bias={self.bias is not None}"


class Sequential(Module):
    """Modules applied one after another; indexable, iterable."""

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
            if not name or "." in name:
                raise ValueError(f"Sequential: a module name must be non-empty and have no "
                                 f"'.', got {name!r}")
            setattr(self, name, module)

    def __len__(self):
        return len(self.children())

    def __getitem__(self, index):
        picked = self.children()[index]
        return Sequential(*picked) if isinstance(index, slice) else picked

    def __iter__(self):
        return iter(self.children())

    def forward(self, x):
        for module in self.children():
            x = module(x)
        return x


class ReLU(Module):
    def forward(self, x):
        return ew.relu(x)


class Sigmoid(Module):
    def forward(self, x):
        return ew.sigmoid(x)


class Tanh(Module):
    def forward(self, x):
        return ew.tanh(x)


class Softmax(Module):
    def __init__(self, axis=-1, *, dim=None):
        super().__init__()
        self.axis = axis if dim is None else dim  # dim=: PyTorch's word, as F.softmax takes

    def forward(self, x):
        from .functional import softmax

        return softmax(x, axis=self.axis)


class Dropout(Module):
    """Zeroes each element with probability p in training, scaling the rest by 1/(1-p);
    the identity in eval mode."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = rand(*x.shape, dtype=x.dtype, device=x.device) >= self.p
        return ew.where(keep, x * (1.0 / (1.0 - self.p)), 0.0)

    def extra_repr(self):
        return f"p={self.p}"


ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}
OUTPUTS = {None: None, "linear": None, "sigmoid": Sigmoid, "softmax": Softmax}


class MLP(Sequential):
    """A multilayer perceptron: MLP([784, 256, 10]) is Linear(784, 256), ReLU,
    Linear(256, 10). activation: "relu" | "sigmoid" | "tanh"; output: None (logits, for
    the *_with_logits and cross_entropy losses) | "sigmoid" | "softmax"."""

    def __init__(self, sizes, activation="relu", output=None, dropout=0.0, init=None,
                 dtype=None, device=None):
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2:
            raise ValueError(f"an MLP needs at least an input and an output size, got {sizes}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; use one of "
                             f"{sorted(ACTIVATIONS)}")
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}; use None, 'sigmoid' or 'softmax'")
        init = init or ("kaiming" if activation == "relu" else "xavier")
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
