"""The numbers and strings a compiled function reads from its module's globals and from
the variables of enclosing functions: constants of its trace, so each is guarded. So is
each tensor it reads so, by identity: a plan reads that tensor's values on every run,
and rebinding the variable to another tensor traces anew.

`scale = 2.0; step = gg.compile(lambda x: x * scale)`: the plan holds 2.0. Rebinding
`scale = 3.0` then traces anew (a CompileWarning names the variable) instead of running
on with the old number, which is what jax.jit and tinygrad's JIT do. Branches on a flag
(`if DEBUG:`) are covered the same way.

Only the function's own code is read (its lambdas and comprehensions too, and the code a
decorator wraps), not the code of the functions it calls: a value read deeper (an
object's attribute, another function's global) stays a constant of the plan. A variable
the function assigns itself (`global count; count += 1`) is not guarded: the assignment
runs at the trace only, and the guard would never hold again.
"""

import dis
import functools

import numpy as np

from ..tensor import Tensor

_CONSTANT_TYPES = (bool, int, float, complex, str, bytes, type(None), np.generic)
_LOADS = {"LOAD_GLOBAL": "global", "LOAD_DEREF": "enclosing",
          "LOAD_CLASSDEREF": "enclosing"}
_STORES = {"STORE_GLOBAL": "global", "DELETE_GLOBAL": "global",
           "STORE_DEREF": "enclosing", "DELETE_DEREF": "enclosing"}
_UNBOUND = object()  # a variable not (or no longer) bound: differs from any value


def guarded_reads(fn):
    """[(getter, reason)] of each global or enclosing variable fn's own code loads and
    does not assign, which holds a number, a string, None, or a tuple of them; getter()
    says whether it still holds that value (see _unchanged). A decorated function's
    wrapped ones (functools.wraps' __wrapped__) are read too: their code is fn's."""
    reads = []
    for func in _functions_of(fn):
        reads.extend(_reads_of(func))
    return reads


def _reads_of(func):
    code = getattr(func, "__code__", None)
    if code is None:  # a builtin, an object with __call__: nothing to read
        return []
    cells = dict(zip(code.co_freevars, func.__closure__ or (), strict=True))
    loads, stored = _loads_and_stores(code)
    reads = []
    for scope, name in loads:
        if (scope, name) in stored:
            continue
        if scope == "global":
            if name not in func.__globals__:  # a builtin (len, range)
                continue
            read = functools.partial(func.__globals__.get, name, _UNBOUND)
        else:  # (a variable of fn itself that a nested lambda reads is not among them)
            read = functools.partial(_cell_contents, cells[name])
        value = read()
        if _is_constant(value):
            reads.append((_unchanged(read, value),
                          f"the {scope} variable {name!r} that {func.__qualname__} reads "
                          f"changed (it was {value!r}; pass values that vary as arguments)"))
        elif isinstance(value, Tensor):  # the plan reads that tensor's values, by identity
            reads.append((_same_object(read, value),
                          f"the {scope} variable {name!r} that {func.__qualname__} reads "
                          f"holds another tensor (it held one of shape "
                          f"{tuple(value.shape)}; pass tensors that vary as arguments)"))
    return reads


def _same_object(read, value):
    """A guard's getter: whether read() still gives that object (a tensor: the plan
    reads its values on every run, and would read them from the old one)."""
    return lambda: read() is value


def _unchanged(read, value):
    """A guard's getter: whether read() still gives `value` — the same object (a
    variable not rebound: one `is`, however long a tuple), or one of the same type and
    bits. The type counts: True == 1, but `mask + True` stays bool where `mask + 1` is
    int64, and 2.0 == np.float64(2.0) but gg.tensor makes a float64 of the latter."""
    was = typed(value)

    def unchanged():
        now = read()
        return now is value or typed(now) == was

    return unchanged


def typed(value):
    """(type, bits) of a value: how a guard compares it (see _unchanged)."""
    return type(value), by_bits(value)


def by_bits(value):
    """A value as a plan compares it: floats and complex numbers (NumPy's too) as their
    bits, since -0.0 == 0.0 (x / -0.0 is -inf, not inf) and a NaN equals no NaN (a guard
    or key holding one would fail on every call); a tuple's (or list's) items with their
    types (the caller compares the type of the value itself). Other values as they are."""
    if isinstance(value, (float, np.floating)):
        return ("float bits", float(value).hex())
    if isinstance(value, (complex, np.complexfloating)):  # (nan+0j) == (nan+0j) is False
        value = complex(value)
        return ("complex bits", value.real.hex(), value.imag.hex())
    if isinstance(value, (tuple, list)):  # each item with its type: (True,) == (1,)
        return tuple(typed(v) for v in value)  # (a value, not a graph)
    return value


def from_bits(value):
    """by_bits undone: the value a key or guard stood for, to name it in a warning."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "float bits":
        return float.fromhex(value[1])
    if isinstance(value, tuple) and len(value) == 3 and value[0] == "complex bits":
        return complex(float.fromhex(value[1]), float.fromhex(value[2]))
    if isinstance(value, tuple):  # (type, bits) per item
        return tuple(from_bits(bits) for _, bits in value)
    return value


def _function_of(fn):
    """The Python function under partials and bound methods."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__func__", fn)


def _functions_of(fn, most=16):
    """fn's Python function and the chain of those it wraps (a decorator's __wrapped__),
    each once: a chain, walked in a loop, as long as `most`."""
    chain = []
    func = _function_of(fn)
    while func is not None and func not in chain and len(chain) < most:
        chain.append(func)
        inner = getattr(func, "__wrapped__", None)
        func = None if inner is None else _function_of(inner)
    return chain


def _loads_and_stores(code):
    """({(scope, name): None} loaded, {(scope, name)} assigned) in code and the code
    objects nested in it (lambdas, comprehensions, inner functions), in first-load
    order; scope is "global" or "enclosing" (a variable of a function around fn: a
    nested function's own variable of the same name, which its lambdas read and it
    assigns, is another variable). A walk with a stack: code nests as deep as the
    source."""
    loads, stored = {}, set()
    todo = [(code, frozenset(code.co_freevars))]  # names that are fn's free variables
    while todo:
        c, outer = todo.pop()
        for ins in dis.get_instructions(c):
            scope = _LOADS.get(ins.opname) or _STORES.get(ins.opname)
            if scope is None or (scope == "enclosing" and ins.argval not in outer):
                continue
            if ins.opname in _LOADS:
                loads.setdefault((scope, ins.argval))
            else:
                stored.add((scope, ins.argval))
        todo.extend((const, outer.intersection(const.co_freevars))
                    for const in c.co_consts if hasattr(const, "co_code"))
    return loads, stored


def _cell_contents(cell):
    try:
        return cell.cell_contents
    except ValueError:  # the enclosing function deleted it
        return _UNBOUND


def _is_constant(value):
    if isinstance(value, tuple):
        return all(_is_constant(v) for v in value)
    return isinstance(value, _CONSTANT_TYPES)
