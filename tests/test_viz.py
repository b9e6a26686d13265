"""Looking at graphs: Graphviz rendering, node-link JSON, GraphML, summaries."""

import json
import os
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
    data = json.loads(graph.to_json(tmp_path / "g.json"))
    assert len(data["nodes"]) == len(graph) and len(data["edges"]) == graph.nx.number_of_edges()
    assert {n["op"] for n in data["nodes"]} >= {"linear", "relu", "cross_entropy", "mean"}
    assert json.loads((tmp_path / "g.json").read_text()) == data


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


def test_gpugrad_viz_errors_are_one_line(tmp_path):
    result = run_cli("viz", "--function", "nowhere_module:f", "--out",
                     str(tmp_path / "x.svg"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "nowhere_module" in result.stderr


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
