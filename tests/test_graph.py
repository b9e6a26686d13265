"""The recorded graph as a user inspects it: loss.graph, gg.trace, networkx, DOT."""

import shutil
import subprocess

import networkx as nx
import numpy as np
import pytest

import gpugrad as gg


def small_loss():
    w = gg.tensor([[0.5, -1.0], [2.0, 0.25]], requires_grad=True)
    x = gg.tensor([[1.0, 2.0]])
    h = (x @ w).tanh()  # this line is the call site of matmul and tanh
    return (h * h).sum(), w, x


def test_loss_graph_is_a_networkx_dag_of_op_nodes():
    loss, w, x = small_loss()
    g = loss.graph
    assert isinstance(g, gg.Graph)
    assert isinstance(g.nx, nx.DiGraph)
    assert nx.is_directed_acyclic_graph(g.nx)
    assert g.op_counts() == {"matmul": 1, "tanh": 1, "mul": 1, "sum": 1}
    ops = [g.nx.nodes[n]["op"] for n in g.nx if g.nx.nodes[n]["kind"] == "op"]
    assert sorted(ops) == ["matmul", "mul", "sum", "tanh"]


def test_nodes_carry_shape_dtype_device_and_the_users_line():
    loss, w, x = small_loss()
    g = loss.graph.nx
    (matmul,) = [d for _, d in g.nodes(data=True) if d["op"] == "matmul"]
    assert matmul["shape"] == (1, 2)
    assert matmul["dtype"] == "float32"
    assert matmul["device"] == "cpu"
    assert matmul["site"].startswith("test_graph.py:")
    source = open(__file__).read().splitlines()[matmul["line"] - 1]
    assert "this line is the call site" in source
    (out,) = [d for _, d in g.nodes(data=True) if d["is_output"]]
    assert out["op"] == "sum" and out["shape"] == ()


def test_leaves_are_input_nodes_that_say_whether_they_require_grad():
    loss, w, x = small_loss()
    g = loss.graph.nx
    leaves = [d for _, d in g.nodes(data=True) if d["kind"] == "input"]
    assert sorted(d["requires_grad"] for d in leaves) == [False, True]
    assert all(g.in_degree(n) == 0 for n, d in g.nodes(data=True) if d["kind"] == "input")


def test_edges_record_argument_positions_even_for_a_value_used_twice():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = x * x
    g = y.graph.nx
    (edge,) = list(g.edges(data=True))
    assert edge[2]["argnums"] == (0, 1)


def test_iteration_order_is_topological():
    loss, _, _ = small_loss()
    g = loss.graph
    order = list(g)
    position = {n: i for i, n in enumerate(order)}
    assert all(position[a] < position[b] for a, b in g.nx.edges)


def test_trace_records_a_whole_function_without_requires_grad():
    def f(a, b):
        return (a * b + 1.0).relu(), a.sum()

    g = gg.trace(f, np.ones((2, 3)), np.ones((2, 3)))
    assert g.op_counts() == {"mul": 1, "add": 1, "relu": 1, "sum": 1}
    assert len(g.outputs) == 2
    inputs = [g.nx.nodes[n] for n in g.inputs]
    assert [d["input_index"] for d in inputs] == [0, 1]
    assert all(d["shape"] == (2, 3) and d["dtype"] == "float64" for d in inputs)


def test_a_result_made_with_nothing_recorded_says_how_to_get_its_graph():
    # Ops record their graph where an input requires grad; a result of ops without it
    # has none, and .graph says so and names gg.trace.
    x = gg.randn(3)
    y = (x * 2).sum()
    with pytest.raises(gg.GraphError, match=r"^\.graph: no graph was recorded for this "
                       r"tensor: sum made it, .*gg\.trace\(fn, \*inputs\).*test_graph.py"):
        _ = y.graph
    w = gg.randn(3, requires_grad=True)
    with gg.no_grad():
        z = w * 2
    with pytest.raises(gg.GraphError, match="mul made it"):
        _ = z.graph
    assert [n["op"] for _, n in x.graph.nx.nodes(data=True)] == ["input"]  # a leaf: itself
    traced = gg.trace(lambda a: (a * 2).sum(), x)
    assert sorted(n["op"] for _, n in traced.nx.nodes(data=True)) == [
        "constant", "input", "mul", "sum"]


def test_a_compiled_functions_result_points_to_the_plans_graph():
    w = gg.tensor([1.0, 2.0])
    step = gg.compile(lambda x: (x * w).sum())
    for _ in range(2):  # the traced call and a plan's run alike
        with pytest.raises(gg.GraphError, match=r"gg\.compile\(.*<lambda>\) returned it.*"
                           r"\.graph and \.traced_graph draw the plan"):
            _ = step(gg.ones(2)).graph
    assert step.graph.op_counts() == {"mul": 1, "sum": 1}


def test_backward_of_a_compiled_functions_result_says_where_to_call_it():
    w = gg.tensor([1.0, 2.0], requires_grad=True)
    step = gg.compile(lambda x: (x * w).sum())
    with pytest.warns(gg.CompileWarning):
        results = [step(gg.ones(2)) for _ in range(2)]  # the traced call and a plan's run
    for loss in results:
        with pytest.raises(gg.GraphError, match=r"returned by gg\.compile\(.*<lambda>\) has "
                           r"no graph.*call backward\(\) \(or gg.grad\) inside the "
                           r"compiled function"):
            loss.backward()


def test_trace_shows_constants_and_a_readable_text_dump():
    g = gg.trace(lambda a: a * 2.0, gg.ones(3))
    text = str(g)
    assert "arg0" in text and "constant 2.0" in text and "mul(" in text
    assert text.splitlines()[-1].startswith("return %")


def test_trace_of_a_function_returning_something_else_is_a_clear_error():
    with pytest.raises(TypeError, match="must return a Tensor"):
        gg.trace(lambda a: 3, gg.ones(3))


def test_to_dot_names_every_op_and_edge():
    loss, _, _ = small_loss()
    g = loss.graph
    dot = g.to_dot()
    assert dot.startswith("digraph gpugrad {")
    for op in ("matmul", "tanh", "mul", "sum"):
        assert op in dot
    assert dot.count("->") == g.nx.number_of_edges()
    assert "rankdir=LR" in g.to_dot(rankdir="LR")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_to_dot_is_valid_graphviz(tmp_path):
    loss, _, _ = small_loss()
    path = tmp_path / "g.dot"
    path.write_text(loss.graph.to_dot(sites=True))
    result = subprocess.run(["dot", "-Tsvg", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "<svg" in result.stdout and "matmul" in result.stdout


def test_a_deep_graph_builds_without_recursion():
    x = gg.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1.0
    g = y.graph
    assert len(g.op_nodes()) == 5000
    assert nx.dag_longest_path_length(g.nx) == 5000


def test_a_graph_from_an_intermediate_tensor_on_is_the_computation_after_it():
    """Graph.from_outputs([loss], [h]) stops at h: the layer after it and the loss, with
    h as the argument (arg0), as a trace's; g.subgraph does the same on node ids."""
    gg.manual_seed(0)
    first, second = gg.nn.Linear(4, 8), gg.nn.Linear(8, 3)
    x = gg.randn(5, 4)
    h = first(x).relu()
    loss = (second(h) * 2.0).sum()
    part = gg.Graph.from_outputs([loss], [h])
    assert part.op_counts() == {"linear": 1, "mul": 1, "sum": 1}
    assert "float32[5, 8] = arg0" in str(part)
    assert part.nx.nodes[h.node.seq]["kind"] == "input"
    assert not list(part.nx.predecessors(h.node.seq))
    whole = loss.graph
    assert whole.op_counts() == {"linear": 2, "relu": 1, "mul": 1, "sum": 1}
    same = whole.subgraph(whole.outputs, [h.node.seq])
    assert list(same) == list(part) and same.op_counts() == part.op_counts()
    assert "arg0" in same.to_dot() and "arg0" in str(same.to_html())
    with pytest.raises(KeyError, match="no node 12345"):
        whole.subgraph([12345])


def test_trace_keeps_parameters_updated_inside_and_starts_at_the_arguments():
    """An optimiser-style update under no_grad leaves the parameter a leaf that requires
    grad (tracing made it the update's result); an argument updated in place (acc += x)
    is drawn from before its update."""
    model = gg.nn.Linear(2, 1)

    def step(x):
        loss = model(x).sum()
        loss.backward()
        with gg.no_grad():
            model.weight -= 0.1 * model.weight.grad
        return loss

    gg.trace(step, gg.ones((3, 2)))
    assert model.weight.requires_grad and model.weight.is_leaf

    def accumulate(acc, v):
        acc += v * 3.0
        return acc.sum()

    graph = gg.trace(accumulate, gg.zeros(2), gg.tensor([1.0, 2.0], requires_grad=True))
    assert graph.op_counts() == {"mul": 1, "add": 1, "sum": 1}
