"""The HTML viewer in a real browser: headless Chromium (Debian's), driven by Playwright,
opening the file from disk with nothing fetched from any network."""

import os
import shutil
import time

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
