"""`gpugrad demo`: the lecture's worked circuits, run and checked, then logistic
regression trained by gradient descent — every gradient from the engine."""

import math

import numpy as np

import gpugrad as gg


def _row(name, got, expected):
    got = np.round(np.asarray(got, dtype=float), 3)
    expected = np.round(np.asarray(expected, dtype=float), 3)
    ok = np.allclose(got, expected, atol=1e-3)
    shown = lambda a: str(a.tolist())  # noqa: E731
    return f"  {name:<6} {shown(got):<24} expected {shown(expected):<24} " \
           f"{'ok' if ok else 'MISMATCH'}", ok


def circuit_add_mul():
    """f(x, y, z) = (x + y) z at x=-2, y=5, z=-4: add distributes, mul swaps."""
    x, y, z = (gg.tensor(v, requires_grad=True) for v in (-2.0, 5.0, -4.0))
    f = (x + y) * z
    f.backward()
    return f, [("df/dx", x.grad.item(), -4), ("df/dy", y.grad.item(), -4),
               ("df/dz", z.grad.item(), 3)]


def circuit_sigmoid_neuron():
    """f = sigmoid(w0 x0 + w1 x1 + w2) at w = [2, -3, -3], x = [-1, -2]."""
    w = gg.tensor([2.0, -3.0, -3.0], requires_grad=True)
    x = gg.tensor([-1.0, -2.0], requires_grad=True)
    f = (w[0] * x[0] + w[1] * x[1] + w[2]).sigmoid()
    f.backward()
    return f, [("dx", x.grad.numpy(), [0.393, -0.590]),
               ("dw", w.grad.numpy(), [-0.197, -0.393, 0.197])]


def staged(x, y):
    """(x + sigmoid(y)) / (sigmoid(x) + (x + y)^2), in stages as the lecture writes it."""
    num = x + y.sigmoid()
    den = x.sigmoid() + (x + y) ** 2
    return num / den


def circuit_staged():
    """The staged function at x=3, y=-4, checked against central finite differences."""
    x = gg.tensor(3.0, dtype="float64", requires_grad=True)
    y = gg.tensor(-4.0, dtype="float64", requires_grad=True)
    f = staged(x, y)
    f.backward()

    def plain(a, b):
        s = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
        return (a + s(b)) / (s(a) + (a + b) ** 2)

    h = 1e-6
    fd = [(plain(3 + h, -4) - plain(3 - h, -4)) / (2 * h),
          (plain(3, -4 + h) - plain(3, -4 - h)) / (2 * h)]
    return f, [("df/dx", x.grad.item(), fd[0]), ("df/dy", y.grad.item(), fd[1])]


def logistic_regression(steps=300, lr=0.5, seed=0):
    """Binary cross-entropy on two Gaussian blobs, full-batch gradient descent; checks
    the engine's gradient against the lecture's dw = X^T (a - y) / m at the start."""
    rng = np.random.default_rng(seed)
    m = 200
    X = np.concatenate([rng.normal(-1, 1, (m // 2, 2)), rng.normal(1.5, 1, (m // 2, 2))])
    Y = np.concatenate([np.zeros(m // 2), np.ones(m // 2)])[:, None]
    Xt, Yt = gg.tensor(X, dtype="float32"), gg.tensor(Y, dtype="float32")
    w = gg.zeros((2, 1), requires_grad=True)
    b = gg.zeros((1,), requires_grad=True)
    history = []
    for step in range(steps):
        a = (Xt @ w + b).sigmoid()
        loss = -(Yt * a.log() + (1 - Yt) * (1 - a).log()).mean()
        loss.backward()
        if step == 0:
            lecture_dw = X.T @ (a.numpy() - Y) / m
            agrees = np.allclose(w.grad.numpy(), lecture_dw, atol=1e-6)
        with gg.no_grad():
            w = (w - lr * w.grad).detach().requires_grad_()
            b = (b - lr * b.grad).detach().requires_grad_()
        history.append(loss.item())
    accuracy = float((((Xt @ w + b).sigmoid().numpy() > 0.5) == Y).mean())
    return history, accuracy, agrees


def main(out=None):
    folder = _output_folder(out)  # a mistake in --out said before the demo runs
    print(f"gpugrad {gg.__version__} on {gg.info()['default_device']} "
          f"({gg.info()['reason']})\n")
    all_ok = True
    for title, circuit in [("(x + y) z at x=-2, y=5, z=-4", circuit_add_mul),
                           ("sigmoid neuron at w=[2,-3,-3], x=[-1,-2]",
                            circuit_sigmoid_neuron),
                           ("staged f(x,y) at x=3, y=-4 (vs finite differences)",
                            circuit_staged)]:
        f, rows = circuit()
        print(f"{title}: f = {f.item():.4f}")
        for name, got, expected in rows:
            line, ok = _row(name, got, expected)
            all_ok &= ok
            print(line)
        print()
    history, accuracy, agrees = logistic_regression()
    print("logistic regression, BCE, full-batch gradient descent (200 points, lr 0.5):")
    print(f"  dw from the engine == X^T(a - y)/m: {'ok' if agrees else 'MISMATCH'}")
    for step in (0, 50, 100, 299):
        print(f"  step {step:>3}  loss {history[step]:.4f}")
    print(f"  training accuracy {accuracy:.1%}\n")
    all_ok &= agrees
    graph = circuit_sigmoid_neuron()[0].graph
    print(f"the graph of the sigmoid neuron ({len(graph.op_nodes())} ops):")
    print("  " + str(graph).replace("\n", "\n  "))
    if folder is not None:
        (folder / "sigmoid_neuron.dot").write_text(graph.to_dot())
        print(f"\nwrote {folder / 'sigmoid_neuron.dot'} (render: dot -Tsvg -O <file>)")
    return 0 if all_ok else 1


def _output_folder(out):
    """--out as a folder, made if missing (None: no --out)."""
    if out is None:
        return None
    import pathlib

    folder = pathlib.Path(out)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder: give a folder for the "
                         "graph's DOT file")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
