"""The HTML viewer in a real browser: headless Chromium (Debian's), driven by Playwright,
opening the file from disk with nothing fetched from any network."""

import os
import re
import shutil
import time

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with playwright.sync_playwright() as p:
        profile = tmp_path_factory.mktemp("chromium-profile")
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield context
        context.close()


def open_page(browser, path):
    page = browser.new_page()
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"file://{path}")
    return page, requests


def training_graph():
    gg.manual_seed(0)
    model = nn.MLP([4, 8, 3])
    loss = F.cross_entropy(model(gg.randn(5, 4)), gg.tensor([0, 1, 2, 0, 1]))
    return loss.graph


def test_the_viewer_shows_nodes_details_and_search(browser, tmp_path):
    graph = training_graph()
    path = tmp_path / "step.html"
    graph.to_html(path)
    page, requests = open_page(browser, path)
    assert page.locator("g.node").count() == len(graph)
    page.locator("g.node.op").first.click()
    details = page.inner_text("#details")
    assert "linear" in details and "(5, 8)" in details and "test_viewer.py:" in details
    page.fill("#search", "linear")
    assert page.inner_text("#count") == "2 match(es)"
    assert page.locator("g.node.match").count() == 2
    page.screenshot(path=str(tmp_path / "shot.png"))
    assert (tmp_path / "shot.png").read_bytes()[:4] == b"\x89PNG"
    assert all(url.startswith("file://") for url in requests)  # nothing from a network


def test_a_profiled_graph_shows_measured_times(browser, tmp_path):
    with gg.profile():
        graph = training_graph()
    path = tmp_path / "profiled.html"
    graph.to_html(path)
    page, _ = open_page(browser, path)
    page.locator("g.node.op").first.click()
    assert "forward ms" in page.inner_text("#details")


def test_a_10000_node_graph_opens_in_reasonable_time(browser, tmp_path):
    def chain(x):
        for _ in range(10_000):
            x = x * 1.0
        return x

    graph = gg.trace(chain, gg.ones(2))
    path = tmp_path / "big.html"
    graph.to_html(path)
    start = time.perf_counter()
    page, _ = open_page(browser, path)
    page.wait_for_function(f"document.querySelectorAll('g.node').length >= {len(graph)}",
                           timeout=120_000)
    assert time.perf_counter() - start < 120
    assert os.path.getsize(path) < 20_000_000


def profiled_graph_with_a_nan_and_a_dead_branch():
    """An MLP step where log(0) plants an Inf (and its gradient one too), and a relu of
    negatives lets no gradient through: described by gg.profile(stats=True)."""
    gg.manual_seed(0)
    model = nn.MLP([4, 8, 3])
    scale = gg.tensor(0.0, requires_grad=True)
    with gg.profile(stats=True), np.errstate(divide="ignore", invalid="ignore"):
        logits = model(gg.randn(5, 4))
        dead = (logits - 100.0).relu().sum()
        loss = F.cross_entropy(logits, gg.tensor([0, 1, 2, 0, 1])) + dead + scale.log()
        loss.backward()
    return loss.graph


def node_element(page, seq):
    return page.locator(f'g[data-key="n{seq}"]')


def test_nan_and_inf_nodes_are_red_and_a_click_shows_their_statistics(browser, tmp_path):
    graph = profiled_graph_with_a_nan_and_a_dead_branch()
    path = tmp_path / "nan.html"
    graph.to_html(path)
    page, requests = open_page(browser, path)
    (log,) = [s for s in graph.op_nodes() if graph.node(s).name == "log"]
    assert "nonfinite" in node_element(page, log).get_attribute("class")
    assert page.locator("#legend").inner_text().count("NaN / Inf") == 1
    node_element(page, log).click()
    details = page.inner_text("#details")
    assert "the value holds NaN/Inf" in details
    assert re.search(r"Inf\s+1\s+0", details)  # the value: one Inf; the gradient: none
    linear = next(s for s in graph.op_nodes() if graph.node(s).name == "linear")
    node_element(page, linear).click()
    stats = graph.node(linear).meta["stats"]
    details = page.inner_text("#details")
    assert f"{stats['max']:.4g}" in details and "saved for backward" in details
    assert "forward ms" in details and "gradient" in details
    assert all(url.startswith("file://") for url in requests)


def test_zero_gradient_nodes_are_grey(browser, tmp_path):
    graph = profiled_graph_with_a_nan_and_a_dead_branch()
    path = tmp_path / "dead.html"
    graph.to_html(path)
    page, _ = open_page(browser, path)
    (sub,) = [s for s in graph.op_nodes() if graph.node(s).name == "sub"]
    assert "zerograd" in node_element(page, sub).get_attribute("class")
    node_element(page, sub).click()
    assert "zero gradient: nothing flows back" in page.inner_text("#details")


def test_the_backward_toggle_adds_a_gradient_beside_each_op(browser, tmp_path):
    graph = profiled_graph_with_a_nan_and_a_dead_branch()
    path = tmp_path / "both.html"
    graph.to_html(path)
    page, _ = open_page(browser, path)
    assert page.locator("g.backward").count() == 0
    page.check("#backward")
    needing = [s for s in graph if graph.node(s).requires_grad]
    assert page.locator("g.node.backward").count() == len(needing)
    assert page.locator("path.tie").count() == len(needing)
    assert page.locator("g.node").count() == len(graph) + len(needing)
    linear = next(s for s in graph.op_nodes() if graph.node(s).name == "linear")
    node_element(page, linear).click()  # its gradient node lights up with it
    partner = page.locator(f'g[data-key="bn{linear}"]')
    assert "partner" in partner.get_attribute("class")
    assert "grad of linear" in partner.text_content()
    partner.click()
    assert "gradient of" in page.inner_text("#details")
    (scale,) = [s for s in graph if graph.node(s).op.name == "input"
                and graph.node(s).shape == ()]
    assert "nonfinite" in page.locator(f'g[data-key="bn{scale}"]').get_attribute("class")
    page.uncheck("#backward")
    assert page.locator("g.backward").count() == 0


def test_a_module_scope_collapses_into_one_box_and_expands_again(browser, tmp_path):
    graph = training_graph()
    path = tmp_path / "scopes.html"
    graph.to_html(path)
    page, _ = open_page(browser, path)
    assert page.locator("g.frame").count() == 4  # MLP and its three layers
    page.locator('g.frame text', has_text="MLP.0 (Linear)").click()
    box = page.locator("g.scope")
    assert box.count() == 1 and "MLP.0 (Linear)" in box.text_content()
    assert "3 nodes" in box.text_content()  # linear, weight, bias
    assert page.locator("g.node").count() == len(graph) - 3
    box.click()
    assert page.locator("g.scope").count() == 0
    assert page.locator("g.node").count() == len(graph)
    weight = page.locator("g.node", has_text="MLP.0.weight")  # parameters by their names
    assert weight.count() == 1
    weight.click()
    assert "parameter\tMLP.0.weight" in page.inner_text("#details")


def test_a_10000_node_model_opens_collapsed_and_expands_on_demand(browser, tmp_path):
    class Block(nn.Module):
        def forward(self, x):
            for _ in range(49):
                x = (x * 1.0).tanh()
            return x

    graph = gg.trace(nn.Sequential(*[Block() for _ in range(100)]), gg.ones(2))
    assert len(graph) > 9_800
    path = tmp_path / "model.html"
    graph.to_html(path)
    page, _ = open_page(browser, path)
    # The time limit of the wait is the "reasonable time"; nothing here is a benchmark.
    page.wait_for_selector("g.scope", timeout=120_000)
    assert page.locator("g.scope").count() == 100  # one box per block
    shown = page.locator("g.node").count()
    assert shown < 10
    page.locator("g.scope").nth(50).dispatch_event("click")
    page.wait_for_function(f"document.querySelectorAll('g.node').length > {shown}")
    assert page.locator("g.node").count() == shown + 98
    assert page.locator("g.scope").count() == 99
    page.fill("#search", "Sequential.50")
    assert page.inner_text("#count") == "98 match(es)"
    page.screenshot(path=str(tmp_path / "model.png"))


def summed_one_by_one(values):
    """values[0] + values[1] + ..., one add per value (a loop summing per-sample terms)."""
    total = values[0]
    for v in values[1:]:
        total = total + v
    return total


def drawn(browser, graph, path, timeout):
    """The page of graph.to_html(path), once every node is drawn (within timeout ms)."""
    graph.to_html(path)
    page, _ = open_page(browser, path)
    page.wait_for_function(f"document.querySelectorAll('g.node').length >= {len(graph)}",
                           timeout=timeout)
    return page


def test_terms_made_first_and_summed_later_each_sit_above_their_sum(browser, tmp_path):
    """A list of terms summed one by one (per-sample losses, say): laid out by longest
    path alone, every term shared the second row, with an edge down across every row to
    its add (a column each to route past all the boxes there: 20 s for 800 terms, and a
    page that never opened for 1,700)."""
    graph = gg.trace(lambda w: summed_one_by_one([(w * float(i)).exp() for i in range(300)]),
                     gg.ones(4))
    page = drawn(browser, graph, tmp_path / "terms.html", timeout=120_000)
    spans = dict(page.evaluate("""current.edges.map(([a, b]) => [a, Math.round(
        (current.pos.get(b)[1] - current.pos.get(a)[1]) / current.y(1))])"""))
    terms = [f"n{seq}" for seq, data in graph.nx.nodes(data=True) if data["op"] == "exp"]
    assert len(terms) == 300
    assert {spans[t] for t in terms} == {1}  # each term just above the add reading it


def test_a_chain_whose_every_value_is_also_summed_at_its_end_opens(browser, tmp_path):
    """Each value's edge to its add at the end runs in a column of its own past the rest
    of the chain: 2,000 columns side by side, which took minutes to place (each checked
    against every other one in each of its rows)."""
    def dense(x):
        values = [x]
        for _ in range(2000):
            values.append((values[-1] * 0.9).tanh())
        return summed_one_by_one(values)

    graph = gg.trace(dense, gg.ones(4))
    # The time limit of the wait is the "reasonable time"; nothing here is a benchmark.
    page = drawn(browser, graph, tmp_path / "dense.html", timeout=60_000)
    assert page.locator("path.edge").count() == len(graph.nx.edges)


def test_graphs_shown_inline_in_a_notebook_keep_to_themselves(browser, tmp_path):
    """A notebook puts each output's HTML into its own page: two graphs there must each
    draw, and the viewer's page styles must not restyle the notebook."""
    import json

    first = training_graph()
    x = gg.randn(3, requires_grad=True)
    second = (x.exp() * 2).sum().graph
    outputs = json.dumps([first._repr_html_(), second._repr_html_()]).replace("</", "<\\/")
    notebook = tmp_path / "notebook.html"
    notebook.write_text(
        "<!DOCTYPE html><html><body><div id=o0></div><div id=o1></div><script>"
        f"{outputs}.forEach((h, i) => {{ const d = document.getElementById('o' + i);"
        " d.innerHTML = h; d.querySelectorAll('script').forEach(s => {"
        " const n = document.createElement('script'); n.textContent = s.textContent;"
        " s.replaceWith(n); }); });</script></body></html>")
    page, requests = open_page(browser, notebook)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.reload()
    page.wait_for_timeout(300)
    frames = [f for f in page.frames if f != page.main_frame]
    assert len(frames) == 2
    counts = sorted(f.locator("g.node").count() for f in frames)
    assert counts == sorted([len(second), len(first)])
    assert page.evaluate("getComputedStyle(document.body).display") == "block"
    assert not errors
    assert all(r.startswith(("file:", "about:")) for r in requests)


def test_search_finds_shapes_as_they_are_shown(browser, tmp_path):
    """Labels say float32[8, 32] and details (8, 32): a shape typed either way, with
    or without spaces, finds the nodes of that shape."""
    graph = gg.trace(lambda x, w, b: (x @ w + b).tanh(), gg.ones(8, 16), gg.ones(16, 32),
                     gg.ones(32))
    path = tmp_path / "shapes.html"
    graph.to_html(path)
    page, _ = open_page(browser, path)
    for query in ("8, 32", "8,32", "float32[8, 32]", "(8, 32)", "[8,32]", " ( 8 ,32 ) "):
        page.fill("#search", query)
        assert page.inner_text("#count") == "3 match(es)", query  # matmul, add, tanh
    for query in ("(32,)", "[32]", "float32[32]"):
        page.fill("#search", query)
        assert page.inner_text("#count") == "1 match(es)", query  # the bias
    page.fill("#search", "arg2")
    assert page.inner_text("#count") == "1 match(es)"


def test_a_traces_arguments_are_told_apart_and_a_1d_shape_is_a_tuple(browser, tmp_path):
    graph = gg.trace(lambda x, y, z: (x + y) * z, gg.tensor([-2.0]), gg.tensor([5.0]),
                     gg.tensor([-4.0]))
    path = tmp_path / "circuit.html"
    graph.to_html(path)
    page, _ = open_page(browser, path)
    titles = page.locator("g.node.input text.title").all_text_contents()
    assert sorted(titles) == ["x", "y", "z"]  # the function's names, as str(graph) has them
    page.locator("g.node.input", has=page.locator("text.title", has_text=re.compile("^y$"))
                 ).click()
    details = page.inner_text("#details")
    assert "name\ty" in details and "argument\t1" in details and "shape\t(1,)" in details


def test_gradients_and_tensors_requiring_grad_have_colours_apart(browser, tmp_path):
    import colorsys

    x = gg.randn(3, requires_grad=True)
    graph = (x.exp() * 2.0).sum().graph
    path = tmp_path / "colours.html"
    graph.to_html(path)
    page, _ = open_page(browser, path)
    page.check("#backward")

    def hue(selector):
        fill = page.eval_on_selector(selector, "e => getComputedStyle(e).fill")
        r, g, b = (int(v) / 255 for v in re.findall(r"\d+", fill)[:3])
        return colorsys.rgb_to_hsv(r, g, b)[0] * 360

    apart = abs(hue("g.node.input.grad rect") - hue("g.node.backward rect"))
    assert min(apart, 360 - apart) >= 45


class Shared(nn.Module):
    """One layer called twice, with another between."""

    def __init__(self):
        super().__init__()
        self.shared, self.other = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x):
        return self.shared(self.other(self.shared(x)).relu()).sum()


def test_each_call_of_a_module_has_a_frame_of_its_own(browser, tmp_path):
    model = Shared()
    graph = model(gg.randn(2, 4)).graph
    path = tmp_path / "twice.html"
    graph.to_html(path)
    page, _ = open_page(browser, path)
    titles = page.locator("g.frame text").all_text_contents()
    assert sorted(t.lstrip("\u25be ") for t in titles) == [
        "Shared", "Shared.other (Linear)", "Shared.shared (Linear)",
        "Shared.shared#2 (Linear)"]
    # Each call's frame holds its own linear: the second call's frame lies below the
    # other layer's, so no edge runs back up into a frame above.
    boxes = {t.lstrip("\u25be "): box for t, box in page.evaluate(
        """[...document.querySelectorAll("g.frame")].map(f => [f.textContent,
            [+f.querySelector("rect").getAttribute("y"),
             +f.querySelector("rect").getAttribute("height")]])""")}
    first, other, second = (boxes[f"Shared.{name} (Linear)"] for name in
                            ("shared", "other", "shared#2"))
    assert first[0] <= other[0] and other[0] + other[1] < second[0]


def mlp_training_step(sizes=(64, 32, 10), steps=2):
    """The graph of an MLP's training step, as a training loop records it: after the
    first step the parameters' leaves are older than anything the step makes."""
    gg.manual_seed(0)
    model = nn.MLP(list(sizes))
    optimizer = gg.optim.SGD(model.parameters(), lr=0.1)
    x, y = gg.randn(32, sizes[0]), gg.tensor([i % sizes[-1] for i in range(32)])
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    return loss.graph


def open_mlp_step(browser, tmp_path, steps=2):
    path = tmp_path / f"mlp{steps}.html"
    mlp_training_step(steps=steps).to_html(path)
    page, _ = open_page(browser, path)
    page.set_viewport_size({"width": 1400, "height": 900})
    page.reload()
    return page


def frame_boxes(page):
    """{frame title: (x, y, width, height)} of each module frame, in graph units."""
    return {title.lstrip("\u25be "): tuple(box) for title, box in page.evaluate(
        """[...document.querySelectorAll("g.frame")].map(f => {
             const r = f.querySelector("rect");
             return [f.querySelector("text").textContent,
                     ["x", "y", "width", "height"].map(k => +r.getAttribute(k))];
           })""")}


def titles_crossed_by_edges(page):
    """[(frame title, edge index)] for each edge that runs through a frame's title: the
    title's box (graph units) holds a point of the edge's path (sampled every 2 units)."""
    return page.evaluate("""(() => {
      const titles = [...document.querySelectorAll("g.frame text")].map(t => [
        t.textContent, t.getBBox()]);
      const crossed = [];
      [...document.querySelectorAll("path.edge")].forEach((path, i) => {
        const length = path.getTotalLength();
        for (let at = 0; at <= length; at += 2) {
          const p = path.getPointAtLength(at);
          titles.forEach(([title, b]) => {
            if (p.x > b.x && p.x < b.x + b.width && p.y > b.y && p.y < b.y + b.height &&
                !crossed.some(([t, j]) => t === title && j === i)) crossed.push([title, i]);
          });
        }
      });
      return crossed;
    })()""")


def nodes_outside_the_canvas(page):
    """The keys of the boxes drawn (nodes, gradients, collapsed modules) not wholly in
    the canvas as it shows now."""
    return page.evaluate("""(() => {
      const c = document.getElementById("canvas").getBoundingClientRect();
      return [...document.querySelectorAll("g[data-key]")].filter(g => {
        const b = g.getBoundingClientRect();
        return b.left < c.left || b.right > c.right || b.top < c.top || b.bottom > c.bottom;
      }).map(g => g.dataset.key);
    })()""")


@pytest.mark.parametrize("steps", [1, 2])
def test_module_frames_stack_in_the_order_data_flows_through_them(browser, tmp_path, steps):
    """MLP.0 (Linear) feeds MLP.1 (ReLU), which feeds MLP.2 (Linear): each frame lies
    wholly below the one it reads from, whether the parameters were made in this step
    (steps=1) or before it (a later step of a training loop, steps=2)."""
    page = open_mlp_step(browser, tmp_path, steps)
    boxes = frame_boxes(page)
    layers = [boxes[name] for name in ("MLP.0 (Linear)", "MLP.1 (ReLU)", "MLP.2 (Linear)")]
    for (_, above_y, _, above_height), (_, below_y, _, _) in zip(layers, layers[1:], strict=False):
        assert above_y + above_height < below_y
    mlp = boxes["MLP"]
    assert all(mlp[1] < y and y + h < mlp[1] + mlp[3] for _, y, _, h in layers)


def test_edges_keep_clear_of_module_frame_titles(browser, tmp_path):
    """An edge into a module's frame runs beside its title, never through it: with the
    forward pass alone, with the backward pass, and with a module collapsed."""
    page = open_mlp_step(browser, tmp_path)
    assert page.locator("g.frame").count() == 4
    assert titles_crossed_by_edges(page) == []
    page.check("#backward")
    assert titles_crossed_by_edges(page) == []
    page.locator("g.frame text", has_text="MLP.1 (ReLU)").click()
    assert page.locator("g.frame").count() == 3
    assert titles_crossed_by_edges(page) == []


def test_the_whole_graph_stays_in_view_as_what_is_shown_changes(browser, tmp_path):
    """The backward pass doubles the graph's width: the view shrinks to fit it (and
    grows back without it); collapsing or expanding a module fits the view again, and
    the fit button brings back a graph panned out of sight."""
    page = open_mlp_step(browser, tmp_path)
    assert nodes_outside_the_canvas(page) == []
    page.check("#backward")
    assert page.locator("g.node.backward").count() > 0
    assert nodes_outside_the_canvas(page) == []
    page.uncheck("#backward")
    assert nodes_outside_the_canvas(page) == []
    page.check("#backward")
    page.locator("g.frame text", has_text="MLP.0 (Linear)").click()
    assert page.locator("g.scope").count() == 2  # the module and its gradient
    assert nodes_outside_the_canvas(page) == []
    page.locator("g.scope").first.click()
    assert page.locator("g.scope").count() == 0
    assert nodes_outside_the_canvas(page) == []
    canvas = page.locator("#canvas").bounding_box()
    page.mouse.move(canvas["x"] + 10, canvas["y"] + 10)
    page.mouse.down()
    page.mouse.move(canvas["x"] + 900, canvas["y"] + 800, steps=5)
    page.mouse.up()
    assert nodes_outside_the_canvas(page) != []
    page.click("#fit")
    assert nodes_outside_the_canvas(page) == []


def test_leaves_show_their_names_and_long_ones_fit_their_boxes(browser, tmp_path):
    """The batch, the labels and every parameter by name; a long name loses its middle
    to fit its box, keeping the start and the end that tell two apart; the details and
    the search have the whole name. A leaf nothing names is still "input"."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.feature_extractor_backbone = nn.MLP([4, 8])
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            return self.head(self.feature_extractor_backbone(x).relu())

    gg.manual_seed(0)
    model = Net()

    def step(images, labels):
        return F.cross_entropy(model(images), labels)

    graph = gg.trace(step, gg.randn(5, 4), gg.tensor([0, 1, 2, 0, 1]))
    path = tmp_path / "named.html"
    graph.to_html(path)
    page, _ = open_page(browser, path)
    page.check("#backward")  # "grad of <name>" boxes too
    titles = page.locator("g.node.input text.title").all_text_contents()
    assert {"images", "labels", "Net.head.weight", "Net.head.bias"} <= set(titles)
    boxes = page.eval_on_selector_all("g.node", """gs => gs.map(g => {
        const t = g.querySelector("text.title");
        return [t.textContent, t.getComputedTextLength() + (+t.getAttribute("x")),
                +g.querySelector("rect").getAttribute("width")];
    })""")
    assert all(right <= width for _, right, width in boxes), boxes
    for whole in ("Net.feature_extractor_backbone.0.weight",
                  "Net.feature_extractor_backbone.0.bias"):
        end = whole.rsplit(".", 1)[1]
        shown = [text.removeprefix("grad of ") for text, _, _ in boxes
                 if text.endswith(f"0.{end}")]
        assert len(shown) == 2, boxes  # the parameter and its gradient
        for text in shown:  # "Net.feat\u2026ne.0.weight": its start and its end
            start, _, tail = text.partition("\u2026")
            assert whole.startswith(start) and whole.endswith(tail) and len(tail) > 6
    page.locator("g.node.input.grad", has_text="0.weight").click()
    assert "parameter\tNet.feature_extractor_backbone.0.weight" in page.inner_text("#details")
    page.locator("g.node.input", has_text="labels").click()
    assert "name\tlabels" in page.inner_text("#details")
    for query, hits in (("labels", 1), ("arg1", 1), ("backbone.0.weight", 1)):
        page.fill("#search", query)
        assert page.inner_text("#count") == f"{hits} match(es)", query
    eager = tmp_path / "eager.html"
    training_graph().to_html(eager)  # its data and labels were never named
    page, _ = open_page(browser, eager)
    titles = page.locator("g.node.input text.title").all_text_contents()
    assert sorted(titles)[-2:] == ["input", "input"]


def edges_through_boxes(page):
    """["<edge> through <box>"] for each edge path that runs through a box it does not
    join: a point of the path (sampled every 2 graph units) inside the box, 1 unit clear
    of its border. An edge's ends are the boxes its first and last points touch."""
    return page.evaluate("""(() => {
      const boxes = [...document.querySelectorAll("g[data-key]")].map(g => {
        const [x, y] = g.getAttribute("transform").match(/-?[\\d.]+/g).map(Number);
        const r = g.querySelector("rect");
        return [g.dataset.key, x, y, +r.getAttribute("width"), +r.getAttribute("height")];
      });
      const touches = (p, [, x, y, w, h]) =>
        p.x >= x - 1 && p.x <= x + w + 1 && p.y >= y - 1 && p.y <= y + h + 1;
      const inside = (p, [, x, y, w, h]) =>
        p.x > x + 1 && p.x < x + w - 1 && p.y > y + 1 && p.y < y + h - 1;
      const crossed = new Set();
      [...document.querySelectorAll("path.edge")].forEach(path => {
        const length = path.getTotalLength();
        const a = path.getPointAtLength(0), z = path.getPointAtLength(length);
        const ends = boxes.filter(b => touches(a, b) || touches(z, b)).map(b => b[0]);
        for (let at = 0; at <= length; at += 2) {
          const p = path.getPointAtLength(at);
          boxes.forEach(b => {
            if (!ends.includes(b[0]) && inside(p, b)) {
              crossed.add(ends.join(">") + " through " + b[0]);
            }
          });
        }
      });
      return [...crossed];
    })()""")


class TiedAutoencoder(nn.Module):
    """Six layers, the last reading the first's weight again (transposed): a tied weight,
    its edge spanning every layer between."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(5)])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x).relu()
        return F.linear(x, self.layers[0].weight.T).sum()


@pytest.mark.parametrize("model, width", [(TiedAutoencoder, 8), (Shared, 4)])
def test_edges_of_a_tied_weight_run_around_the_boxes_between(browser, tmp_path, model, width):
    """A weight read again layers later (a tied decoder, a module called twice) has an
    edge spanning rows of other boxes: it runs in gaps beside them, never through a box
    it does not join, forward and backward, with a module collapsed too."""
    gg.manual_seed(0)
    graph = model()(gg.randn(2, width)).graph
    path = tmp_path / "tied.html"
    graph.to_html(path)
    page, _ = open_page(browser, path)
    assert page.locator("path.edge").count() >= len(graph) - 2
    assert edges_through_boxes(page) == []
    page.check("#backward")
    assert page.locator("path.edge.grad").count() > 0
    assert edges_through_boxes(page) == []
    page.locator("g.frame text").nth(1).click()  # an inner module, collapsed
    assert page.locator("g.scope").count() == 2
    assert edges_through_boxes(page) == []


def test_the_page_title_is_the_text_of_the_title_given_escaped():
    graph = gg.trace(lambda t: t * 2.0, gg.ones(2))
    assert "<title>run 7</title>" in str(graph.to_html(title="run 7"))
    assert "<title>7</title>" in str(graph.to_html(title=7))
    assert "<title>a &lt;b&gt;</title>" in str(graph.to_html(title="a <b>"))
