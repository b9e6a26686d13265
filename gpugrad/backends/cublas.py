"""Matrix products through cuBLAS called directly, for plans captured as CUDA graphs.

CuPy refuses to call cuBLAS while a stream captures ("calling cuBLAS API during stream
capture is currently unsupported", CuPy 14), though cuBLAS's GEMMs can be captured when
they do not allocate: so a graph-ready plan on CuPy computes its 2-D float32/float64
products here, through ctypes, on a cuBLAS handle of its own whose workspace is
allocated before any capture, on CuPy's current stream. Other products (batched, 1-D,
other dtypes) go to cupy.matmul, which a capture then refuses: the plan runs without a
graph and says why.

cuBLAS is column-major. A row-major C = A B is, read column-major, C^T = B^T A^T: the
product is computed with the operands swapped. `operand` says how cuBLAS reads a
row-major operand X (r x c) as X^T: rows contiguous (strides (ld, 1), ld >= c) are X^T
column-major with leading dimension ld (op N); columns contiguous (strides (1, ld),
ld >= r) are X column-major (op T makes it X^T). Other layouts are copied to C order.
`gemm_call` turns two operands into the arguments of cublas<t>gemm; the tests check it
against a NumPy model of column-major GEMM on every layout a plan makes.
"""

import ctypes
import os

OP_N, OP_T = 0, 1  # cublasOperation_t
WORKSPACE_BYTES = 32 << 20  # cuBLAS's advice for graph capture on Hopper: 32 MiB


def operand(shape, strides, itemsize):
    """(op, ld) reading a row-major 2-D operand as its transpose, column-major, or None
    when its layout needs a copy first. strides in bytes."""
    r, c = shape
    s0, s1 = strides
    if (s1 == itemsize or c == 1) and s0 % itemsize == 0 and s0 // itemsize >= max(c, 1):
        return OP_N, s0 // itemsize
    if (s0 == itemsize or r == 1) and s1 % itemsize == 0 and s1 // itemsize >= max(r, 1):
        return OP_T, s1 // itemsize
    return None


def gemm_call(a_layout, b_layout, m, n, k):
    """The arguments (transa, transb, m, n, k, lda, ldb, ldc) of the column-major
    cublas<t>gemm computing C (m x n, C order) = A (m x k) B (k x n), whose first
    operand is B's memory and second A's; a_layout/b_layout: operand()'s answers."""
    (op_a, ld_a), (op_b, ld_b) = a_layout, b_layout
    return op_b, op_a, n, m, k, ld_b, ld_a, n


# --- the library ------------------------------------------------------------------------------
class _Library:
    """libcublas through ctypes, with one handle (and workspace) per device."""

    def __init__(self):
        self.lib = _load()
        for name in ("cublasSgemm_v2", "cublasDgemm_v2"):
            getattr(self.lib, name).restype = ctypes.c_int
        self.handles = {}  # device id -> handle
        self.workspaces = {}  # handle value -> its workspace (set with every stream)

    def set_stream(self, handle, stream):
        """Run the handle's calls on `stream`. cublasSetStream resets the workspace to
        cuBLAS's own pool, which would allocate inside a capture: set ours again."""
        _check(self.lib.cublasSetStream_v2(handle, ctypes.c_void_p(stream)),
               "cublasSetStream")
        workspace = self.workspaces[handle.value]
        _check(self.lib.cublasSetWorkspace_v2(handle, ctypes.c_void_p(workspace.data.ptr),
                                              ctypes.c_size_t(WORKSPACE_BYTES)),
               "cublasSetWorkspace")

    def handle(self, cupy):
        """This device's handle, made (with its workspace) outside any capture."""
        device = cupy.cuda.Device().id
        entry = self.handles.get(device)
        if entry is None:
            handle = ctypes.c_void_p()
            _check(self.lib.cublasCreate_v2(ctypes.byref(handle)), "cublasCreate")
            self.workspaces[handle.value] = cupy.empty(WORKSPACE_BYTES, dtype="uint8")
            entry = self.handles[device] = handle
        return entry


def _load():
    """libcublas as CuPy loaded it (the process's own copy), else by its usual names."""
    import cupy

    _ = cupy.cuda.Device().cublas_handle  # makes CuPy load the library
    for path in _loaded_libraries("libcublas.so"):
        return ctypes.CDLL(path)
    for name in ("libcublas.so.13", "libcublas.so.12", "libcublas.so"):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise OSError("libcublas is not loaded in this process and not found by name")


def _loaded_libraries(stem):
    try:
        with open(f"/proc/{os.getpid()}/maps") as maps:
            paths = {line.split()[-1] for line in maps if stem in line}
    except OSError:
        return []
    return sorted(p for p in paths if os.path.basename(p).startswith(stem))


def _check(status, what):
    if status != 0:
        raise RuntimeError(f"{what} failed with cuBLAS status {status}")


_library = None
_unavailable = None  # why libcublas could not be loaded (then CuPy's products serve)


def library():
    """The loaded library, or None where it cannot be (the reason: `unavailable()`)."""
    global _library, _unavailable
    if _library is None and _unavailable is None:
        try:
            _library = _Library()
        except (OSError, AttributeError, ImportError) as exc:  # CuPy 14: ImportError
            _unavailable = f"{type(exc).__name__}: {exc}"
    return _library


def unavailable():
    return _unavailable


# --- the kernels --------------------------------------------------------------------------------
def gemm(cupy, a, b, out=None):
    """a @ b for 2-D float32/float64 CuPy arrays of one dtype, by cublas<t>gemm on the
    current stream; None where this path does not apply (the caller uses cupy.matmul)."""
    if a.ndim != 2 or b.ndim != 2 or a.dtype != b.dtype or a.dtype.char not in "fd":
        return None
    lib = library()
    if lib is None:
        return None
    m, k = a.shape
    n = b.shape[1]
    if out is None:
        out = cupy.empty((m, n), dtype=a.dtype)
    if m == 0 or n == 0:
        return out
    if k == 0:
        out.fill(0)
        return out
    layouts = []
    for x in (a, b):
        layout = operand(x.shape, x.strides, x.itemsize)
        if layout is None:
            x = cupy.ascontiguousarray(x)
            layout = operand(x.shape, x.strides, x.itemsize)
        layouts.append((x, layout))
    (a, a_layout), (b, b_layout) = layouts
    op_1, op_2, m_, n_, k_, ld_1, ld_2, ld_c = gemm_call(a_layout, b_layout, m, n, k)
    handle = lib.handle(cupy)
    lib.set_stream(handle, cupy.cuda.get_current_stream().ptr)
    scalar = ctypes.c_float if a.dtype.char == "f" else ctypes.c_double
    one, zero = scalar(1.0), scalar(0.0)
    function = lib.lib.cublasSgemm_v2 if a.dtype.char == "f" else lib.lib.cublasDgemm_v2
    status = function(handle, ctypes.c_int(op_1), ctypes.c_int(op_2), ctypes.c_int(m_),
                      ctypes.c_int(n_), ctypes.c_int(k_), ctypes.byref(one),
                      ctypes.c_void_p(b.data.ptr), ctypes.c_int(ld_1),
                      ctypes.c_void_p(a.data.ptr), ctypes.c_int(ld_2), ctypes.byref(zero),
                      ctypes.c_void_p(out.data.ptr), ctypes.c_int(ld_c))
    _check(status, "cublas gemm")
    return out


def matmul_kernel(xp, a, b, transpose_a=False, transpose_b=False):
    """gpugrad::matmul's kernel in a graph-ready plan on CuPy."""
    a = a.mT if transpose_a else a
    b = b.mT if transpose_b else b
    y = gemm(xp, a, b)
    return xp.matmul(a, b) if y is None else y


def linear_kernel(xp, x, weight, bias=None):
    """gpugrad::linear's kernel (x @ W.T + b) in a graph-ready plan on CuPy."""
    y = gemm(xp, x, weight.mT)
    if y is None:
        y = xp.matmul(x, weight.mT)
    if bias is not None:
        y += bias
    return y


CAPTURABLE = {"gpugrad::matmul": matmul_kernel, "gpugrad::linear": linear_kernel}
