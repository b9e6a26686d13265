"""Compiled plans: trace a function once, optimise its DAG, run a flat plan after that.

capture.py records what the function reads and writes; program.py turns the trace into
a Program; passes.py simplifies it; memory.py plans its buffers; lower.py generates
the straight-line function; compiled.py is gg.compile, the cache of plans and retracing.
"""

from .capture import CompileError
from .compiled import CompiledFunction, CompileWarning, Plan, compile

__all__ = ["compile", "CompileError", "CompileWarning", "CompiledFunction", "Plan"]
