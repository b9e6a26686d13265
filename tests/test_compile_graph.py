"""The graphs of a compiled function (`step.traced_graph`, as traced, and `step.graph`,
after the passes) carry what an eager graph carries: the nn.Module call each forward op
was made in, the names of the parameters and the user's line of each op, so that the
viewers draw them alike (module clusters in DOT, module frames in the HTML viewer)."""

import re
import shutil
import subprocess

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F
from gpugrad.compiler import patterns
from gpugrad.compiler.compiled import trace_and_compile
from gpugrad.viz.html import page_data

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed")


def batch():
    rng = np.random.default_rng(0)
    return (gg.tensor(rng.standard_normal((6, 5)).astype("float32")),
            gg.tensor(rng.integers(0, 3, 6)))


def compiled_step(model):
    """gg.compile of an Adam training step of `model`, run once (so traced)."""
    opt = gg.optim.Adam(model.parameters(), lr=1e-2)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)  # the line of every forward op
        loss.backward()
        opt.step()
        return loss

    compiled = gg.compile(step)
    compiled(*batch())
    return compiled


def mlp():
    gg.manual_seed(0)
    return nn.MLP([5, 8, 3])


def eager_graph(model):
    x, y = batch()
    return F.cross_entropy(model(x), y).graph


def scoped_ops(graph):
    """(id, scope) of the op nodes made inside some module call, in topological order."""
    return [(seq, data["scope"]) for seq, data in graph.nx.nodes(data=True)
            if data["kind"] == "op" and data["scope"]]


def parameter_leaves(graph):
    """{name: networkx attributes} of the named leaves, but for the function's arguments."""
    return {data["name"]: data for _, data in graph.nx.nodes(data=True)
            if data["name"] and data["input_index"] is None}


def test_a_compiled_step_graph_has_the_module_scopes_of_the_eager_forward():
    model = mlp()
    eager = eager_graph(model)
    compiled = compiled_step(model)
    expected = [scope for _, scope in scoped_ops(eager)]
    assert expected == [("MLP", "MLP.0"), ("MLP", "MLP.1"), ("MLP", "MLP.2")]
    for graph in (compiled.traced_graph, compiled.graph):
        assert graph.nx.graph["scopes"] == eager.nx.graph["scopes"] == {
            "MLP": "MLP", "MLP.0": "Linear", "MLP.1": "ReLU", "MLP.2": "Linear"}
        # The forward ops, and only they: the backward's ops and the optimiser's update
        # are made outside any module call, as in an eager backward with create_graph.
        assert [scope for _, scope in scoped_ops(graph)] == expected
    traced = compiled.traced_graph.nx.nodes
    assert [traced[seq]["op"] for seq, _ in scoped_ops(compiled.traced_graph)] == [
        "linear", "relu", "linear"]


def test_a_compiled_step_graph_names_the_parameters_as_the_eager_graph_does():
    model = mlp()
    eager = eager_graph(model)
    compiled = compiled_step(model)
    names = {f"MLP.{name}" for name, _ in model.named_parameters()}
    assert set(parameter_leaves(eager)) == names
    for graph in (compiled.traced_graph, compiled.graph):
        leaves = {name: data for name, data in parameter_leaves(graph).items()
                  if data["requires_grad"]}
        assert set(leaves) == names
        assert all(data["kind"] == "input" for data in leaves.values())
        # A leaf sits where its readers meet (gg.Graph's rule): the optimiser reads
        # the parameters too, so here that is outside the modules.
        assert all(data["scope"] == () for data in leaves.values())


def test_what_belongs_to_a_parameter_is_named_after_it():
    # The optimiser's state and the update's host scalars are leaves of a plan too.
    model = mlp()
    compiled = compiled_step(model)
    params = [f"MLP.{name}" for name, _ in model.named_parameters()]
    expected = ({f"{p}.{key}" for p in params for key in ("exp_avg", "exp_avg_sq")}
                | {f"Adam {key} of {p}" for p in params for key in ("step_size", "sqrt_bias2")})
    for graph in (compiled.traced_graph, compiled.graph):
        assert set(parameter_leaves(graph)) - set(params) == expected

    # An update compiled on its own, which calls no module: its place in the optimiser
    # names a parameter, as in opt.state_dict().
    opt = gg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = batch()
    F.cross_entropy(model(x), y).backward()
    update = gg.compile(opt.step)
    update()
    update()
    assert set(parameter_leaves(update.graph)) == (
        {f"param {i}.momentum_buffer" for i in range(4)}
        | {f"SGD {key} of param {i}" for i in range(4) for key in ("lr", "dampening")})


def argument_names(graph):
    return [graph.nx.nodes[seq]["name"] for seq in graph.inputs]


def test_a_compiled_functions_arguments_are_named_after_its_parameters():
    """step(x, y): the batch is x and the labels y in both graphs, in every viewer; the
    summary lists them beside the parameters and the optimiser's state."""
    compiled = compiled_step(mlp())
    for graph in (compiled.traced_graph, compiled.graph):
        assert argument_names(graph) == ["x", "y"]
        assert "float32[6, 5] = arg0 x\n" in str(graph) and "= arg1 y\n" in str(graph)
        dot = graph.to_dot()
        assert '[label="x\\nfloat32[6, 5]"' in dot and '[label="y\\nint64[6]"' in dot
        titles = {n["title"] for n in page_data(graph)["nodes"] if n["kind"] == "input"}
        assert {"x", "y", "MLP.0.weight", "MLP.0.weight.exp_avg"} <= titles
        leaves = {r["title"]: r["role"] for r in graph.summary(print_table=False)["leaves"]}
        assert leaves["x"] == "argument 0" and leaves["y"] == "argument 1"


def test_arguments_are_named_as_the_call_binds_them():
    """Numbers are not tensor arguments, keywords bind by name, and a method's self is
    not one of its tensors: the names follow the tensors to their places."""
    def scaled(x, scale, w=None, *, offset=0.0):
        return ((x * scale) @ w + offset).sum()

    x, w = gg.ones(2, 3), gg.ones(3, 4)
    compiled = gg.compile(scaled)
    compiled(x, 2.0, w=w, offset=1.0)
    assert argument_names(compiled.traced_graph) == ["x", "w"]

    class Model:
        weight = gg.ones(3, 4)

        @gg.compile
        def forward(self, batch):
            return (batch @ self.weight).sum()

    Model().forward(x)
    assert argument_names(Model.forward.traced_graph) == ["batch"]


def test_each_op_of_a_compiled_graph_carries_the_users_line():
    compiled = compiled_step(mlp())
    with open(__file__) as f:
        forward = 1 + next(i for i, text in enumerate(f)
                           if "the line of every forward op" in text)
    backward, update = forward + 1, forward + 2  # loss.backward(), opt.step()
    for graph in (compiled.traced_graph, compiled.graph):
        ops = [data for _, data in graph.nx.nodes(data=True) if data["kind"] == "op"]
        for data in ops:
            assert data["file"] == __file__
            assert data["site"] == f"test_compile_graph.py:{data['line']}"
        lines = {data["line"] for data in ops}
        assert lines == {forward, backward, update}
    lines = {data["op"]: data["line"] for _, data in compiled.traced_graph.nx.nodes(data=True)}
    assert lines["linear"] == lines["relu"] == forward
    assert lines["relu_backward"] == backward


def test_a_node_keeps_its_id_from_the_trace_through_the_passes():
    compiled = compiled_step(mlp())
    traced, optimised = compiled.traced_graph, compiled.graph
    assert len(optimised) < len(traced)  # the passes fused and dropped nodes...
    assert set(optimised) <= set(traced)  # ...and made none: each is a traced node
    assert [seq for seq, _ in scoped_ops(optimised)] == [
        seq for seq, _ in scoped_ops(traced)]
    assert {name: data["shape"] for name, data in parameter_leaves(optimised).items()} == {
        name: data["shape"] for name, data in parameter_leaves(traced).items()}


class Scaled(nn.Module):
    """A module whose output (x W^T + b) * 2 the fusion pass merges into the next op."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 8)

    def forward(self, x):
        return self.lin(x) * 2.0


def test_a_module_whose_output_a_pass_merged_away_still_holds_its_ops():
    gg.manual_seed(0)
    compiled = compiled_step(nn.Sequential(Scaled(), nn.Tanh(), nn.Linear(8, 3)))
    traced, optimised = compiled.traced_graph.nx, compiled.graph.nx
    (mul,) = [seq for seq, d in traced.nodes(data=True)
              if d["op"] == "mul" and d["scope"]]
    assert traced.nodes[mul]["scope"] == ("Sequential", "Sequential.0")
    assert mul not in optimised  # Scaled's output: fused into the tanh after it
    linear = min(seq for seq, d in optimised.nodes(data=True) if d["op"] == "linear")
    assert optimised.nodes[linear]["scope"] == (
        "Sequential", "Sequential.0", "Sequential.0.lin")
    # The fused op runs where its last op (tanh) ran, and sits in that op's module.
    (fused,) = [d for _, d in optimised.nodes(data=True)
                if d["op"] == "fused" and d["scope"]]
    assert fused["attrs"]["expr"] == "tanh(mul(x0, x1))"
    assert fused["scope"] == ("Sequential", "Sequential.1")


def test_a_linear_layers_bias_act_kernel_sits_in_its_activations_module():
    # The CuPy rewrite onto kernels/bias_act.cu, run alone on a CPU program: the linear
    # becomes a matmul, the activation one bias_act op, each where its op was.
    model = mlp()
    opt = gg.optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    _, plan = trace_and_compile(step, list(batch()), optimize=False)
    assert patterns.bias_activation(plan.program) == 1
    graph = plan.program.graph()
    ops = [(graph.nx.nodes[seq]["op"], scope) for seq, scope in scoped_ops(graph)]
    assert ops == [("matmul", ("MLP", "MLP.0")), ("bias_act", ("MLP", "MLP.1")),
                   ("linear", ("MLP", "MLP.2"))]


@needs_dot
def test_the_dot_of_a_compiled_step_draws_a_cluster_per_module_call():
    compiled = compiled_step(mlp())
    graph = compiled.graph
    dot = graph.to_dot(scopes=True)
    svg = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    for title in ("cluster_MLP", "cluster_MLP.0", "cluster_MLP.1", "cluster_MLP.2"):
        assert f"<title>{title}</title>" in svg
    assert 'label="MLP.0 (Linear)"' in dot and 'label="MLP.1 (ReLU)"' in dot
    first = scoped_ops(graph)[0][0]
    block = dot.split('subgraph "cluster_MLP.0" {')[1].split("}")[0]
    assert f"  n{first} [" in block  # the first layer's op, inside its module's cluster
    assert 'label="MLP.0.weight' in dot  # a parameter is drawn by its name
    assert "subgraph" not in graph.to_dot()  # clusters only when asked for


def test_the_html_viewer_frames_the_modules_of_a_compiled_step():
    compiled = compiled_step(mlp())
    data = page_data(compiled.graph)
    paths = [scope["path"] for scope in data["scopes"]]
    assert paths == ["MLP", "MLP.0", "MLP.1", "MLP.2"]
    framed = [(node["op"], paths[node["scope"]]) for node in data["nodes"]
              if node["scope"] >= 0]
    assert [path for _, path in framed] == ["MLP.0", "MLP.1", "MLP.2"]
    assert {node["name"] for node in data["nodes"] if node["name"]} >= {
        "MLP.0.weight", "MLP.0.bias", "MLP.2.weight", "MLP.2.bias", "MLP.0.weight.exp_avg"}


def test_a_listing_names_parameters_and_uses_only_lines_above():
    # The passes append the leaves they make (a folded constant, with a later id); a
    # listing still reads top to bottom, every %id defined before it is used.
    compiled = compiled_step(mlp())
    for graph in (eager_graph(mlp()), compiled.graph):
        listing = str(graph).splitlines()
        assert any(line.endswith("= input MLP.0.weight (requires grad)") for line in listing)
        defined = set()
        for line in listing[:-1]:
            node_id = int(re.match(r"%(\d+): ", line).group(1))
            assert node_id in graph.nx  # the id g.nx knows the node by
            used = [int(u) for u in re.findall(r"%(\d+)", line.split("=", 1)[1])]
            assert all(u in defined for u in used), line
            defined.add(node_id)
