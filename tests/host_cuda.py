"""kernels/*.cu compiled for the CPU (with host_cuda.h and g++) and launched like CuPy's
RawKernel does: for tests on machines without a GPU.

`HostModule(source)` compiles one CUDA source into a shared library whose every
`extern "C" __global__` kernel gets a host launcher; `module.launch(name, grid, block,
args)` checks the arguments against the kernel's C signature the way they must match on
a GPU (CuPy passes an array as a pointer and a NumPy scalar as its bytes, so a float64
where the kernel declares float, or an int64 for an int, would misread every later
argument), then runs the launch. NumPy arrays stand in for CuPy's.
"""

import ctypes
import pathlib
import re
import shutil
import subprocess

import numpy as np

HEADER = pathlib.Path(__file__).with_name("host_cuda.h")
COMPILER = shutil.which("g++")

_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)')
_PARAM = re.compile(r"^(const\s+)?(float|double|long long|int)\s*(\*?)\s*(\w+)$")
_DTYPES = {"float": np.float32, "double": np.float64, "long long": np.int64, "int": np.int32}
_CTYPES = {"float": ctypes.c_float, "double": ctypes.c_double,
           "long long": ctypes.c_longlong, "int": ctypes.c_int}


class Param:
    """One kernel parameter: `const float* logits` is Param("logits", float32, True)."""

    def __init__(self, declaration):
        match = _PARAM.match(" ".join(declaration.split()))
        if match is None:
            raise ValueError(f"a kernel parameter of an unknown type: {declaration!r}")
        _, base, star, self.name = match.groups()
        self.dtype = np.dtype(_DTYPES[base])
        self.pointer = bool(star)
        self.ctype = ctypes.c_void_p if self.pointer else _CTYPES[base]
        self.declaration = f"{match.group(1) or ''}{base}{star} {self.name}"

    def check(self, kernel, position, value):
        """value as it may be passed to this parameter, else TypeError."""
        where = f"{kernel}: argument {position} ({self.declaration})"
        if self.pointer:
            if not isinstance(value, np.ndarray) or value.dtype != self.dtype:
                raise TypeError(f"{where} takes an array of {self.dtype}, got "
                                f"{_describe(value)}")
            if not value.flags.c_contiguous:
                raise TypeError(f"{where}: the kernel indexes the array flat, but it is not "
                                "C-contiguous")
        elif not isinstance(value, np.generic) or value.dtype != self.dtype:
            raise TypeError(f"{where} takes a NumPy {self.dtype} scalar, got "
                            f"{_describe(value)}")

    def as_ctype(self, value):
        return value.ctypes.data if self.pointer else self.ctype(value.item())


def _describe(value):
    if isinstance(value, (np.ndarray, np.generic)):
        return f"{type(value).__name__} of {value.dtype}"
    return f"a Python {type(value).__name__}"


def kernel_signatures(text):
    """{kernel name: [Param]} of every extern "C" __global__ function in a CUDA source."""
    return {name: [Param(p) for p in params.split(",")]
            for name, params in _KERNEL.findall(text)}


def _launcher_source(source_path, signatures):
    lines = [f'#include "{HEADER}"', f'#include "{source_path}"', ""]
    for name, params in signatures.items():
        declared = ", ".join(p.declaration for p in params)
        passed = ", ".join(p.name for p in params)
        lines += [f'extern "C" const char* gg_host_{name}(unsigned int grid, unsigned int block,'
                  f" {declared}) {{",
                  "    static std::string error;",
                  f"    error = gg_host::launch(grid, block, [=] {{ {name}({passed}); }});",
                  "    return error.c_str();",
                  "}", ""]
    return "\n".join(lines)


class HostModule:
    """One CUDA source compiled for the CPU into build_dir."""

    def __init__(self, source_path, build_dir):
        source_path = pathlib.Path(source_path)
        self.signatures = kernel_signatures(source_path.read_text())
        launcher = pathlib.Path(build_dir) / f"{source_path.stem}_host.cpp"
        library = launcher.with_suffix(".so")
        launcher.write_text(_launcher_source(source_path.resolve(), self.signatures))
        # -ffp-contract=off: no multiply-add fusing, as the kernels' rounding requires.
        result = subprocess.run([COMPILER, "-std=c++20", "-O1", "-ffp-contract=off", "-fPIC",
                                 "-shared", "-Wall", "-Werror", "-o", str(library),
                                 str(launcher)], capture_output=True, text=True, timeout=300)
        if result.returncode:
            raise RuntimeError(f"g++ could not compile {source_path} for the CPU:\n"
                               f"{result.stderr}")
        self._library = ctypes.CDLL(str(library))
        self._functions = {}
        for name, params in self.signatures.items():
            function = getattr(self._library, f"gg_host_{name}")
            function.argtypes = [ctypes.c_uint, ctypes.c_uint] + [p.ctype for p in params]
            function.restype = ctypes.c_char_p
            self._functions[name] = function

    def launch(self, name, grid, block, args):
        """Kernel `name` over grid x block threads, on NumPy arrays and scalars."""
        params = self.signatures[name]
        if len(args) != len(params):
            raise TypeError(f"{name} takes {len(params)} arguments, got {len(args)}")
        for position, (param, value) in enumerate(zip(params, args, strict=True)):
            param.check(name, position, value)
        values = [p.as_ctype(v) for p, v in zip(params, args, strict=True)]
        error = self._functions[name](grid, block, *values).decode()
        if error:
            raise RuntimeError(f"{name} ({grid} x {block} threads): {error}")
