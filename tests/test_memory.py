"""Memory: saved values go as soon as backward has used them, so training loops stay
flat; the graph never keeps tensors alive that nothing needs."""

import gc
import tracemalloc

import numpy as np

import gpugrad as gg
from gpugrad.node import FREED


def train_step(w, x, y):
    h = (x @ w).tanh()
    loss = ((h - y) * (h - y)).mean()
    loss.backward()
    with gg.no_grad():
        w = (w - 0.1 * w.grad).detach().requires_grad_()
    return w, loss


def test_a_training_loop_does_not_grow():
    rng = np.random.default_rng(0)
    x = gg.tensor(rng.standard_normal((256, 64)))
    y = gg.tensor(rng.standard_normal((256, 32)))
    w = gg.tensor(rng.standard_normal((64, 32)) * 0.1, requires_grad=True)
    for _ in range(5):  # warm-up: caches, first allocations
        w, _ = train_step(w, x, y)
    gc.collect()
    tracemalloc.start()
    for _ in range(5):
        w, _ = train_step(w, x, y)
    gc.collect()
    after_5 = tracemalloc.get_traced_memory()[0]
    for _ in range(50):
        w, _ = train_step(w, x, y)
    gc.collect()
    after_55 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    one_activation = 256 * 32 * 4
    assert after_55 - after_5 < one_activation, (after_5, after_55)


def test_backward_releases_what_each_node_saved():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    nodes = [n for n in (y.graph.node(i) for i in y.graph.op_nodes())]
    assert all(n.saved is not FREED for n in nodes)
    y.backward()
    assert all(n.saved is FREED for n in nodes)


def test_retain_graph_keeps_them_for_a_second_backward():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)


def test_a_dropped_leaf_is_not_kept_alive_by_the_graph():
    import weakref

    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = x + 1.0  # add saves nothing
    ref = weakref.ref(x)
    del x
    gc.collect()
    assert ref() is None
    y.backward(gg.ones(2))  # still runs: there is just no .grad left to fill
