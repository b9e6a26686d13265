"""Looking at graphs: Graphviz rendering, node-link JSON, GraphML, summaries."""

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
    with pytest.raises(ValueError, match=".svg, .png, .pdf"):
        graph.render(tmp_path / "step.gif")


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
    # After the printed table, an interactive session echoes one line, not every row.
    assert repr(result) == "<graph summary: 5 ops, 67 parameters; keys 'totals', 'rows'>"


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
                     "Net.head.bias"}
    assert graph.nx.nodes[graph.inputs[0]]["name"] is None  # the data has no name
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
