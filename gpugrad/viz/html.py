"""Graph.to_html: one self-contained HTML file (no network when opened) that draws the
DAG in layers (topological generations), pans and zooms, searches nodes, and shows a
node's details on a click: op, attributes, shape, dtype, device, the user's file:line,
bytes and, after gg.profile, measured time."""

import html
import json

import networkx as nx

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body { margin: 0; font: 13px Helvetica, Arial, sans-serif; display: flex; height: 100vh; }
#canvas { flex: 1; background: #fafafa; cursor: grab; }
#side { width: 320px; border-left: 1px solid #ddd; padding: 10px; overflow: auto; }
#search { width: 100%; box-sizing: border-box; padding: 5px; margin-bottom: 6px; }
.node rect { stroke: #555; stroke-width: 1; rx: 6; }
.node.op rect { fill: #fef3c7; } .node.input rect { fill: #f3f4f6; }
.node.grad rect { fill: #dbeafe; } .node.output rect { stroke-width: 3; }
.node.match rect { stroke: #dc2626; stroke-width: 3; }
.node.selected rect { stroke: #2563eb; stroke-width: 3; }
.node text { font-size: 11px; pointer-events: none; }
.edge { stroke: #999; stroke-width: 1; fill: none; marker-end: url(#arrow); }
table { border-collapse: collapse; width: 100%; } td { padding: 2px 4px; vertical-align: top; }
td:first-child { color: #666; white-space: nowrap; }
</style></head><body>
<svg id="canvas"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5"
markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0L10,5L0,10z" fill="#999"/>
</marker></defs><g id="view"></g></svg>
<div id="side"><input id="search" placeholder="search ops, shapes, lines..."
autocomplete="off"><div id="count"></div><div id="details">Click a node.</div></div>
<script>
const GRAPH = __DATA__;
const W = 150, H = 40, GX = 40, GY = 50;
const svg = document.getElementById("canvas"), view = document.getElementById("view");
const NS = "http://www.w3.org/2000/svg";
const pos = {};
GRAPH.nodes.forEach(n => { pos[n.id] = [n.x * (W + GX), n.layer * (H + GY)]; });
GRAPH.edges.forEach(e => {
  const [x1, y1] = pos[e.source], [x2, y2] = pos[e.target];
  const p = document.createElementNS(NS, "path");
  p.setAttribute("class", "edge");
  p.setAttribute("d", `M${x1 + W / 2},${y1 + H} C${x1 + W / 2},${y1 + H + GY / 2} ` +
                      `${x2 + W / 2},${y2 - GY / 2} ${x2 + W / 2},${y2}`);
  view.appendChild(p);
});
const elements = {};
GRAPH.nodes.forEach(n => {
  const g = document.createElementNS(NS, "g");
  g.setAttribute("class", "node " + n.kind + (n.requires_grad && n.kind === "input" ?
                 " grad" : "") + (n.is_output ? " output" : ""));
  g.setAttribute("transform", `translate(${pos[n.id][0]},${pos[n.id][1]})`);
  g.dataset.id = n.id;
  const r = document.createElementNS(NS, "rect");
  r.setAttribute("width", W); r.setAttribute("height", H);
  const t1 = document.createElementNS(NS, "text"), t2 = document.createElementNS(NS, "text");
  t1.setAttribute("x", 8); t1.setAttribute("y", 16); t1.textContent = n.op;
  t2.setAttribute("x", 8); t2.setAttribute("y", 31);
  t2.textContent = n.dtype + "[" + n.shape.join(", ") + "]";
  g.append(r, t1, t2);
  g.addEventListener("click", ev => { ev.stopPropagation(); select(n); });
  view.appendChild(g);
  elements[n.id] = g;
});
function row(k, v) { return `<tr><td>${k}</td><td>${v}</td></tr>`; }
function esc(s) { return String(s).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;",
  ">": "&gt;", '"': "&quot;"})[c]); }
function select(n) {
  Object.values(elements).forEach(e => e.classList.remove("selected"));
  elements[n.id].classList.add("selected");
  let rows = row("op", esc(n.op)) + row("kind", n.kind) + row("shape", "(" + n.shape.join(", ") +
    ")") + row("dtype", n.dtype) + row("device", n.device) + row("created at", esc(n.site)) +
    row("requires grad", n.requires_grad) + row("bytes", n.bytes.toLocaleString());
  Object.entries(n.attrs).forEach(([k, v]) => { rows += row(esc(k), esc(v)); });
  if (n.time !== null) rows += row("forward ms", (n.time * 1e3).toFixed(3));
  if (n.backward_time !== null) rows += row("backward ms", (n.backward_time * 1e3).toFixed(3));
  rows += row("inputs", n.inputs.length) + row("node id", n.id);
  document.getElementById("details").innerHTML = "<table>" + rows + "</table>";
}
document.getElementById("search").addEventListener("input", ev => {
  const q = ev.target.value.trim().toLowerCase();
  let hits = 0;
  GRAPH.nodes.forEach(n => {
    const text = [n.op, n.dtype, n.shape.join(","), n.site].join(" ").toLowerCase();
    const on = q !== "" && text.includes(q);
    elements[n.id].classList.toggle("match", on);
    if (on) hits += 1;
  });
  document.getElementById("count").textContent = q ? hits + " match(es)" : "";
});
let scale = 1, tx = 20, ty = 20, drag = null;
function apply() { view.setAttribute("transform", `translate(${tx},${ty}) scale(${scale})`); }
svg.addEventListener("wheel", ev => {
  ev.preventDefault();
  const f = ev.deltaY < 0 ? 1.1 : 1 / 1.1;
  tx = ev.offsetX - (ev.offsetX - tx) * f; ty = ev.offsetY - (ev.offsetY - ty) * f;
  scale *= f; apply();
}, {passive: false});
svg.addEventListener("mousedown", ev => { drag = [ev.clientX - tx, ev.clientY - ty]; });
window.addEventListener("mousemove", ev => {
  if (drag) { tx = ev.clientX - drag[0]; ty = ev.clientY - drag[1]; apply(); } });
window.addEventListener("mouseup", () => { drag = null; });
apply();
</script></body></html>
"""


def _layers(graph):
    """(layer, position in layer) per node: ops by topological generation (no
    recursion); each leaf just above the first op that reads it."""
    g = graph.nx
    layer = {}
    for depth, generation in enumerate(nx.topological_generations(g)):
        for node in generation:
            layer[node] = depth
    for node in g:
        if g.in_degree(node) == 0 and g.out_degree(node) > 0:
            layer[node] = min(layer[c] for c in g.successors(node)) - 1
    shift = -min(layer.values(), default=0)
    rows = {}
    for node in sorted(g):
        rows.setdefault(layer[node] + shift, []).append(node)
    return {node: (depth, i) for depth, nodes in rows.items() for i, node in enumerate(nodes)}


def page_data(graph):
    placed = _layers(graph)
    nodes = []
    for seq, data in graph.nx.nodes(data=True):
        node = graph.node(seq)
        meta = node.meta or {}
        itemsize = getattr(node.dtype, "itemsize", 0)
        size = 1
        for d in data["shape"]:
            size *= d
        layer, x = placed[seq]
        nodes.append({"id": seq, "op": data["op"], "kind": data["kind"],
                      "shape": list(data["shape"]), "dtype": data["dtype"],
                      "device": data["device"], "site": data["site"],
                      "attrs": data["attrs"], "requires_grad": data["requires_grad"],
                      "is_output": data["is_output"], "bytes": size * itemsize,
                      "time": meta.get("time"), "backward_time": meta.get("backward_time"),
                      "inputs": [i.seq for i in node.inputs], "layer": layer, "x": x})
    edges = [{"source": a, "target": b} for a, b in graph.nx.edges]
    return {"nodes": nodes, "edges": edges}


def to_html(graph, path=None, title="gpugrad graph"):
    """The self-contained viewer page as text; written to `path` if given."""
    data = json.dumps(page_data(graph)).replace("</", "<\\/")  # safe inside <script>
    page = _PAGE.replace("__TITLE__", html.escape(title)).replace("__DATA__", data)
    if path is not None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(page)
    return page
