"""gg.profile(): per-op time and bytes, forward and backward, onto the graph's nodes."""

import networkx as nx
import numpy as np

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F
from gpugrad.ops import REGISTRY


def profiled_step():
    gg.manual_seed(0)
    model = nn.MLP([784, 512, 256, 10])
    opt = gg.optim.SGD(model.parameters(), lr=0.01)
    x = gg.randn(256, 784)
    y = gg.tensor(np.random.default_rng(0).integers(0, 10, 256))
    with gg.profile():  # warm-up: first-call costs out of the way
        F.cross_entropy(model(x), y).backward()
    opt.zero_grad()
    with gg.profile() as prof:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return prof, loss


def test_the_numbers_add_up_to_about_the_steps_wall_time():
    prof, _ = profiled_step()
    timed = sum(r["seconds"] for r in prof.records)
    assert 0.5 * prof.wall <= timed <= prof.wall


def test_nodes_carry_their_forward_and_backward_time_and_bytes():
    prof, loss = profiled_step()
    graph = loss.graph
    linears = [graph.node(n) for n in graph.op_nodes() if graph.node(n).name == "linear"]
    assert len(linears) == 3
    for node in linears:
        assert node.meta["time"] > 0 and node.meta["backward_time"] > 0
        assert node.meta["bytes"] == int(np.prod(node.shape)) * 4
    totals = prof.totals()
    assert totals["linear"]["calls"] == 3 and "matmul" not in totals  # VJP ops fold in
    assert prof.table().splitlines()[1].startswith("linear")


def test_the_critical_path_runs_through_the_graph():
    prof, loss = profiled_step()
    graph = loss.graph
    path = prof.critical_path(graph)
    assert nx.is_path(graph.nx, path)
    assert [graph.node(n).name for n in path][-2:] == ["cross_entropy", "mean"]


def test_kernels_are_unwrapped_after_the_block():
    profiled_step()
    assert not any(hasattr(op.forward, "__wrapped__") for op in REGISTRY.values())
    assert not gg.mode.state.special
