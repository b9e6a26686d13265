"""The numbers and strings a compiled function reads from its module's globals and from
the variables of enclosing functions: constants of its trace, so each is guarded.

`scale = 2.0; step = gg.compile(lambda x: x * scale)`: the plan holds 2.0. Rebinding
`scale = 3.0` then traces anew (a CompileWarning names the variable) instead of running
on with the old number, which is what jax.jit and tinygrad's JIT do. Branches on a flag
(`if DEBUG:`) are covered the same way.

Only the function's own code is read (its lambdas and comprehensions too), not the code
of the functions it calls: a value read deeper (an object's attribute, another
function's global) stays a constant of the plan. A variable the function assigns itself
(`global count; count += 1`) is not guarded: the assignment runs at the trace only, and
the guard would never hold again.
"""

import dis
import functools

import numpy as np

_CONSTANT_TYPES = (bool, int, float, complex, str, bytes, type(None), np.generic)
_LOADS = {"LOAD_GLOBAL": "global", "LOAD_DEREF": "enclosing",
          "LOAD_CLASSDEREF": "enclosing"}
_STORES = {"STORE_GLOBAL", "DELETE_GLOBAL", "STORE_DEREF", "DELETE_DEREF"}
_UNBOUND = object()  # a variable not (or no longer) bound: differs from any value


def guarded_reads(fn):
    """[(getter, reason)] of each global or enclosing variable fn's own code loads and
    does not assign, which holds a number, a string, None, or a tuple of them; getter()
    gives its value as by_bits does."""
    func = _function_of(fn)
    code = getattr(func, "__code__", None)
    if code is None:  # a builtin, an object with __call__: nothing to read
        return []
    cells = dict(zip(code.co_freevars, func.__closure__ or (), strict=True))
    loads, stored = _loads_and_stores(code)
    reads = []
    for name, scope in loads.items():
        if name in stored:
            continue
        if scope == "global":
            if name not in func.__globals__:  # a builtin (len, range)
                continue
            read = functools.partial(func.__globals__.get, name, _UNBOUND)
        elif name in cells:
            read = functools.partial(_cell_contents, cells[name])
        else:  # a variable of fn itself that a nested lambda reads: not fixed at trace
            continue
        value = read()
        if _is_constant(value):
            reads.append((lambda read=read: by_bits(read()),
                          f"the {scope} variable {name!r} that {func.__qualname__} reads "
                          f"changed (it was {value!r}; pass values that vary as arguments)"))
    return reads


def by_bits(value):
    """A value as a plan compares it: floats (NumPy's too, and floats in tuples) as their
    bits, since -0.0 == 0.0 (x / -0.0 is -inf, not inf) and a NaN equals no NaN (a guard
    or key holding one would fail on every call). Other values as they are."""
    if isinstance(value, (float, np.floating)):
        return ("float bits", float(value).hex())
    if isinstance(value, tuple):
        return tuple(by_bits(v) for v in value)  # (a value, not a graph)
    return value


def from_bits(value):
    """by_bits undone: the value a key or guard stood for, to name it in a warning."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "float bits":
        return float.fromhex(value[1])
    if isinstance(value, tuple):
        return tuple(from_bits(v) for v in value)
    return value


def _function_of(fn):
    """The Python function under partials and bound methods."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__func__", fn)


def _loads_and_stores(code):
    """({name: "global" or "enclosing"} loaded, {names} assigned) in code and the code
    objects nested in it (lambdas, comprehensions, inner functions), in first-load
    order. A walk with a stack: code nests as deep as the source."""
    loads, stored = {}, set()
    todo = [code]
    while todo:
        c = todo.pop()
        for ins in dis.get_instructions(c):
            if ins.opname in _LOADS:
                loads.setdefault(ins.argval, _LOADS[ins.opname])
            elif ins.opname in _STORES:
                stored.add(ins.argval)
        todo.extend(const for const in c.co_consts if hasattr(const, "co_code"))
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
