"""Looking at graphs: Graphviz rendering, node-link JSON, GraphML, summaries."""

import inspect
import io
import json
import os
import re
import shutil
import subprocess
import sys

import networkx as nx
import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed")


def training_step_graph():
    gg.manual_seed(0)
    model = nn.MLP([4, 8, 3])
    loss = F.cross_entropy(model(gg.randn(5, 4)), gg.tensor([0, 1, 2, 0, 1]))
    return loss.graph, model


@needs_dot
@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".png", b"\x89PNG"),
                                           (".pdf", b"%PDF")])
def test_render_writes_the_format_its_extension_names(tmp_path, suffix, magic):
    graph, _ = training_step_graph()
    path = graph.render(tmp_path / f"step{suffix}")
    with open(path, "rb") as f:
        assert f.read(len(magic)) == magic


@needs_dot
def test_the_svg_shows_every_op():
    graph, _ = training_step_graph()
    svg = graph._repr_svg_()
    for op in ("linear", "relu", "cross_entropy", "mean"):
        assert op in svg


def test_render_refuses_unknown_formats(tmp_path):
    graph, _ = training_step_graph()
    with pytest.raises(ValueError, match=".svg, .png, .pdf, .dot"):
        graph.render(tmp_path / "step.gif")


def test_render_to_dot_writes_the_dot_text(tmp_path):
    graph, _ = training_step_graph()
    path = graph.render(tmp_path / "step.dot")
    assert open(path).read() == graph.to_dot()


def test_without_graphviz_render_says_how_to_install_it(tmp_path):
    code = ("import gpugrad as gg\ng = gg.trace(lambda a: a * 2.0, gg.ones(2))\n"
            "try:\n    g.render('x.svg')\nexcept gg.viz.RenderError as e:\n    print(e)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, env={**os.environ, "PATH": str(tmp_path)},
                            timeout=120)
    assert "apt-get install graphviz" in result.stdout, result.stderr


def test_node_link_json_holds_every_node_and_edge(tmp_path):
    graph, _ = training_step_graph()
    text = graph.to_json(tmp_path / "g.json")
    assert text == (tmp_path / "g.json").read_text()
    page = graph.to_html(tmp_path / "g.html")
    assert page == (tmp_path / "g.html").read_text() and "<svg" in page
    # At a prompt, the returned text shows as one line, not the whole page.
    assert repr(page) == f"<HTML page: {len(page):,} characters, written to {tmp_path / 'g.html'}>"
    data = json.loads(text)
    assert len(data["nodes"]) == len(graph) and len(data["edges"]) == graph.nx.number_of_edges()
    assert {n["op"] for n in data["nodes"]} >= {"linear", "relu", "cross_entropy", "mean"}
    assert json.loads(graph.to_json()) == data  # without a path: the text


def test_graphml_reads_back_with_networkx(tmp_path):
    graph, _ = training_step_graph()
    back = nx.read_graphml(graph.to_graphml(tmp_path / "g.graphml"))
    assert back.number_of_nodes() == len(graph)
    assert sorted(d["op"] for _, d in back.nodes(data=True)) == \
        sorted(d["op"] for _, d in graph.nx.nodes(data=True))


def test_graphml_goes_into_an_open_file_as_networkx_writes_it():
    graph, _ = training_step_graph()
    out = io.BytesIO()
    assert graph.to_graphml(out) is out
    assert nx.read_graphml(io.BytesIO(out.getvalue())).number_of_nodes() == len(graph)


def test_summary_counts_parameters_flops_and_bytes(capsys):
    graph, model = training_step_graph()
    result = graph.summary()
    totals = result["totals"]
    assert totals["parameters"] == sum(p.size for p in model.parameters()) == 67
    linears = [r for r in result["rows"] if r["op"] == "linear"]
    assert [r["flops"] for r in linears] == [2 * 5 * 8 * 4, 2 * 5 * 3 * 8]
    assert totals["activation_bytes"] == sum(r["bytes"] for r in result["rows"])
    assert totals["op_counts"] == {"linear": 2, "relu": 1, "cross_entropy": 1, "mean": 1}
    printed = capsys.readouterr().out
    assert "67 parameters" in printed and "test_viz.py:" in printed
    assert np.isclose(totals["flops"], sum(r["flops"] for r in result["rows"]))
    # After the printed table, an interactive session echoes one line, not every row;
    # the table itself is the summary's text.
    assert repr(result) == "<graph summary: 5 ops, 67 parameters; keys 'totals', 'rows', 'leaves'>"
    assert str(result) + "\n" == printed and "cross_entropy" in str(result)


def test_a_reduction_counts_an_operation_per_element_it_reads():
    x = gg.ones((1000, 30), requires_grad=True)
    loss = F.cross_entropy(x, gg.zeros(1000, dtype="int64")) + x.sum(axis=1).max() + \
        x.mean()
    rows = [(r["op"], r["flops"]) for r in loss.graph.summary(print_table=False)["rows"]
            if r["op"] != "add"]
    # cross_entropy, sum and x.mean() read 30,000 values; max and the loss's mean 1,000.
    assert sorted(rows) == [("cross_entropy", 30_000), ("max", 1000), ("mean", 1000),
                            ("mean", 30_000), ("sum", 30_000)]


def test_a_profile_records_the_graph_of_what_needs_no_gradient():
    # An evaluation under gg.profile(): its ops are recorded, their times on the graph.
    with gg.profile() as prof:
        y = (gg.randn(3) * 2).sum()
    assert y.graph.op_counts() == {"mul": 1, "sum": 1}
    assert y.graph.node(y.node.seq).meta["time"] > 0
    assert str(prof) == prof.table() and "mul" in str(prof)


def test_diff_names_what_changed_between_two_graphs():
    same_a, _ = training_step_graph()
    same_b, _ = training_step_graph()
    assert gg.viz.diff(same_a, same_b)["same"]
    other = F.cross_entropy(nn.MLP([4, 8, 8, 3])(gg.randn(5, 4)),
                            gg.tensor([0, 1, 2, 0, 1])).graph
    result = gg.viz.diff(same_a, other)
    assert not result["same"]
    assert result["op_counts"]["linear"] == (2, 3) and result["op_counts"]["relu"] == (1, 2)
    assert ("linear", (5, 8), "float32") in result["only_in_second"]


def run_cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "gpugrad", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, env={**os.environ, **(env or {})})


def test_gpugrad_viz_draws_an_mlp_training_step(tmp_path):
    result = run_cli("viz", "--mlp", "64", "32", "10", "--out", str(tmp_path / "step.html"))
    assert result.returncode == 0, result.stderr
    assert "5 ops" in result.stdout
    assert "<svg" in (tmp_path / "step.html").read_text()


@needs_dot
def test_gpugrad_viz_traces_a_users_function(tmp_path):
    (tmp_path / "mymodel.py").write_text("def layer(x, w):\n    return (x @ w).tanh()\n")
    result = run_cli("viz", "--function", "mymodel:layer", "--shapes", "3,4", "4,2",
                     "--out", str(tmp_path / "layer.svg"), env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "matmul" in (tmp_path / "layer.svg").read_text()


def test_the_gpugrad_command_finds_a_function_in_the_current_directory(tmp_path):
    """The README's `gpugrad viz --function mymodule:fn`, run by the installed console
    script (whose sys.path, unlike `python -m`'s, does not start with the current
    directory) from the folder that holds mymodule.py, with no PYTHONPATH."""
    (tmp_path / "mymodule.py").write_text("def fn(x, w):\n    return (x @ w).tanh()\n")
    script = os.path.join(os.path.dirname(sys.executable), "gpugrad")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([script, "viz", "--function", "mymodule:fn", "--shapes", "3,4",
                             "4,2", "--out", "fn.dot"], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "2 ops" in result.stdout
    assert "matmul" in (tmp_path / "fn.dot").read_text()


def test_gpugrad_viz_errors_are_one_line(tmp_path):
    result = run_cli("viz", "--function", "nowhere_module:f", "--out",
                     str(tmp_path / "x.svg"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "nowhere_module" in result.stderr
    (tmp_path / "mymodel.py").write_text("def layer(x, w):\n    return (x @ w).tanh()\n")
    result = run_cli("viz", "--function", "mymodel:layer", "--shapes", "3,4", "--out",
                     str(tmp_path / "layer.dot"), env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "mymodel:layer on 1 input(s) of --shapes 3,4: " in result.stderr  # needs two
    result = run_cli("viz", "--out", str(tmp_path / "x.txt"))
    assert result.returncode == 1
    assert "use one of .svg, .png, .pdf, .html, .dot" in result.stderr


def test_the_estimated_peak_memory_of_a_step_is_close_to_the_measured_one():
    """Known before running the step; checked against tracemalloc on a real one."""
    import gc
    import tracemalloc

    gg.manual_seed(0)
    x = gg.randn(256, 784)
    y = gg.tensor(np.random.default_rng(0).integers(0, 10, 256))
    model = nn.MLP([784, 512, 256, 10])
    estimate = F.cross_entropy(model(x), y).graph.summary(print_table=False)[
        "totals"]["estimated_peak_bytes"]
    model.zero_grad()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    F.cross_entropy(model(x), y).backward()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    held_already = sum(p.size * 4 for p in model.parameters()) + x.size * 4
    measured = peak - before + held_already
    assert 0.5 <= estimate / measured <= 2.0, (estimate, measured)


# --- to_dot options -----------------------------------------------------------------------
def graphviz_svg(dot_text):
    """The SVG Graphviz draws from DOT text (the test fails if Graphviz rejects it)."""
    result = subprocess.run(["dot", "-Tsvg"], input=dot_text, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    return result.stdout


def profiled_training_step():
    """An MLP's step under gg.profile(stats=True): values and gradients described."""
    gg.manual_seed(0)
    model = nn.MLP([4, 8, 3])
    with gg.profile(stats=True):
        loss = F.cross_entropy(model(gg.randn(5, 4)), gg.tensor([0, 1, 2, 0, 1]))
        loss.backward()
    return loss.graph


def nodes_named(graph, op):
    return [seq for seq in graph.op_nodes() if graph.node(seq).name == op]


def test_the_default_dot_is_the_forward_pass_alone():
    graph, _ = training_step_graph()
    dot = graph.to_dot()
    assert dot == graph.to_dot(passes="forward", scopes=False, stats=False, devices=False)
    assert "grad of" not in dot and "subgraph" not in dot and " on cpu" not in dot


@needs_dot
def test_dot_with_both_passes_ties_each_gradient_to_its_op():
    graph = profiled_training_step()
    dot = graph.to_dot(passes="both")
    svg = graphviz_svg(dot)
    needing = [seq for seq in graph if graph.node(seq).requires_grad]
    for seq in needing:  # one gradient node each, tied by a dashed edge to its op
        label = graph.nx.nodes[seq].get("name") or graph.node(seq).name
        assert f"  b{seq} [label=\"grad of {label}" in dot
        assert re.search(rf"  n{seq} -> b{seq} \[style=dashed", dot)
    assert dot.count("style=dashed") == len(needing)
    assert svg.count("grad of linear") == 2 and "grad of relu" in svg
    assert not any(f"b{seq} " in dot for seq in graph if not graph.node(seq).requires_grad)


def test_gradient_nodes_of_parameters_carry_the_parameters_names():
    """As the forward node and the viewer do: "grad of MLP.0.weight", not "grad of
    input" for every parameter alike."""
    graph, model = training_step_graph()
    dot = graph.to_dot(passes="both")
    for name, _ in model.named_parameters():
        assert f'[label="grad of MLP.{name}' in dot
    assert '[label="grad of input' not in dot  # the data needs no gradient node
    del model


@needs_dot
def test_dot_of_the_backward_pass_runs_from_the_loss_to_the_parameters():
    graph = profiled_training_step()
    dot = graph.to_dot(passes="backward")
    graphviz_svg(dot)
    assert not re.search(r"^  n\d+ ", dot, re.M)  # no forward node
    (mean,), (ce,), (relu,) = (nodes_named(graph, op) for op in ("mean", "cross_entropy",
                                                               "relu"))
    first, second = nodes_named(graph, "linear")
    assert f"  b{mean} -> b{ce};" in dot and f"  b{second} -> b{relu};" in dot
    weight = graph.node(first).inputs[1].seq
    assert f"  b{first} -> b{weight};" in dot  # the gradient reaches the weight
    data = graph.node(first).inputs[0].seq
    assert f"b{data}" not in dot  # the data needs no gradient


@needs_dot
def test_dot_labels_can_show_dtypes_and_devices():
    graph, _ = training_step_graph()
    with_devices = graph.to_dot(devices=True)
    assert "linear\\nfloat32[5, 8] on cpu" in with_devices
    assert "on cpu" in graphviz_svg(with_devices)
    without_dtypes = graph.to_dot(dtypes=False)
    assert "linear\\n[5, 8]" in without_dtypes and "float32" not in without_dtypes
    assert "linear\\nfloat32\"" in graph.to_dot(shapes=False, dtypes=True)


@needs_dot
def test_dot_clusters_name_the_module_scopes():
    graph, _ = training_step_graph()
    dot = graph.to_dot(scopes=True)
    svg = graphviz_svg(dot)
    for title in ("cluster_MLP", "cluster_MLP.0", "cluster_MLP.1", "cluster_MLP.2"):
        assert f"<title>{title}</title>" in svg
    assert 'label="MLP.0 (Linear)"' in dot and 'label="MLP.1 (ReLU)"' in dot
    # Each node sits in its module's cluster: the cluster's text, up to its closing
    # brace, holds the first linear, its weight and bias, and not the data.
    block = dot.split('subgraph "cluster_MLP.0" {')[1].split("}")[0]
    first = nodes_named(graph, "linear")[0]
    data, weight, bias = (i.seq for i in graph.node(first).inputs)
    for seq in (first, weight, bias):
        assert f"  n{seq} [" in block
    assert f"  n{data} [" not in block
    assert dot.index('subgraph "cluster_MLP" {') < dot.index('subgraph "cluster_MLP.0" {')
    (loss,) = nodes_named(graph, "mean")
    assert f"\n  n{loss} [" in dot.split("subgraph")[0]  # outside every module


@needs_dot
def test_dot_draws_a_composite_op_as_a_cluster_of_its_ops():
    @gg.composite_op("test_viz::softplus_squared", replace=True)
    def softplus_squared(x):
        y = (x.exp() + 1.0).log()
        return y * y

    x = gg.randn(3, requires_grad=True)
    graph = (softplus_squared(x) * 2.0).sum().graph
    assert "test_viz::softplus_squared" in graph.to_dot()  # one node, by default
    dot = graph.to_dot(composites=True)
    svg = graphviz_svg(dot)
    block = dot.split('subgraph "cluster_composite_')[1].split("}")[0]
    assert 'label="test_viz::softplus_squared"' in block
    for op in ("exp", "add", "log", "mul"):
        assert f'label="{op}\\n' in block
    assert svg.count("<g id=\"clust") == 1


@needs_dot
def test_dot_labels_carry_recorded_statistics_and_colour_nan_red():
    gg.manual_seed(0)
    x = gg.tensor([1.0, 0.0, 4.0], requires_grad=True)
    with gg.profile(stats=True), np.errstate(divide="ignore", invalid="ignore"):
        y = x.log()  # log(0) = -inf
        z = (y * 0.0).sum()  # -inf * 0 = NaN
        z.backward()
    graph = z.graph
    dot = graph.to_dot(stats=True)
    graphviz_svg(dot)
    log_line = next(line for line in dot.splitlines() if 'label="log' in line)
    assert "min 0 max 1.39 mean 0.693 norm 1.39 | 1 Inf" in log_line
    assert 'fillcolor="#fecaca"' in log_line  # red: it holds an Inf
    sum_line = next(line for line in dot.splitlines() if 'label="sum' in line)
    assert "no finite values | 1 NaN" in sum_line
    assert "min" not in graph.to_dot()  # only on request


class Net(nn.Module):
    """An encoder (an MLP of one layer), tanh, and a linear head."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.MLP([4, 8])
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.encoder(x).tanh())


def test_nodes_record_the_module_scope_they_were_made_in():
    x = gg.randn(3, 4)
    graph = gg.trace(Net(), x)
    (tanh,) = nodes_named(graph, "tanh")
    assert graph.nx.nodes[tanh]["scope"] == ("Net",)  # Net.forward's own op
    linears = nodes_named(graph, "linear")
    assert [graph.nx.nodes[s]["scope"] for s in linears] == [
        ("Net", "Net.encoder", "Net.encoder.0"), ("Net", "Net.head")]
    assert graph.nx.nodes[graph.inputs[0]]["scope"] == ()  # the argument: no module
    weight = graph.node(linears[1]).inputs[1].seq
    assert graph.nx.nodes[weight]["scope"] == ("Net", "Net.head")  # where it is read
    assert graph.nx.graph["scopes"] == {"Net": "Net", "Net.encoder": "MLP",
                                        "Net.encoder.0": "Linear", "Net.head": "Linear"}
    # Recording costs nothing per op: a module call marks only the node of its output
    # (with the range of node numbers made inside it).
    marked = {s for s in graph if graph.node(s).marks is not None}
    assert marked == set(linears)


def test_parameters_are_named_as_their_module_names_them():
    graph = gg.trace(Net(), gg.randn(3, 4))
    names = {data["name"] for _, data in graph.nx.nodes(data=True) if data["name"]}
    assert names == {"Net.encoder.0.weight", "Net.encoder.0.bias", "Net.head.weight",
                     "Net.head.bias", "x"}  # the data: as Net.forward(self, x) calls it
    assert graph.nx.nodes[graph.inputs[0]]["name"] == "x"
    assert 'label="Net.head.weight\\nfloat32[2, 8]"' in graph.to_dot()


def test_a_module_gone_before_its_graph_is_drawn_is_named_by_its_class():
    y = nn.Linear(4, 2)(gg.randn(3, 4, requires_grad=True))  # the layer is freed at once
    graph = y.graph
    assert graph.nx.nodes[y.node.seq]["scope"] == ("Linear",)


def test_json_carries_scopes_and_recorded_statistics():
    graph = profiled_training_step()
    data = json.loads(graph.to_json())
    assert data["graph"]["scopes"]["MLP.0"] == "Linear"
    linear = next(n for n in data["nodes"] if n["op"] == "linear")
    assert linear["scope"] == ["MLP", "MLP.0"]
    node = graph.node(linear["id"])
    assert linear["stats"] == node.meta["stats"]
    assert linear["grad_stats"] == node.meta["grad_stats"]
    assert linear["saved_bytes"] == 5 * 4 * 4  # the data, for the weight's gradient


def test_summary_shows_statistics_and_memory_on_request(capsys):
    graph = profiled_training_step()
    result = graph.summary(stats=True, memory=True)
    printed = capsys.readouterr().out
    header = printed.splitlines()[0]
    assert "grad norm" in header and "saved" in header and "NaN" in header
    row = next(r for r in result["rows"] if r["op"] == "relu")
    node = graph.node(row["id"])
    assert row["stats"] == node.meta["stats"] and row["scope"] == "MLP.1"
    assert row["saved_bytes"] == 5 * 8 * 4  # relu keeps its output
    assert result["totals"]["nonfinite"] == [] and "0 node(s) with NaN/Inf" in printed
    graph.summary()
    assert "grad norm" not in capsys.readouterr().out  # the default table is as it was


# --- graphs Graphviz draws in seconds -------------------------------------------------------
def edge_lines(dot):
    return [line for line in dot.splitlines() if " -> " in line]


def test_a_constant_is_drawn_beside_each_op_that_reads_it():
    """`y * 1.0001` five times reads one cached constant node five times; drawn once, it
    would send an edge from the top of the graph to every step (Graphviz then took
    minutes on a hundred steps). Each step gets its own small copy, value shown."""
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = x
    for _ in range(5):
        y = y * 1.0001
    graph = y.graph
    (constant,) = [s for s in graph if graph.node(s).op.name == "constant"]
    dot = graph.to_dot()
    copies = re.findall(rf"^  (k{constant}_\d+) \[label=\"1.0001\"", dot, re.M)
    assert len(copies) == 5 == len(set(copies))
    # One edge each, into its own step; light, so that the flow of values runs straight
    # and the copies stand aside.
    for copy, mul in zip(copies, nodes_named(graph, "mul"), strict=True):
        assert [line.strip() for line in edge_lines(dot) if line.startswith(f"  {copy} ")] \
            == [f"{copy} -> n{mul} [weight=1];"]
    assert f"n{constant} " not in dot and "constant\\nfloat32[]" not in dot
    assert len(edge_lines(dot)) == graph.nx.number_of_edges()
    graphviz_svg(dot)


def test_a_constant_inside_a_composite_op_is_drawn_inside_its_cluster():
    @gg.composite_op("test_viz::tripled_exp", replace=True)
    def tripled_exp(x):
        return x.exp() * 3.0

    x = gg.randn(3, requires_grad=True)
    graph = (tripled_exp(x) + 3.0).sum().graph
    dot = graph.to_dot(composites=True)
    graphviz_svg(dot)
    assert dot.count('[label="3.0"') == 2  # one beside the inner mul, one beside the add
    (composite,) = [s for s in graph.op_nodes() if "tripled_exp" in graph.node(s).name]
    block = dot.split(f'subgraph "cluster_composite_{composite}" {{')[1].split("}")[0]
    copy = re.search(rf"^\s+(c{composite}_k\d+_\d+) \[label=\"3.0\"", block, re.M).group(1)
    assert re.search(rf"^  {copy} -> c{composite}_\d+ \[weight=1\];", dot, re.M)


def test_argument_positions_are_marked_only_where_the_order_matters():
    """a - b needs them (which is subtracted?), a + b does not; x * x says that one
    value fills both arguments. They sit at the arrowhead (headlabel), which takes no
    part in Graphviz's layout, where an edge label is one more node to place."""
    graph = gg.trace(lambda a, b: (a - b) * (a + b) * (b * b), gg.ones(2), gg.ones(2))
    a, b = graph.inputs
    dot = graph.to_dot()
    assert all("label=" not in line.replace("headlabel=", "") for line in edge_lines(dot))
    (sub,), (add,) = nodes_named(graph, "sub"), nodes_named(graph, "add")
    assert re.search(rf"  n{a} -> n{sub} \[headlabel=\"0\"", dot)
    assert re.search(rf"  n{b} -> n{sub} \[headlabel=\"1\"", dot)
    assert f"  n{a} -> n{add};" in dot and f"  n{b} -> n{add};" in dot
    square = next(m for m in nodes_named(graph, "mul") if graph.node(m).inputs[0].seq == b)
    assert re.search(rf"  n{b} -> n{square} \[headlabel=\"0,1\"", dot)
    assert "nslimit" not in dot  # a small graph keeps Graphviz's full layout effort
    graphviz_svg(dot)


@needs_dot
def test_a_weight_shared_by_sixty_steps_renders(tmp_path):
    """An RNN's weight read at every step: 60 edges from one node down the whole
    graph. Graphviz took about four minutes on this (edge labels and unbounded layout
    passes); now a fraction of a second."""
    weight = gg.randn(4, 4, requires_grad=True)
    h = gg.randn(1, 4)
    for _ in range(60):
        h = (h @ weight).tanh()
    graph = h.sum().graph
    assert "nslimit=1" in graph.to_dot()  # a large graph: Graphviz's passes are capped
    path = graph.render(tmp_path / "rnn.svg")
    svg = open(path).read()
    assert svg.count('class="node"') == len(graph) and svg.count(">matmul</text>") == 60


# --- what render says when it cannot draw ---------------------------------------------------
@needs_dot
def test_graphviz_killed_by_a_signal_is_a_render_error_naming_it(tmp_path):
    """Killed (the out-of-memory killer's SIGKILL, say), Graphviz writes no message: the
    error names the signal. A file size limit makes a real one: Graphviz writing past it
    gets SIGXFSZ."""
    code = ("import resource\nimport gpugrad as gg\n"
            "g = gg.trace(lambda a: a.tanh().exp().sum(), gg.ones(2))\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))\n"
            "try:\n    g.render('g.svg')\nexcept gg.viz.RenderError as e:\n    print(e)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.stdout.startswith("Graphviz was killed by signal SIGXFSZ"), result.stderr
    assert "g.to_html(path)" in result.stdout  # what to do instead


@needs_dot
def test_a_render_past_its_timeout_is_a_render_error(tmp_path):
    graph, _ = training_step_graph()
    with pytest.raises(gg.viz.RenderError, match=r"did not finish drawing this graph "
                       r"\(11 nodes\) in 0.001 s"):
        graph.render(tmp_path / "step.svg", timeout=0.001)


@needs_dot
def test_a_drawing_that_fails_midway_leaves_the_file_drawn_before(tmp_path):
    """Graphviz killed while it writes (here by a file size limit, SIGXFSZ, after its
    first 2,000 bytes) would leave a truncated file over the one drawn before."""
    code = ("import os, resource\nimport gpugrad as gg\n"
            "gg.trace(lambda a: a * 2.0, gg.ones(2)).render('g.svg')\n"
            "before = open('g.svg').read()\n"
            "big = gg.trace(lambda a: a.tanh().exp().sqrt().relu().sum(), gg.ones(2))\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))\n"
            "try:\n    big.render('g.svg')\nexcept gg.viz.RenderError as e:\n"
            "    print('failed:', e)\n"
            "print(open('g.svg').read() == before, sorted(os.listdir('.')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert "failed: Graphviz was killed by signal SIGXFSZ" in result.stdout, result.stderr
    assert result.stdout.rstrip().endswith("True ['g.svg']"), result.stdout


@pytest.mark.parametrize("export", ["to_html", "to_json", "to_graphml"])
def test_an_export_that_cannot_be_written_whole_leaves_the_one_written_before(tmp_path, export):
    """A write cut short (here by a file size limit: EFBIG, as a full disk's ENOSPC)
    would leave a truncated page over the previous one."""
    code = ("import os, resource, signal\nimport gpugrad as gg\n"
            f"gg.trace(lambda a: a * 2.0, gg.ones(2)).{export}('g.out')\n"
            "before = open('g.out').read()\n"
            "def chain(a):\n    for _ in range(300):\n        a = a.tanh()\n    return a\n"
            "big = gg.trace(chain, gg.ones(2))\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 1000,) * 2)\n"
            f"try:\n    big.{export}('g.out')\nexcept OSError as e:\n"
            "    print('failed:', e.strerror)\n"
            "print(open('g.out').read() == before, sorted(os.listdir('.')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.stdout == "failed: File too large\nTrue ['g.out']\n", result.stderr


def test_a_dot_file_is_kept_when_the_options_are_wrong(tmp_path):
    graph, _ = training_step_graph()
    path = graph.render(tmp_path / "step.dot")
    with pytest.raises(ValueError, match="passes must be one of"):
        graph.render(path, passes="sideways")
    assert open(path).read() == graph.to_dot()
    assert os.listdir(tmp_path) == ["step.dot"]


def test_render_into_a_missing_folder_names_the_folder(tmp_path):
    graph, _ = training_step_graph()
    with pytest.raises(FileNotFoundError, match="no folder .*missing.* to render into"):
        graph.render(tmp_path / "missing" / "dir" / "g.svg")


# --- labels say what a user wrote -------------------------------------------------------------
@gg.custom_op("test_viz::tag", replace=True)
def tag(x, *, note="plain"):
    return x * 1


@needs_dot
@pytest.mark.parametrize("note", ["C:\\temp\\new", "ends with a backslash\\",
                                  'has "quotes"', "\\l is not a line break"])
def test_dot_labels_show_backslashes_and_quotes_as_written(note):
    graph = gg.trace(lambda x: tag(x, note=note), gg.ones(2))
    svg = graphviz_svg(graph.to_dot())
    lines = re.findall(r"<text [^>]*>([^<]*)</text>", svg)
    shown = note.replace('"', "&quot;")
    assert f"note={shown}" in lines  # the whole note, on a line of its own
    assert "float32[2]" in lines  # the next line is still there


def test_a_traces_arguments_and_constants_are_labelled_as_str_shows_them():
    """The lecture's f = (x + y) z, traced: x, y, z (the function's parameters) as in
    str(g), not three nodes alike called "input"; a constant by its value."""
    graph = gg.trace(lambda x, y, z: (x + y) * z * 2.0, gg.tensor(-2.0), gg.tensor(5.0),
                     gg.tensor(-4.0))
    assert "= arg2 z" in str(graph) and "constant 2.0" in str(graph)
    dot = graph.to_dot()
    for name, seq in zip("xyz", graph.inputs, strict=True):
        assert f'  n{seq} [label="{name}\\nfloat32[]"' in dot
    assert 'label="input' not in dot and re.search(r'  k\d+_\d+ \[label="2.0"', dot)
    titles = [n["title"] for n in gg.viz.html.page_data(graph)["nodes"]]
    # The viewer draws the constant once, and says what it is.
    assert {"x", "y", "z", "constant 2.0"} <= set(titles)


def test_an_argument_without_a_parameter_name_is_called_by_its_position():
    """max has no signature Python can read: its arguments are arg0 and arg1, as before
    names were read. Arguments a *args parameter takes are named after it."""
    graph = gg.trace(max, gg.tensor(1.0), gg.tensor(2.0))
    assert [graph.nx.nodes[seq]["name"] for seq in graph.inputs] == [None, None]
    assert "= arg0\n" in str(graph) and 'label="arg1\\nfloat32[]"' in graph.to_dot()
    graph = gg.trace(lambda first, *rest: first * rest[0] * rest[1], *gg.ones(3, 2))
    assert [graph.nx.nodes[seq]["name"] for seq in graph.inputs] == [
        "first", "rest[0]", "rest[1]"]


def test_a_tensor_passed_as_two_arguments_is_called_as_the_first():
    """f(x, x): one leaf, at position 0, so named by f's first parameter, as "arg0" says
    (the second name over it read "arg0 b")."""
    data = gg.ones(2)
    graph = gg.trace(lambda a, b: a * b, data, data)
    assert graph.inputs == [data.node.seq] * 2
    assert graph.nx.nodes[data.node.seq]["name"] == "a"
    assert "= arg0 a\n" in str(graph) and 'label="a\\nfloat32[2]"' in graph.to_dot()


def test_a_compiled_function_shows_the_signature_and_names_of_the_one_it_compiles():
    """gg.compile(f) keeps f's signature (help(), editors) as functools.wraps does, and
    tracing it names its arguments as tracing f does; a compiled module, its forward's."""
    def step(x, labels):
        return x * labels

    compiled = gg.compile(step)
    assert inspect.signature(compiled) == inspect.signature(step)
    graph = gg.trace(compiled, gg.ones(2), gg.ones(2))
    assert [graph.nx.nodes[seq]["name"] for seq in graph.inputs] == ["x", "labels"]
    graph = gg.trace(gg.compile(nn.Linear(2, 2)), gg.ones(2))
    assert [graph.nx.nodes[seq]["name"] for seq in graph.inputs] == ["x"]


def test_gradients_of_a_traces_arguments_are_named_after_them():
    graph = gg.trace(lambda x, y: x * y, gg.ones(2, requires_grad=True),
                     gg.ones(2, requires_grad=True))
    dot = graph.to_dot(passes="both")
    assert '[label="grad of x' in dot and '[label="grad of y' in dot


# --- a module called twice ----------------------------------------------------------------
class Shared(nn.Module):
    """One layer called twice, with another between: two calls, two scopes."""

    def __init__(self):
        super().__init__()
        self.shared = nn.Linear(4, 4)
        self.other = nn.Linear(4, 4)

    def forward(self, x):
        return self.shared(self.other(self.shared(x)).relu()).sum()


def test_each_call_of_a_module_is_a_scope_of_its_own():
    model = Shared()
    graph = model(gg.randn(2, 4)).graph
    first, other, second = nodes_named(graph, "linear")
    scope = graph.nx.nodes
    assert scope[first]["scope"] == ("Shared", "Shared.shared")
    assert scope[other]["scope"] == ("Shared", "Shared.other")
    assert scope[second]["scope"] == ("Shared", "Shared.shared#2")
    (relu,) = nodes_named(graph, "relu")
    assert scope[relu]["scope"] == ("Shared",)  # between the calls: in neither
    weight = graph.node(first).inputs[1].seq  # read by both calls: in the module around
    assert scope[weight]["scope"] == ("Shared",) and scope[weight]["name"] == \
        "Shared.shared.weight"
    assert graph.nx.graph["scopes"]["Shared.shared#2"] == "Linear"


@needs_dot
def test_dot_draws_a_cluster_per_call_of_a_module():
    model = Shared()
    graph = model(gg.randn(2, 4)).graph
    dot = graph.to_dot(scopes=True)
    svg = graphviz_svg(dot)
    assert "<title>cluster_Shared.shared</title>" in svg
    assert "<title>cluster_Shared.shared#2</title>" in svg
    assert 'label="Shared.shared#2 (Linear)"' in dot
    first, other, second = nodes_named(graph, "linear")
    block = dot.split('subgraph "cluster_Shared.shared" {')[1].split("}")[0]
    assert f"  n{first} [" in block
    assert f"  n{other} [" not in block and f"  n{second} [" not in block


# --- what leaves are called ------------------------------------------------------------------
def named_step_graph():
    """An MLP's forward pass and loss, traced from a function of (x, labels)."""
    gg.manual_seed(0)
    model = nn.MLP([4, 8, 3])

    def step(x, labels):
        return F.cross_entropy(model(x), labels)

    return gg.trace(step, gg.randn(5, 4), gg.tensor([0, 1, 2, 0, 1]))


def test_an_mlp_steps_leaves_are_drawn_by_name():
    """The batch and the labels by the step function's parameter names, each weight and
    bias by its name in the model: no two leaves are left both called "input"."""
    graph = named_step_graph()
    dot = graph.to_dot()
    for label in ("x\\nfloat32[5, 4]", "labels\\nint64[5]", "MLP.0.weight\\nfloat32[8, 4]",
                  "MLP.0.bias\\nfloat32[8]", "MLP.2.weight\\nfloat32[3, 8]",
                  "MLP.2.bias\\nfloat32[3]"):
        assert f'[label="{label}"' in dot, label
    assert 'label="input' not in dot
    text = str(graph)
    assert "float32[5, 4] = arg0 x\n" in text and "int64[5] = arg1 labels\n" in text
    assert "float32[8, 4] = input MLP.0.weight (requires grad)\n" in text


def test_the_summary_lists_the_leaves_by_name(capsys):
    graph = named_step_graph()
    result = graph.summary()
    leaves = {r["title"]: r for r in result["leaves"]}
    assert set(leaves) == {"x", "labels", "MLP.0.weight", "MLP.0.bias", "MLP.2.weight",
                           "MLP.2.bias"}
    assert leaves["labels"]["role"] == "argument 1" and leaves["labels"]["dtype"] == "int64"
    assert leaves["MLP.0.weight"]["role"] == "requires grad"
    assert leaves["MLP.0.weight"]["bytes"] == 8 * 4 * 4
    assert [r["op"] for r in result["rows"]] == ["linear", "relu", "linear",
                                                 "cross_entropy", "mean"]  # ops, as before
    lines = capsys.readouterr().out.splitlines()
    assert re.search(r"^ *\d+  labels +\(5,\) +int64 +40  argument 1$", "\n".join(lines),
                     re.MULTILINE)
    assert re.search(r"^ *\d+  MLP\.2\.bias +\(3,\) +float32 +12  requires grad$",
                     "\n".join(lines), re.MULTILINE)


def test_a_leaf_nothing_names_keeps_its_label():
    """Data made outside any traced function and a tensor trained without a module: the
    graph cannot know their names, and draws them as it did — "input", shape, dtype."""
    w = gg.ones(4, 3, requires_grad=True)
    graph = (gg.randn(5, 4) @ w).sum().graph
    data, weight = graph.node(graph.op_nodes()[0]).inputs  # of the product
    assert graph.nx.nodes[data.seq]["name"] is graph.nx.nodes[weight.seq]["name"] is None
    dot = graph.to_dot()
    assert f'  n{data.seq} [label="input\\nfloat32[5, 4]"' in dot
    assert f'  n{weight.seq} [label="input\\nfloat32[4, 3]"' in dot
    assert f"%{weight.seq}: float32[4, 3] = input (requires grad)\n" in str(graph)
    assert [r["title"] for r in graph.summary(print_table=False)["leaves"]] == ["input",
                                                                               "input"]


def test_names_belong_to_a_graph_and_leak_into_no_other():
    """The same tensor traced as `x`, then as `batch`, then read eagerly; a layer's
    weight named where the layer is called, unnamed where only its tensor is read."""
    layer = nn.Linear(4, 2)
    data = gg.randn(3, 4)
    as_x = gg.trace(lambda x: layer(x).sum(), data)
    as_batch = gg.trace(lambda batch: layer(batch).sum(), data)
    eager = (data @ layer.weight.T).sum().graph  # the layer's weight, but no call of it

    def name_of(graph, tensor):
        return graph.nx.nodes[tensor.node.seq]["name"]

    assert name_of(as_x, data) == "x" and name_of(as_batch, data) == "batch"
    assert name_of(as_x, layer.weight) == name_of(as_batch, layer.weight) == "Linear.weight"
    assert name_of(eager, layer.weight) is None and name_of(eager, data) is None
    assert "= arg0 x\n" in str(as_x) and "batch" not in str(as_x)
    assert 'label="x' not in eager.to_dot() and 'label="Linear.weight' not in eager.to_dot()


def test_a_subgraph_keeps_the_names_of_its_arguments():
    graph = named_step_graph()
    part = graph.subgraph(graph.outputs, graph.inputs)
    assert [part.nx.nodes[s]["name"] for s in part.inputs] == ["x", "labels"]


def test_gpugrad_viz_names_the_batch_and_the_labels(tmp_path):
    result = run_cli("viz", "--mlp", "6", "5", "3", "--batch", "4", "--out",
                     str(tmp_path / "step.dot"))
    assert result.returncode == 0, result.stderr
    dot = (tmp_path / "step.dot").read_text()
    for label in ("x\\nfloat32[4, 6]", "labels\\nint64[4]", "MLP.0.weight\\nfloat32[5, 6]"):
        assert f'[label="{label}"' in dot, label


def test_a_modules_buffers_are_named_and_drawn_in_it():
    """In eval mode BatchNorm1d reads its running statistics: leaves that need no
    gradient, named as the module's state_dict names them, inside its cluster."""
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    model.eval()
    graph = gg.trace(model, gg.randn(5, 3))
    named = {data["name"]: data for _, data in graph.nx.nodes(data=True) if data["name"]}
    for buffer in ("running_mean", "running_var"):
        data = named[f"Sequential.1.{buffer}"]
        assert not data["requires_grad"] and data["scope"] == ("Sequential", "Sequential.1")
        assert f"= input Sequential.1.{buffer}\n" in str(graph)
    block = graph.to_dot(scopes=True).split('subgraph "cluster_Sequential.1" {')[1]
    assert 'label="Sequential.1.running_var\\nfloat32[4]"' in block.split("}")[0]
