"""The lecture's worked circuits, step by step: build the expression, call backward,
read the gradients. Run: python examples/lecture_circuits.py"""

import gpugrad as gg

# f(x, y, z) = (x + y) z: the add gate distributes the gradient, the mul gate swaps.
x = gg.tensor(-2.0, requires_grad=True)
y = gg.tensor(5.0, requires_grad=True)
z = gg.tensor(-4.0, requires_grad=True)
q = x + y
f = q * z
f.backward()
print(f"(x+y)z = {f.item()}: df/dx = {x.grad.item()}, df/dy = {y.grad.item()}, "
      f"df/dz = {z.grad.item()}")

# A sigmoid neuron: f = sigmoid(w0 x0 + w1 x1 + w2).
w = gg.tensor([2.0, -3.0, -3.0], requires_grad=True)
xs = gg.tensor([-1.0, -2.0], requires_grad=True)
neuron = (w[:2] * xs).sum() + w[2]
out = neuron.sigmoid()
out.backward()
print(f"sigmoid neuron = {out.item():.4f}: dx = {xs.grad.numpy().round(3)}, "
      f"dw = {w.grad.numpy().round(3)}")

# The staged function f(x, y) = (x + sigmoid(y)) / (sigmoid(x) + (x + y)^2),
# in float64, with every intermediate kept as the lecture writes it.
x = gg.tensor(3.0, dtype="float64", requires_grad=True)
y = gg.tensor(-4.0, dtype="float64", requires_grad=True)
sigy = y.sigmoid()
num = x + sigy
sigx = x.sigmoid()
xpy = x + y
xpysqr = xpy ** 2
den = sigx + xpysqr
f = num / den
f.backward()
print(f"staged f = {f.item():.6f}: df/dx = {x.grad.item():.6f}, df/dy = {y.grad.item():.6f}")

# The graph that computed it, as networkx sees it.
g = f.graph
print(f"{len(g.op_nodes())} ops: {g.op_counts()}")
