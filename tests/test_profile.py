"""gg.profile(): per-op time and bytes, forward and backward, onto the graph's nodes."""

import networkx as nx
import numpy as np
import pytest

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
    rows = [line.split() for line in prof.table().splitlines()[1:-1]]
    assert [r[0] for r in rows if r[0] == "linear"] == ["linear"]
    spent = [float(r[2]) + float(r[3]) for r in rows]  # forward + backward ms
    # the costliest ops first (to the rounding of the two printed times)
    assert all(a >= b - 0.001 for a, b in zip(spent, spent[1:], strict=False))


def test_the_critical_path_runs_through_the_graph():
    prof, loss = profiled_step()
    graph = loss.graph
    path = prof.critical_path(graph)
    assert nx.is_path(graph.nx, path)
    assert [graph.node(n).name for n in path][-2:] == ["cross_entropy", "mean"]


def test_the_critical_path_of_a_graph_no_profile_timed_is_an_error():
    """Every chain is as long as any other when no node has a time: it says so, rather
    than return one chain picked at random. A compiled step's graph is one: under a
    profile the step runs eagerly, op by op, and its plan never runs."""
    gg.manual_seed(0)
    model = nn.MLP([4, 3])
    x, y = gg.randn(5, 4), gg.tensor([0, 1, 2, 0, 1])

    @gg.compile
    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    step(x, y)
    with gg.profile() as prof:
        loss = step(x, y)
    with pytest.raises(gg.GraphError, match="no node of this graph was timed: it is a "
                       "compiled function's graph"):
        prof.critical_path(step.graph)
    assert nx.is_path(loss.graph.nx, prof.critical_path(loss.graph))  # the eager one was
    untimed = F.cross_entropy(model(x), y).graph
    with pytest.raises(gg.GraphError, match=r"no node of this graph was timed: pass the "
                       r"graph of a tensor computed inside `with gg.profile\(\)"):
        prof.critical_path(untimed)


def test_a_profile_inside_a_profile_is_refused_and_the_outer_one_goes_on():
    x = gg.ones(2, requires_grad=True)
    with gg.profile() as outer:
        with pytest.raises(RuntimeError, match=r"gg.profile\(\) inside another"):
            with gg.profile():
                pass
        (x * 2.0).sum().backward()
    assert outer.totals()["mul"]["calls"] == 1 and outer.totals()["mul"]["backward"] > 0
    assert not any(hasattr(op.forward, "__wrapped__") for op in REGISTRY.values())


def test_kernels_are_unwrapped_after_the_block():
    profiled_step()
    assert not any(hasattr(op.forward, "__wrapped__") for op in REGISTRY.values())
    assert not gg.mode.state.special


def test_a_kernel_registered_inside_the_block_stays_registered():
    @gg.custom_op("test_profile::late", replace=True)
    def late(x):
        return x + 1

    with gg.profile():
        @late.register_kernel("cpu")
        def _(x):
            return x + 100

        assert late(gg.zeros(1)).item() == 100.0
    assert late(gg.zeros(1)).item() == 100.0  # not put back to the generic kernel
    assert not any(hasattr(k, "__wrapped__") for op in REGISTRY.values()
                   for k in [op.forward, *op.kernels.values()])


# --- value and gradient statistics: gg.profile(stats=True) ------------------------------------
def numpy_stats(array):
    """What the statistics of an array should be, computed with NumPy alone."""
    array = np.asarray(array, dtype=np.float64)
    finite = array[np.isfinite(array)]
    return {"min": finite.min(), "max": finite.max(), "mean": finite.mean(),
            "norm": np.sqrt((finite ** 2).sum()), "nan": int(np.isnan(array).sum()),
            "inf": int(np.isinf(array).sum()), "zeros": int((array == 0).sum()),
            "size": array.size}


def assert_stats_equal(recorded, expected):
    for key in ("nan", "inf", "zeros", "size"):
        assert recorded[key] == expected[key], key
    for key in ("min", "max", "mean", "norm"):
        assert np.isclose(recorded[key], expected[key], rtol=1e-5, atol=1e-7), key


def test_value_statistics_are_numpys_over_the_finite_values():
    x = gg.tensor([[0.0, -1.0, 2.0], [3.0, 0.5, 4.0]], requires_grad=True)
    with gg.profile(stats=True), np.errstate(divide="ignore", invalid="ignore"):
        y = x.log()  # log(0) = -inf, log(-1) = NaN: one of each, planted
        z = y * 2.0
    assert_stats_equal(y.node.meta["stats"], numpy_stats(y.numpy()))
    assert y.node.meta["stats"]["nan"] == 1 and y.node.meta["stats"]["inf"] == 1
    assert_stats_equal(z.node.meta["stats"], numpy_stats(z.numpy()))
    assert_stats_equal(x.node.meta["stats"], numpy_stats(x.numpy()))  # leaves too


def test_gradient_statistics_are_those_of_the_gradient_reaching_each_node():
    gg.manual_seed(0)
    w = gg.randn(3, 4, requires_grad=True)
    x = gg.randn(5, 3)
    with gg.profile(stats=True):
        h = x @ w
        dead = (h - 100.0).relu()  # every value negative before relu: no gradient passes
        loss = (h * h).sum() + dead.sum()
        loss.backward()
    h_np = x.numpy() @ w.numpy()
    assert_stats_equal(h.node.meta["grad_stats"], numpy_stats(2 * h_np + 0.0))
    assert_stats_equal(w.node.meta["grad_stats"], numpy_stats(w.grad.numpy()))
    sub = dead.node.inputs[0]
    assert sub.meta["grad_stats"]["zeros"] == sub.meta["grad_stats"]["size"] == 20
    assert loss.graph.summary(print_table=False)["totals"]["zero_grad"] == [sub.seq]


def test_statistics_are_small_dicts_of_python_numbers():
    gg.manual_seed(0)
    model = nn.MLP([8, 16, 4])
    with gg.profile(stats=True):
        loss = F.cross_entropy(model(gg.randn(6, 8)), gg.tensor([0, 1, 2, 3, 0, 1]))
        loss.backward()
    graph = loss.graph
    for seq in graph:
        meta = graph.node(seq).meta or {}
        for key in ("stats", "grad_stats"):
            if meta.get(key) is not None:
                assert all(type(v) in (int, float) for v in meta[key].values()), key


def test_without_stats_a_profile_computes_none():
    with gg.profile():
        y = gg.ones(3, requires_grad=True).exp()
        y.sum().backward()
    assert "stats" not in y.node.meta and "grad_stats" not in y.node.meta


# --- memory per node ----------------------------------------------------------------------
def test_saved_bytes_are_what_each_vjp_keeps():
    prof, loss = profiled_step()
    graph = loss.graph
    first, second, third = [graph.node(n) for n in graph.op_nodes()
                            if graph.node(n).name == "linear"]
    relu = next(graph.node(n) for n in graph.op_nodes() if graph.node(n).name == "relu")
    # The first layer's input needs no gradient: its VJP keeps only that input (for W's
    # gradient). Later layers keep their input and their weight (for the input's).
    assert first.meta["saved_bytes"] == 256 * 784 * 4
    assert second.meta["saved_bytes"] == 256 * 512 * 4 + 256 * 512 * 4
    assert third.meta["saved_bytes"] == 256 * 256 * 4 + 10 * 256 * 4
    assert relu.meta["saved_bytes"] == int(np.prod(relu.shape)) * 4  # its output
    assert prof.totals()["linear"]["saved_bytes"] == sum(
        n.meta["saved_bytes"] for n in (first, second, third))
    assert "MB saved" in prof.table()


def test_kernel_allocations_are_measured_on_request():
    x = gg.randn(500, 500, requires_grad=True)
    with gg.profile(memory=True) as prof:
        e = x.exp()
        s = x.sigmoid()  # computed through temporaries as large as its output
    out = 500 * 500 * 4
    assert out <= e.node.meta["kernel_bytes"] < out + 64 * 1024
    assert s.node.meta["kernel_bytes"] >= 2 * out
    assert "MB alloc" in prof.table()
    with gg.profile() as prof:  # on the host, only on request: tracemalloc is slow
        e = x.exp()
    assert "kernel_bytes" not in e.node.meta and "MB alloc" not in prof.table()


def test_a_profile_leaves_tracemalloc_as_it_found_it():
    import tracemalloc

    with gg.profile(memory=True):
        gg.ones(3).exp()
    assert not tracemalloc.is_tracing()
