"""Logistic regression trained by full-batch gradient descent, as in the lecture: the
forward pass a = sigmoid(X w + b), the binary cross-entropy written out by hand, the
gradients from the engine, and the update w = w - lr * dw done by hand.
Run: python examples/logistic_regression.py"""

import numpy as np

import gpugrad as gg

gg.manual_seed(0)
rng = np.random.default_rng(0)

# Two Gaussian blobs in 2-D: class 0 around (-1, -1), class 1 around (1.5, 1.5).
m = 200
X = np.concatenate([rng.normal(-1.0, 1.0, (m // 2, 2)), rng.normal(1.5, 1.0, (m // 2, 2))])
Y = np.concatenate([np.zeros(m // 2), np.ones(m // 2)])[:, None]  # (m, 1)
Xt = gg.tensor(X, dtype="float32")
Yt = gg.tensor(Y, dtype="float32")

# Parameters: w (2, 1) and b (1,), starting from zero (fine for logistic regression).
w = gg.zeros((2, 1), requires_grad=True)
b = gg.zeros((1,), requires_grad=True)

lr, steps = 0.5, 300
losses = []
for step in range(steps):
    a = (Xt @ w + b).sigmoid()                                     # forward: (m, 1)
    loss = -(Yt * a.log() + (1 - Yt) * (1 - a).log()).mean()      # BCE, mean over m
    loss.backward()                                                # dw, db by the chain rule

    if step == 0:
        # The lecture's vectorised gradient: dz = a - y, dw = X^T (a - y) / m.
        lecture_dw = X.T @ (a.numpy() - Y) / m
        lecture_db = (a.numpy() - Y).mean()
        ok = (np.allclose(w.grad.numpy(), lecture_dw, atol=1e-6)
              and np.allclose(b.grad.item(), lecture_db, atol=1e-6))
        print(f"step 0: dw = {w.grad.numpy().ravel().round(4)}, "
              f"X^T(a - y)/m = {lecture_dw.ravel().round(4)}: "
              f"{'match' if ok else 'MISMATCH'}")

    # Gradient descent by hand: the update itself is not part of the graph.
    with gg.no_grad():
        w = (w - lr * w.grad).detach().requires_grad_()
        b = (b - lr * b.grad).detach().requires_grad_()

    losses.append(loss.item())
    if step % 50 == 0 or step == steps - 1:
        print(f"step {step:>3}  loss {loss.item():.4f}")

with gg.no_grad():
    predictions = (Xt @ w + b).sigmoid().numpy() > 0.5
accuracy = (predictions == Y).mean()
print(f"w = {w.numpy().ravel().round(3)}, b = {b.numpy().round(3)}")
print(f"training accuracy {accuracy:.1%}")
