"""Rewrites onto the fused kernels of kernels/*.cu, for programs that run on CuPy.

- bias_activation: a Linear layer's op followed by its activation (relu, tanh, sigmoid),
  when nothing else reads the layer's output, becomes the matmul alone and one
  `bias_act` op: kernels/bias_act.cu adds the bias and applies the activation in one
  pass (one kernel instead of two, and one array less in memory).

Each rewritten op keeps the generic reference of gpugrad.backends.fused as its kernel
on other backends, so the pass can be run, and its results checked, anywhere; gg.compile
runs it on CuPy programs only (FUSED_KERNEL_BACKENDS), where it pays.
"""

from ..ops.registry import OpDef, plan_only
from .fusion import readers_of

FUSED_KERNEL_BACKENDS = ("cupy",)
ACTIVATIONS = {"gpugrad::relu": "relu", "gpugrad::tanh": "tanh",
               "gpugrad::sigmoid": "sigmoid"}


def _bias_act_reference(xp, z, bias, activation):
    from ..backends import fused

    return fused.bias_act_forward_reference(z, bias, activation)


def _bias_act_cupy(xp, z, bias, activation):
    from ..backends import fused

    return fused.bias_act_forward(z, bias, activation)


BIAS_ACT = OpDef("gpugrad::bias_act", infer=plan_only("gpugrad::bias_act"),
                 forward=_bias_act_reference,
                 kernels={"cupy": _bias_act_cupy},
                 doc="act(z + bias) in one kernel (kernels/bias_act.cu on CuPy).")


def bias_activation(program):
    """Rewrite each linear(x, W, b) -> activation pair whose linear output only the
    activation reads: the linear node becomes matmul(x, W.T), the activation node
    bias_act(that, b). Returns how many pairs were rewritten."""
    readers = readers_of(program.op_nodes())
    sinks = {id(n) for n in program.sink_nodes()}
    rewritten = 0
    for node in program.op_nodes():
        activation = ACTIVATIONS.get(node.op.name)
        if activation is None or node.meta:
            continue
        (linear,) = node.inputs
        if (linear.op.name != "gpugrad::linear" or len(linear.inputs) != 3 or linear.meta
                or len(readers[id(linear)]) != 1 or id(linear) in sinks
                or linear.dtype is not node.dtype):
            continue
        x, weight, bias = linear.inputs
        linear.op, linear.inputs = _matmul(), (x, weight)
        linear.attrs = {"transpose_b": True}
        node.op, node.inputs, node.attrs = BIAS_ACT, (linear, bias), {"activation": activation}
        rewritten += 1
    return rewritten


def _matmul():
    from ..ops.linalg import matmul

    return matmul
