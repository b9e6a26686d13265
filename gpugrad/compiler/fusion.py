"""Fusion of elementwise chains: several elementwise ops become one `gpugrad::fused` op.

A group is a root op and the elementwise ops feeding it that nothing else reads, all of
the root's shape and dtype (inputs from outside the group may broadcast). The group
becomes one node whose attrs list its steps in order: `((op name, (arg, ...)), ...)`,
where arg k < n reads the node's input k and arg n + j the result of step j; the last
step is the result.

How a fused op runs, by backend:
- CuPy: one `cupy.ElementwiseKernel` per distinct list of steps, its body generated
  from each op's C expression below: one launch and one pass over memory instead of
  one per op. Made once and cached (CuPy keeps the compiled binary on disk too).
- NumPy: one generated Python function per list of steps, a chain of the ops' own
  ufunc calls with `out=`, each step written into the buffer of a step nobody reads
  again where the trace made both of one layout: the same ufuncs as eager, into
  arrays of eager's layouts, so the results are bit for bit the same.
- any other namespace (the array API's strict arrays): step by step, each op's kernel.
"""

import functools
import hashlib

from ..ops.registry import REGISTRY, OpDef, plan_only

# The ops a group may hold, each as a C expression over its inputs' values ({0}, {1})
# of the group's type T. Each matches its NumPy kernel, NaN and signed zeros included:
# relu is NumPy's maximum(x, 0) (a NaN stays NaN, -0.0 becomes +0.0); relu_backward
# selects g or +0.0 as NumPy's kernel does (an inf gradient where y <= 0 gives 0).
# Products, sums and differences are explicitly rounded (PREAMBLE): NVRTC contracts a
# plain `a * b + c` into one fused multiply-add (--fmad=true is its default), which
# rounds once where the unfused ops, one kernel each, round twice.
C_EXPRESSIONS = {
    "gpugrad::add": "gg_add({0}, {1})",
    "gpugrad::sub": "gg_sub({0}, {1})",
    "gpugrad::mul": "gg_mul({0}, {1})",
    "gpugrad::div": "{0} / {1}",
    "gpugrad::neg": "-{0}",
    "gpugrad::exp": "exp({0})",
    "gpugrad::log": "log({0})",
    "gpugrad::sqrt": "sqrt({0})",
    "gpugrad::tanh": "tanh({0})",
    "gpugrad::erf": "erf({0})",  # CUDA's, as the eager CuPy kernel's
    "gpugrad::relu": "{0} > (T)0 || {0} != {0} ? {0} : (T)0",
    "gpugrad::relu_backward": "{1} > (T)0 ? {0} : (T)0",
}


# Defined before every fused kernel's body (CUDA's intrinsics: the host harness of the
# tests defines them too). Not --fmad=false for the whole kernel: that would also reach
# the multiply-adds inside CUDA's exp, log, tanh and erf, which CuPy's own kernels
# compile with contraction allowed.
PREAMBLE = """\
__device__ __forceinline__ float gg_add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double gg_add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float gg_sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double gg_sub(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ float gg_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double gg_mul(double a, double b) { return __dmul_rn(a, b); }
"""


# At most this many ops per fused op: a long chain (a 100,000-op elementwise forward)
# becomes several kernels of a size NVRTC compiles quickly, and each one's readable
# expression stays short.
MAX_STEPS = 32


# --- the pass -------------------------------------------------------------------------------
FUSED_DTYPES = ("float32", "float64")  # the C types the tests compile the bodies for


def fusible(node):
    """An op a group may hold: one of C_EXPRESSIONS, not part of a several-output op,
    not 0-d (NumPy hands 0-d results out as scalars, which take no out=), of float32 or
    float64, every input of its dtype."""
    return (not node.op.is_leaf and node.op.name in C_EXPRESSIONS and not node.meta
            and bool(node.shape) and node.dtype.name in FUSED_DTYPES
            and all(i.dtype is node.dtype for i in node.inputs))


def fuse_elementwise(program):
    """Replace each group of two or more elementwise ops by one fused node. Returns how
    many ops were merged away."""
    ops = program.op_nodes()
    readers = readers_of(ops)
    position = {id(n): i for i, n in enumerate(ops)}
    written = _written_in_place(ops)
    apart = {id(n) for n in program.sink_nodes()}  # values a run hands out stay apart
    apart.update(id(item[1]) for item in program.host if item[0] == "feed")
    absorbed = set()
    merged = 0
    for root in reversed(ops):  # newest first: a root takes the longest chain it can
        if id(root) in absorbed or not fusible(root):
            continue
        members = _group(root, readers, apart, position, written)
        if len(members) < 2:
            continue
        absorbed.update(id(m) for m in members if m is not root)
        _make_fused(root, members, program.layouts)
        merged += len(members) - 1
    if merged:
        program.nodes = [n for n in program.nodes if id(n) not in absorbed]
    return merged


def readers_of(ops):
    """id(value) -> ids of the ops that read it."""
    readers = {}
    for node in ops:
        for inp in node.inputs:
            readers.setdefault(id(inp), set()).add(id(node))
    return readers


def _written_in_place(ops):
    """id(value) -> positions of the ops that write it in place (op.mutates: an
    optimiser's one-op update on CuPy): a fused op runs where its root was, so a member
    reading such a value must not move past those writes."""
    written = {}
    for i, node in enumerate(ops):
        for k in getattr(node.op, "mutates", ()):
            written.setdefault(id(node.inputs[k]), []).append(i)
    return written


def _moves_past_a_write(node, root, position, written):
    start, end = position[id(node)], position[id(root)]
    return any(start < at < end for inp in node.inputs for at in written.get(id(inp), ()))


def _group(root, readers, apart, position, written):
    """The root and the fusible ops that only the group reads, of the root's shape and
    dtype, in topological order (a worklist: no recursion)."""
    members = {id(root): root}
    work = [root]
    while work and len(members) < MAX_STEPS:
        node = work.pop()
        for inp in node.inputs:
            if (len(members) >= MAX_STEPS or id(inp) in members or id(inp) in apart
                    or not fusible(inp) or inp.shape != root.shape or inp.dtype is not root.dtype
                    or not readers[id(inp)] <= members.keys()
                    or (written and _moves_past_a_write(inp, root, position, written))):
                continue
            members[id(inp)] = inp
            work.append(inp)
    # (by place in the schedule: numbers need not be in order once passes made nodes)
    return sorted(members.values(), key=lambda n: position[id(n)])


def _make_fused(root, members, layouts):
    """Turn the root into the group's fused node: its inputs are what the group reads
    from outside, in order of first use. The root keeps its place in the schedule,
    after every member and every input. Where the trace made the members' arrays in
    different layouts (a step over a transpose, then one over a row-major array),
    attrs["layouts"] numbers each step's layout: a step reuses only a buffer of its
    own."""
    step_of = {id(m): j for j, m in enumerate(members)}
    inputs, index = [], {}
    for m in members:
        for inp in m.inputs:
            if id(inp) not in step_of and id(inp) not in index:
                index[id(inp)] = len(inputs)
                inputs.append(inp)
    n = len(inputs)
    steps = tuple((m.op.name, tuple(n + step_of[id(i)] if id(i) in step_of else index[id(i)]
                                    for i in m.inputs))
                  for m in members)
    root.op, root.inputs = FUSED, tuple(inputs)
    root.attrs = {"expr": describe(steps, n), "steps": steps}  # expr: for the viewers
    kinds = [layouts.get(m) for m in members]
    if any(kind != kinds[0] for kind in kinds):
        root.attrs["layouts"] = tuple(kinds.index(kind) for kind in kinds)


def describe(steps, n):
    """The steps as one readable expression, e.g. 'relu_backward(mul(x0, x1), x2)'."""
    texts = [f"x{k}" for k in range(n)]
    for name, args in steps:
        texts.append(f"{name.rpartition('::')[2]}({', '.join(texts[a] for a in args)})")
    return texts[-1]


# --- running a fused op ---------------------------------------------------------------------
def _step_by_step(xp, *arrays, steps, expr=None, layouts=None):
    """The reference, and the kernel of namespaces without out=: each op's own kernel."""
    backend = xp.__name__  # the backends are named after their namespaces
    values = list(arrays)
    for name, args in steps:
        values.append(REGISTRY[name].kernel_for(backend)(xp, *(values[a] for a in args)))
    return values[-1]


FUSED = OpDef("gpugrad::fused", infer=plan_only("gpugrad::fused"), forward=_step_by_step,
              doc="Several elementwise ops in one kernel (made by gg.compile's fusion).")
FUSED.label_attrs = ("expr",)  # drawings show the expression; the steps are for kernels


def kernels(steps, n, backend_name, layouts=None):
    """(kernel(*arrays), out_kernel(*arrays, out)) running the steps on a backend, or
    None where only the step-by-step reference runs there. layouts: see _make_fused."""
    if backend_name == "numpy":
        return _numpy_chain(steps, n, layouts)
    if backend_name == "cupy":
        kernel = _cupy_kernel(steps, n)
        return kernel, kernel  # an ElementwiseKernel takes its output as a last argument
    return None


@functools.lru_cache(maxsize=None)
def _numpy_chain(steps, n, layouts=None):
    """Two generated functions (allocating, and writing into `out`) chaining the steps'
    ufuncs with out=."""
    source, namespace = chain_source(steps, n, layouts)
    exec(compile(source, f"<gpugrad fused {describe(steps, n)}>", "exec"), namespace)
    return namespace["fused"], namespace["fused_out"]


def chain_source(steps, n, layouts=None):
    """(source, namespace) of `fused(x0, ...)` and `fused_out(x0, ..., out)` on NumPy:
    a step writes into the buffer of an earlier step it reads for the last time (of its
    own layout, where layouts number them); only the result goes into `out`, once every
    input was read."""
    import numpy

    last_read = _last_reads(steps)
    names = _value_names(steps, n)
    namespace = {"xp": numpy, "__name__": __name__}  # warnings name this module
    lines = []
    for j, (name, args) in enumerate(steps):
        op = REGISTRY[name]
        ins = ", ".join(names[a] for a in args)
        dying = _dying(args, j, n, last_read, layouts)
        if op.ufunc is not None:  # the ufunc itself, without the op's lambda around it
            namespace[f"U{j}"] = getattr(numpy, op.ufunc)
            call = f"U{j}({ins}" + (f", out={names[dying]})" if dying is not None else ")")
            lines.append((f"s{j} = {call}", f"U{j}({ins}, out=out)"))
            continue
        namespace[f"K{j}"], namespace[f"O{j}"] = op.kernel_for("numpy"), op.out_kernel
        call = f"O{j}(xp, {ins}, {names[dying]})" if dying is not None else f"K{j}(xp, {ins})"
        lines.append((f"s{j} = {call}", f"O{j}(xp, {ins}, out)"))
    xs = ", ".join(names[:n])
    body = [f"    {line}" for line, _ in lines[:-1]]
    result, into_out = lines[-1]
    source = "\n".join([f"def fused({xs}):", *body, f"    {result}",
                        f"    return s{len(steps) - 1}", "",
                        f"def fused_out({xs}, out):", *body, f"    return {into_out}"])
    return source + "\n", namespace


def _value_names(steps, n):
    """The generated code's name of each value: inputs x0.., step results s0.."""
    return [f"x{k}" for k in range(n)] + [f"s{j}" for j in range(len(steps))]


def _last_reads(steps):
    """Value index -> the last step reading it."""
    last_read = {}
    for j, (_, args) in enumerate(steps):
        for a in args:
            last_read[a] = j
    return last_read


def _dying(args, j, n, last_read, layouts=None):
    """The value index of a step result that step j reads for the last time (its buffer
    is free for step j's result, where it has step j's layout), or None."""
    for a in args:
        if (a >= n and last_read[a] == j
                and (layouts is None or layouts[a - n] == layouts[j])):
            return a
    return None


def scratch_buffers(steps, n, has_out, layouts=None):
    """How many buffers of the result's size a fused op allocates and frees within one
    call (what the memory plan adds to its peak at that op)."""
    last_read = _last_reads(steps)
    made = [_dying(args, j, n, last_read, layouts) is None
            for j, (_, args) in enumerate(steps)]
    if has_out:
        return sum(made[:-1])
    return sum(made) - 1  # the result keeps one of the buffers made


def cuda_body(steps, n):
    """The C body of the ElementwiseKernel: one local per step, the last one stored."""
    names = _value_names(steps, n)
    lines = []
    for j, (name, args) in enumerate(steps):
        expression = C_EXPRESSIONS[name].format(*(f"({names[a]})" for a in args))
        lines.append(f"const T s{j} = {expression};")
    lines.append(f"y = s{len(steps) - 1};")
    return "\n".join(lines)


def cuda_name(body):
    """A stable kernel name per body (CuPy's cache key includes it)."""
    return f"gpugrad_fused_{hashlib.sha1(body.encode()).hexdigest()[:12]}"


@functools.lru_cache(maxsize=None)
def _cupy_kernel(steps, n):
    import cupy

    params = ", ".join(f"T x{k}" for k in range(n))
    body = cuda_body(steps, n)
    return cupy.ElementwiseKernel(params, "T y", body, cuda_name(body), preamble=PREAMBLE)
