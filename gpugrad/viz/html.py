"""Graph.to_html: one self-contained HTML file (no network when opened).

The page lays the DAG out in layers (longest path from the inputs, each leaf just above
the first op that reads it), pans and zooms, searches nodes, and shows a node's details
on a click: op, attributes, shape, dtype, device, the user's file:line, bytes (output,
saved for the backward, allocated by the kernel) and, after gg.profile, measured times
and (stats=True) value and gradient statistics. Nodes holding a NaN or an Inf are red,
zero gradients grey and dashed. A toggle adds the backward pass beside the forward one
(a "grad of <op>" node per node requiring grad; selecting either highlights both).

nn.Module scopes are boxes: a collapsed scope is one node that expands on a click, an
expanded one a frame whose title collapses it again. Graphs of more than COLLAPSE_ABOVE
nodes open collapsed, so that 10,000 nodes stay usable; the layout is computed in the
page for what is visible (a linear pass, no recursion), each time a box opens or closes.
"""

import html
import json

from .export import Text
from .labels import title

COLLAPSE_ABOVE = 2000  # nodes; larger graphs open with every module scope collapsed

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body { margin: 0; font: 13px Helvetica, Arial, sans-serif; display: flex; height: 100vh; }
#canvas { flex: 1; background: #fafafa; cursor: grab; }
#side { width: 340px; border-left: 1px solid #ddd; padding: 10px; overflow: auto; }
#search { width: 100%; box-sizing: border-box; padding: 5px; margin-bottom: 6px; }
#controls { margin: 4px 0 8px; display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
#controls button { font: 12px Helvetica, Arial, sans-serif; padding: 2px 6px; }
#legend { display: grid; grid-template-columns: 1fr 1fr; gap: 3px 8px; margin: 6px 0 10px;
  font-size: 11px; color: #333; }
#legend span { display: inline-block; width: 18px; height: 11px; margin-right: 4px;
  vertical-align: middle; border: 1px solid #555; border-radius: 3px; }
#count { color: #555; margin-bottom: 6px; }
.node rect { stroke: #555; stroke-width: 1; rx: 6; }
.node.op rect { fill: #fef3c7; } .node.input rect { fill: #f3f4f6; }
.node.grad rect { fill: #dbeafe; } .node.output rect { stroke-width: 3; }
.node.backward rect { fill: #bbf7d0; stroke: #16a34a; }
.scope rect { fill: #f5f3ff; stroke: #7c3aed; stroke-width: 1.5; rx: 4; }
.scope.backward rect { fill: #bbf7d0; stroke: #16a34a; }
.zerograd rect { fill: #e5e7eb !important; stroke: #6b7280; stroke-dasharray: 5 3; }
.nonfinite rect { fill: #fecaca !important; stroke: #dc2626; stroke-width: 2.5; }
.match rect { stroke: #ea580c; stroke-width: 3; }
.partner rect { stroke: #2563eb; stroke-width: 3; stroke-dasharray: 6 3; }
.selected rect { stroke: #2563eb; stroke-width: 3.5; }
.node, .scope { cursor: pointer; }
.node text, .scope text { font-size: 11px; pointer-events: none; }
.scope text.title { font-weight: bold; }
.frame rect { fill: rgba(124, 58, 237, 0.03); stroke: #a78bfa; stroke-dasharray: 4 3;
  rx: 8; pointer-events: none; }
.frame text { font-size: 11px; fill: #6d28d9; cursor: pointer; font-weight: bold; }
.edge { stroke: #999; stroke-width: 1; fill: none; marker-end: url(#arrow); }
.edge.grad { stroke: #34d399; marker-end: url(#garrow); }
.tie { stroke: #16a34a; stroke-width: 1.5; stroke-dasharray: 3 2; fill: none; }
table { border-collapse: collapse; width: 100%; } td, th { padding: 2px 4px;
  vertical-align: top; text-align: left; } td:first-child { color: #666; white-space: nowrap; }
th { color: #333; border-bottom: 1px solid #ddd; font-weight: normal; }
.bad { color: #dc2626; font-weight: bold; } .flag { margin: 6px 0; }
</style></head><body>
<svg id="canvas"><defs>
<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6"
orient="auto"><path d="M0,0L10,5L0,10z" fill="#999"/></marker>
<marker id="garrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6"
orient="auto"><path d="M0,0L10,5L0,10z" fill="#34d399"/></marker>
</defs><g id="view"></g></svg>
<div id="side"><input id="search" placeholder="search ops, shapes, lines, modules..."
autocomplete="off"><div id="count"></div>
<div id="controls"><label><input type="checkbox" id="backward"> backward pass</label>
<button id="expand-all">expand all</button><button id="collapse-all">collapse all</button>
</div>
<div id="legend">
<div><span style="background:#fef3c7"></span>op</div>
<div><span style="background:#f3f4f6"></span>input</div>
<div><span style="background:#dbeafe"></span>requires grad</div>
<div><span style="background:#fff;border-width:3px"></span>output</div>
<div><span style="background:#bbf7d0;border-color:#16a34a"></span>grad of op</div>
<div><span style="background:#f5f3ff;border-color:#7c3aed"></span>module (click)</div>
<div><span style="background:#fecaca;border-color:#dc2626"></span>NaN / Inf</div>
<div><span style="background:#e5e7eb;border:1px dashed #6b7280"></span>zero gradient</div>
</div>
<div id="details"></div></div>
<script>
"use strict";
const GRAPH = __DATA__;
const NODES = GRAPH.nodes, SCOPES = GRAPH.scopes;
const W = 160, H = 40, GX = 36, GY = 58, PAIR = 16;
const NS = "http://www.w3.org/2000/svg";
const svg = document.getElementById("canvas"), view = document.getElementById("view");
const byId = new Map(NODES.map(n => [n.id, n]));
const OPEN_UNITS = 150;  // a large graph opens its outer scopes while this many boxes show
const collapsed = new Set(GRAPH.collapse ? SCOPES.map((s, i) => i) : []);
let showBackward = false, selected = null, query = "", current = null;
if (!SCOPES.length) {
  document.getElementById("expand-all").style.display = "none";
  document.getElementById("collapse-all").style.display = "none";
}

// --- what a node's statistics say ---------------------------------------------------
function nonfinite(s) { return !!s && (s.nan > 0 || s.inf > 0); }
function allZero(s) { return !!s && s.size > 0 && s.zeros === s.size; }
function scopeLabel(i) {
  const s = SCOPES[i];
  return s.path === s.type ? s.path : s.path + " (" + s.type + ")";
}
function clip(text, n) { return text.length > n ? text.slice(0, n - 1) + "\\u2026" : text; }

// --- layout: units (nodes, or collapsed scopes), layered by longest path -----------
function unitOf(n) {
  let u = null;
  for (let s = n.scope; s >= 0; s = SCOPES[s].parent) if (collapsed.has(s)) u = s;
  return u === null ? "n" + n.id : "s" + u;
}
function buildUnits() {
  const units = new Map();
  NODES.forEach(n => {
    const key = unitOf(n);
    n.unit = key;
    let u = units.get(key);
    if (!u) {
      const scope = key[0] === "s" ? +key.slice(1) : -1;
      u = {key, scope, node: scope < 0 ? n : null, members: [], first: n.id, ins: [],
           outs: [], grad: 0, zeros: 0, bad: false};
      units.set(key, u);
    }
    u.members.push(n);
    if (n.requires_grad) u.grad += 1;
    if (allZero(n.grad_stats)) u.zeros += 1;
    if (nonfinite(n.stats) || nonfinite(n.grad_stats)) u.bad = true;
  });
  units.forEach(u => { u.zero = u.grad > 0 && u.zeros === u.grad; });
  const seen = new Set(), edges = [], gradEdges = [];
  GRAPH.edges.forEach(([a, b]) => {
    const na = byId.get(a), nb = byId.get(b), ua = na.unit, ub = nb.unit;
    if (ua === ub) return;
    if (!seen.has(ua + ">" + ub)) {
      seen.add(ua + ">" + ub);
      edges.push([ua, ub]);
      units.get(ua).outs.push(ub);
      units.get(ub).ins.push(ua);
    }
    if (na.requires_grad && nb.requires_grad && !seen.has(ub + "<" + ua)) {
      seen.add(ub + "<" + ua);
      gradEdges.push([ub, ua]);  // the consumer's VJP sends a gradient to the input
    }
  });
  return {units, edges, gradEdges};
}
function assignLayers(units) {
  // Kahn's algorithm over the units, earliest node first; a cycle (a module called
  // twice around other work, seen collapsed) is broken at its earliest unit.
  const order = [...units.values()].sort((a, b) => a.first - b.first);
  const indegree = new Map(order.map(u => [u.key, u.ins.length]));
  const layer = new Map(), queue = order.filter(u => u.ins.length === 0);
  let head = 0, next = 0;
  while (layer.size < order.length) {
    if (head >= queue.length) {
      while (layer.has(order[next].key)) next += 1;
      queue.push(order[next]);
    }
    const u = queue[head++];
    if (layer.has(u.key)) continue;
    let l = 0;
    u.ins.forEach(p => { if (layer.has(p)) l = Math.max(l, layer.get(p) + 1); });
    layer.set(u.key, l);
    u.outs.forEach(v => {
      const d = indegree.get(v) - 1;
      indegree.set(v, d);
      if (d === 0) queue.push(units.get(v));
    });
  }
  order.forEach(u => {  // a leaf sits just above the first op that reads it
    if (u.ins.length === 0 && u.outs.length > 0) {
      layer.set(u.key, u.outs.reduce((m, v) => Math.min(m, layer.get(v)), Infinity) - 1);
    }
  });
  return layer;
}
function containerOf(u) { return u.scope >= 0 ? SCOPES[u.scope].parent : u.node.scope; }
function margins(level) { return {side: 6 + 6 * level, top: 18 + 14 * level}; }
function pack(items) {
  // Left to right, by first layer: each item (a unit, or an expanded scope's block of
  // them) goes at the leftmost x that is free in every layer it spans.
  items.sort((a, b) => a.lo - b.lo || a.first - b.first);
  const free = new Map();
  let w = 0, lo = Infinity, hi = -Infinity, first = Infinity;
  items.forEach(it => {
    let x = 0;
    for (let l = it.lo; l <= it.hi; l++) x = Math.max(x, free.get(l) || 0);
    it.x = x;
    for (let l = it.lo; l <= it.hi; l++) free.set(l, x + it.w + GX);
    w = Math.max(w, x + it.w);
    lo = Math.min(lo, it.lo); hi = Math.max(hi, it.hi); first = Math.min(first, it.first);
  });
  return {items, w, lo, hi, first};
}
function place(units, layer) {
  // Expanded scopes are packed innermost first into blocks, so that a module's frame
  // holds its own nodes and nothing else; then the blocks are placed top-down.
  const kids = new Map();
  const add = (c, item) => { if (!kids.has(c)) kids.set(c, []); kids.get(c).push(item); };
  units.forEach(u => {  // with the backward pass, a unit and its gradient go as a pair
    const l = layer.get(u.key), w = showBackward && u.grad ? 2 * W + PAIR : W;
    add(containerOf(u), {unit: u, lo: l, hi: l, w, first: u.first});
  });
  const open = new Set();
  kids.forEach((_, c) => { for (let s = c; s >= 0; s = SCOPES[s].parent) open.add(s); });
  let deepest = 0;
  open.forEach(s => { deepest = Math.max(deepest, SCOPES[s].depth); });
  [...open].sort((a, b) => SCOPES[b].depth - SCOPES[a].depth).forEach(s => {
    const m = margins(deepest - SCOPES[s].depth), inner = pack(kids.get(s) || []);
    add(SCOPES[s].parent, {block: inner, scope: s, lo: inner.lo, hi: inner.hi,
                           w: inner.w + 2 * m.side, first: inner.first, ...m});
  });
  const root = pack(kids.get(-1) || []);
  const xs = new Map(), frames = [], stack = [[root.items, 0]];
  while (stack.length) {
    const [items, base] = stack.pop();
    items.forEach(it => {
      const x = base + it.x;
      if (it.unit) { xs.set(it.unit.key, x); return; }
      frames.push({scope: it.scope, x, w: it.w, lo: it.lo, hi: it.hi, top: it.top,
                   side: it.side});
      stack.push([it.block.items, x + it.side]);
    });
  }
  const gap = open.size ? Math.max(GY, 38 + 20 * deepest) : GY;
  return {xs, frames, gap};
}
function layout() {
  const {units, edges, gradEdges} = buildUnits();
  const layer = assignLayers(units);
  const {xs, frames, gap} = place(units, layer);
  const pos = new Map(), y = l => l * (H + gap);
  units.forEach(u => pos.set(u.key, [xs.get(u.key), y(layer.get(u.key))]));
  units.forEach(u => {  // each gradient just right of its forward node
    if (u.grad) { const [x, top] = pos.get(u.key); pos.set("b" + u.key, [x + W + PAIR, top]); }
  });
  frames.forEach(f => { f.y0 = y(f.lo) - f.top; f.y1 = y(f.hi) + H + f.side; });
  return {units, edges, gradEdges, pos, frames};
}

// --- drawing ---------------------------------------------------------------------------
const elements = new Map();
function el(tag, attrs, parent) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
function curve(p, q, up) {
  const x1 = p[0] + W / 2, x2 = q[0] + W / 2;
  const y1 = up ? p[1] : p[1] + H, y2 = up ? q[1] + H : q[1], bend = up ? -GY / 2 : GY / 2;
  return `M${x1},${y1} C${x1},${y1 + bend} ${x2},${y2 - bend} ${x2},${y2}`;
}
function drawFrames(frames, parent) {
  frames.sort((a, b) => SCOPES[a.scope].depth - SCOPES[b.scope].depth).forEach(f => {
    const g = el("g", {class: "frame", "data-scope": f.scope}, parent);
    el("rect", {x: f.x, y: f.y0, width: f.w, height: f.y1 - f.y0}, g);
    const t = el("text", {x: f.x + 6, y: f.y0 + 13}, g);
    t.textContent = clip("\\u25be " + scopeLabel(f.scope), Math.floor(f.w / 6.5));
    t.addEventListener("click", ev => { ev.stopPropagation(); collapse(f.scope); });
  });
}
function nodeBox(key, classes, line1, line2, parent, pos) {
  const g = el("g", {class: classes, transform: `translate(${pos[0]},${pos[1]})`}, parent);
  g.dataset.key = key;
  el("rect", {width: W, height: H}, g);
  const t1 = el("text", {x: 8, y: 16, class: "title"}, g);
  t1.textContent = clip(line1, 26);
  const t2 = el("text", {x: 8, y: 31}, g);
  t2.textContent = clip(line2, 28);
  elements.set(key, g);
  return g;
}
function spec(n) { return n.dtype + "[" + n.shape.join(", ") + "]"; }
function shapeText(shape) {  // as Python writes the tuple: (5, 8), (3,), ()
  return "(" + shape.join(", ") + (shape.length === 1 ? ",)" : ")");
}
function drawUnit(u, pos, parent, backward) {
  const key = (backward ? "b" : "") + u.key, p = pos.get(key);
  let g;
  if (u.scope >= 0) {
    const s = SCOPES[u.scope];
    g = nodeBox(key, "scope" + (backward ? " backward" : ""),
                (backward ? "grad of " : "\\u25b8 ") + scopeLabel(u.scope),
                s.size.toLocaleString() + " nodes", parent, p);
    g.addEventListener("click", ev => { ev.stopPropagation(); expand(u.scope); });
  } else {
    const n = u.node;
    let classes = "node " + n.kind;
    if (backward) classes += " backward";
    else if (n.requires_grad && n.kind === "input") classes += " grad";
    if (n.is_output && !backward) classes += " output";
    g = nodeBox(key, classes, (backward ? "grad of " : "") + n.title, spec(n), parent, p);
    g.addEventListener("click", ev => { ev.stopPropagation(); select(key); });
  }
  const bad = backward ? u.members.some(n => nonfinite(n.grad_stats)) : u.bad;
  if (bad) g.classList.add("nonfinite");
  else if (u.zero) g.classList.add("zerograd");
}
function render() {
  const t0 = performance.now();
  current = layout();
  const {units, edges, gradEdges, pos, frames} = current;
  view.textContent = "";
  elements.clear();
  const back = el("g", {}, view), lines = el("g", {}, view), boxes = el("g", {}, view);
  drawFrames(frames, back);
  edges.forEach(([a, b]) => el("path", {class: "edge", d: curve(pos.get(a), pos.get(b))},
                               lines));
  units.forEach(u => drawUnit(u, pos, boxes, false));
  if (showBackward) {
    gradEdges.forEach(([a, b]) => el("path", {class: "edge grad",
                                              d: curve(pos.get("b" + a), pos.get("b" + b), true)},
                                     lines));
    units.forEach(u => {
      if (!u.grad) return;
      const [x, y] = pos.get(u.key);
      el("path", {class: "tie", d: `M${x + W},${y + H / 2} h${PAIR}`}, lines);
      drawUnit(u, pos, boxes, true);
    });
  }
  highlight();
  svg.dataset.renderMs = Math.round(performance.now() - t0);
}

// --- interaction -----------------------------------------------------------------------
function where(s) {
  // The top-left corner of scope s as drawn now: its box, or its frame.
  if (current.pos.has("s" + s)) return current.pos.get("s" + s);
  const f = current.frames.find(f => f.scope === s);
  return f ? [f.x, f.y0] : null;
}
function rerenderAround(s) {
  // Keep the scope that was clicked where it was on the screen.
  const before = where(s);
  render();
  const after = where(s);
  if (before && after) {
    tx += (before[0] - after[0]) * scale; ty += (before[1] - after[1]) * scale;
    apply();
  }
}
function expand(s) {
  collapsed.delete(s);
  for (let p = SCOPES[s].parent; p >= 0; p = SCOPES[p].parent) collapsed.delete(p);
  showScope(s);
  rerenderAround(s);
}
function collapse(s) { collapsed.add(s); showScope(s); rerenderAround(s); }
function partnerOf(key) { return key[0] === "b" ? key.slice(1) : "b" + key; }
function highlight() {
  elements.forEach(e => e.classList.remove("selected", "partner", "match"));
  if (selected && elements.has(selected)) {
    elements.get(selected).classList.add("selected");
    const other = partnerOf(selected);
    if (elements.has(other)) elements.get(other).classList.add("partner");
  }
  let hits = 0;
  if (query) {
    NODES.forEach(n => {
      const scope = n.scope >= 0 ? SCOPES[n.scope].path : "";
      const text = normalise([n.op, n.title, spec(n), n.site, scope].join(" "));
      if (text.includes(query)) {
        hits += 1;
        const e = elements.get(n.unit);
        if (e) e.classList.add("match");
      }
    });
  }
  document.getElementById("count").textContent = query ? hits + " match(es)" : "";
}
function row(k, v) { return `<tr><td>${k}</td><td colspan="2">${v}</td></tr>`; }
function esc(s) { return String(s).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;",
  ">": "&gt;", '"': "&quot;"})[c]); }
function bytes(b) { return b === null || b === undefined ? "-" : b.toLocaleString(); }
function num(v) { return v === null || v === undefined ? "-" : Number(v).toPrecision(4); }
function statsTable(value, grad) {
  if (!value && !grad) return "";
  const cell = (s, k) => {
    if (!s) return "-";
    const v = s[k];
    if (k === "nan" || k === "inf") return v > 0 ? `<span class="bad">${v}</span>` : v;
    return k === "zeros" ? v + " / " + s.size : num(v);
  };
  let rows = "<tr><th></th><th>value</th><th>gradient</th></tr>";
  [["min", "min"], ["max", "max"], ["mean", "mean"], ["norm", "norm"], ["NaN", "nan"],
   ["Inf", "inf"], ["zeros", "zeros"]].forEach(([label, k]) => {
    rows += `<tr><td>${label}</td><td>${cell(value, k)}</td><td>${cell(grad, k)}</td></tr>`;
  });
  let flags = "";
  if (nonfinite(value)) flags += '<div class="flag bad">the value holds NaN/Inf</div>';
  if (nonfinite(grad)) flags += '<div class="flag bad">the gradient holds NaN/Inf</div>';
  if (allZero(grad)) flags += '<div class="flag">zero gradient: nothing flows back</div>';
  return flags + "<table>" + rows + "</table>";
}
function select(key) {
  selected = key;
  highlight();
  const backward = key[0] === "b", n = byId.get(+key.slice(backward ? 2 : 1));
  let rows = row(backward ? "gradient of" : "op", esc(n.op)) +
    (n.name ? row("parameter", esc(n.name)) : "") +
    (n.input_index !== null ? row("argument", n.input_index) : "") + row("kind", n.kind) +
    row("shape", shapeText(n.shape)) + row("dtype", n.dtype) +
    row("device", n.device) + row("created at", esc(n.site));
  if (n.scope >= 0) rows += row("module", esc(scopeLabel(n.scope)));
  if (!backward) {
    rows += row("requires grad", n.requires_grad) + row("bytes", bytes(n.bytes)) +
      row("saved for backward", bytes(n.saved_bytes)) +
      row("allocated by kernel", bytes(n.kernel_bytes));
    Object.entries(n.attrs).forEach(([k, v]) => { rows += row(esc(k), esc(v)); });
    if (n.time !== null) rows += row("forward ms", (n.time * 1e3).toFixed(3));
  }
  if (n.backward_time !== null) rows += row("backward ms", (n.backward_time * 1e3).toFixed(3));
  rows += row("inputs", n.inputs.length) + row("node id", n.id);
  document.getElementById("details").innerHTML = "<table>" + rows + "</table>" +
    (backward ? statsTable(null, n.grad_stats) : statsTable(n.stats, n.grad_stats));
}
function showScope(s) {
  const members = NODES.filter(n => {
    for (let p = n.scope; p >= 0; p = SCOPES[p].parent) if (p === s) return true;
    return false;
  });
  const bad = members.filter(n => nonfinite(n.stats) || nonfinite(n.grad_stats)).length;
  const zero = members.filter(n => allZero(n.grad_stats)).length;
  document.getElementById("details").innerHTML = "<table>" +
    row("module", esc(scopeLabel(s))) + row("nodes", members.length.toLocaleString()) +
    row("with NaN/Inf", bad ? `<span class="bad">${bad}</span>` : 0) +
    row("zero gradients", zero) + "</table>";
}
function normalise(text) {
  // Shapes match however they are typed: "8, 32", "8,32", "[8, 32]", "(8, 32)" and a
  // 1-d "(3,)" all read as the label's "[8,32]" (or "[3]") once both sides lose the
  // spaces around commas and brackets and parentheses become brackets.
  return text.toLowerCase().replace(/[(]/g, "[").replace(/[)]/g, "]")
    .replace(/\\s*([,\\[\\]])\\s*/g, "$1").replace(/,\\]/g, "]").replace(/\\s+/g, " ").trim();
}
document.getElementById("search").addEventListener("input", ev => {
  query = normalise(ev.target.value);
  highlight();
});
document.getElementById("backward").addEventListener("change", ev => {
  showBackward = ev.target.checked;
  render();
});
document.getElementById("expand-all").addEventListener("click", () => {
  collapsed.clear(); render(); });
document.getElementById("collapse-all").addEventListener("click", () => {
  SCOPES.forEach((s, i) => collapsed.add(i)); render(); });
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
function unitCount() {
  const seen = new Set();
  NODES.forEach(n => seen.add(unitOf(n)));
  return seen.size;
}
function openOuterScopes() {
  // A large graph opens collapsed; then its scopes open level by level, outermost
  // first, for as long as the boxes on screen stay few (one model-wide box says little).
  for (let depth = 0; collapsed.size; depth++) {
    const level = SCOPES.map((s, i) => i).filter(i => SCOPES[i].depth === depth);
    if (!level.length) break;
    level.forEach(i => collapsed.delete(i));
    if (unitCount() > OPEN_UNITS) { level.forEach(i => collapsed.add(i)); break; }
  }
}
if (GRAPH.collapse) openOuterScopes();
document.getElementById("details").textContent = NODES.length.toLocaleString() +
  " nodes" + (SCOPES.length ? ", " + SCOPES.length.toLocaleString() + " module scopes" : "") +
  ". Click a node for its details" + (SCOPES.length ? "; click a module's box to open it, " +
  "the title of its frame to close it." : ".");
render();
// Start with the top-left corner in view, shrunk (not below half size, to stay
// readable) so that the graph's width fits the canvas where it can.
const box = view.getBBox();
scale = Math.max(0.5, Math.min(1, (svg.clientWidth - 40) / Math.max(box.width, 1)));
tx = 20 - box.x * scale; ty = 20 - box.y * scale;
apply();
</script></body></html>
"""


def _scopes(g):
    """The module scopes of the networkx view `g` as a list (parents before children),
    and each node's innermost scope as an index into it (-1: none)."""
    index, scopes = {}, []
    classes = g.graph.get("scopes", {})
    innermost = {}
    for seq, data in g.nodes(data=True):
        path = data["scope"]
        for depth, name in enumerate(path):
            if name not in index:
                index[name] = len(scopes)
                scopes.append({"path": name, "type": classes.get(name, name),
                               "parent": index[path[depth - 1]] if depth else -1,
                               "depth": depth, "size": 0})
            scopes[index[name]]["size"] += 1
        innermost[seq] = index[path[-1]] if path else -1
    return scopes, innermost


def page_data(graph, collapse=None):
    """What the page draws: nodes (with what was recorded on them), edges, scopes, and
    whether scopes start collapsed."""
    g = graph.refresh()
    scopes, innermost = _scopes(g)
    keys = ("op", "name", "kind", "dtype", "device", "site", "attrs", "requires_grad",
            "is_output", "input_index",
            "bytes", "time", "backward_time", "saved_bytes", "kernel_bytes", "stats",
            "grad_stats")
    nodes = []
    for seq, data in g.nodes(data=True):
        node = {"id": seq, "title": title(data), "shape": list(data["shape"]),
                "scope": innermost[seq],
                "inputs": ([i.seq for i in graph.node(seq).inputs] if data["kind"] == "op"
                           else [])}  # a subgraph's input op: its inputs are not shown
        node.update((k, data[k]) for k in keys)
        nodes.append(node)
    if collapse is None:
        collapse = len(nodes) > COLLAPSE_ABOVE
    return {"nodes": nodes, "edges": [[a, b] for a, b in g.edges], "scopes": scopes,
            "collapse": bool(collapse) and bool(scopes)}


def to_html(graph, path=None, title="gpugrad graph", collapse=None):
    """The self-contained viewer page's text (a str whose repr is one line, so that a
    REPL does not echo megabytes of page), written to `path` if given. collapse: open
    with every module scope collapsed (None: when the graph has more than COLLAPSE_ABOVE
    nodes)."""
    data = json.dumps(page_data(graph, collapse)).replace("</", "<\\/")  # safe in <script>
    page = _PAGE.replace("__TITLE__", html.escape(title)).replace("__DATA__", data)
    if path is not None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(page)
    return Text(page, "HTML page", path)
