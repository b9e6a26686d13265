"""Graph.to_html: one self-contained HTML file (no network when opened).

The page lays the DAG out in layers (longest path from the inputs, then each node and
leaf just above the first op that reads it), pans and zooms, searches nodes, and shows a
node's details on a click: op, attributes, shape, dtype, device, the user's file:line,
bytes (output, saved for the backward, allocated by the kernel) and, after gg.profile,
measured times and (stats=True) value and gradient statistics. Nodes holding a NaN or an
Inf are red, zero gradients grey and dashed. A toggle adds the backward pass beside the
forward one (a "grad of <op>" node per node requiring grad; selecting either highlights
both).
Leaves show their names (viz.labels: a parameter's in its module, a traced function's
argument's), cut in the middle where too long for a box; details and search have them
whole.

nn.Module scopes are boxes: a collapsed scope is one node that expands on a click, an
expanded one a frame whose title collapses it again. Graphs of more than COLLAPSE_ABOVE
nodes open collapsed, so that 10,000 nodes stay usable; the layout is computed in the
page for what is visible (a linear pass, no recursion), each time a box opens or closes.
A module's frame is laid out as one block below the blocks it reads from (frames stack
in the order data flows), its title clear of the edges into it; the view fits the whole
graph (the "fit" button, and on its own whenever what is shown changes, where the graph
stays readable at half size or more). An edge spanning rows of other boxes (a tied weight
read again layers later) runs through columns kept free for it in those rows, never
through a box it does not join.
"""

import html
import json

from ..files import write_text
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
.frame text { font-size: 11px; fill: #6d28d9; cursor: pointer; font-weight: bold;
  paint-order: stroke; stroke: #f8f6fe; stroke-width: 4px; stroke-linejoin: round; }
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
<button id="fit" title="show the whole graph">fit</button>
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
// A long name loses its middle, not its end: "Net.classi...ight.exp_avg_sq" and
// "Adam step_...ier_head.weight" still tell the weight from the bias and one
// optimiser value from another, which the end or the start alone would not (details
// show the whole name).
function clipMiddle(text, n) {
  if (text.length <= n) return text;
  const head = Math.floor((n - 1) * 0.4);
  return text.slice(0, head) + "\\u2026" + text.slice(text.length - (n - 1 - head));
}
function fitName(text, chars, px) {  // at most `chars` characters and `px` wide
  let n = Math.min(text.length, chars);
  while (n > 8 && measure.measureText(clipMiddle(text, n)).width > px) n -= 1;
  return clipMiddle(text, n);
}

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
function depthOf(c) { return c < 0 ? -1 : SCOPES[c].depth; }
function containerOf(u) { return u.scope >= 0 ? SCOPES[u.scope].parent : u.node.scope; }
function assignRows(units) {
  // Rows, container by container, innermost first: in an expanded scope (or at the top)
  // the items are its units and the blocks of its expanded sub-scopes; a block is one
  // item as tall as its content, and an edge between two units is an edge between
  // their items in the innermost container holding both. So a module's frame lies wholly
  // below the items it reads from: MLP.0, MLP.1, MLP.2 stack in the order data flows.
  const items = new Map(), itemOf = new Map(), byContainer = new Map([[-1, []]]);
  const add = (c, it) => {
    if (!byContainer.has(c)) byContainer.set(c, []);
    byContainer.get(c).push(it);
  };
  units.forEach(u => {
    const c = containerOf(u);
    const it = {unit: u, first: u.first, h: 1, succs: [], preds: [], outs: []};
    itemOf.set(u.key, it);
    add(c, it);
    for (let s = c; s >= 0; s = SCOPES[s].parent) {  // the blocks around it, once each
      let b = itemOf.get("S" + s);
      if (!b) {
        b = {scope: s, first: u.first, h: 1, succs: [], preds: []};
        itemOf.set("S" + s, b);
        add(SCOPES[s].parent, b);
      }
      b.first = Math.min(b.first, u.first);
    }
  });
  const seen = new Set();
  units.forEach(u => u.outs.forEach(v => {
    let ca = containerOf(u), cb = containerOf(units.get(v));
    let a = itemOf.get(u.key), b = itemOf.get(v);
    while (depthOf(ca) > depthOf(cb)) { a = itemOf.get("S" + ca); ca = SCOPES[ca].parent; }
    while (depthOf(cb) > depthOf(ca)) { b = itemOf.get("S" + cb); cb = SCOPES[cb].parent; }
    while (ca !== cb) {
      a = itemOf.get("S" + ca); ca = SCOPES[ca].parent;
      b = itemOf.get("S" + cb); cb = SCOPES[cb].parent;
    }
    if (a === b) return;
    if (a.unit) a.outs.push(v);  // the unit read from there, whatever block holds it
    const k = (a.unit ? a.unit.key : "S" + a.scope) + ">" + (b.unit ? b.unit.key : "S" + b.scope);
    if (seen.has(k)) return;
    seen.add(k);
    a.succs.push(b); b.preds.push(a);
  }));
  const local = new Map();  // item -> row inside its container
  const relative = (key, c) => {  // the row of unit `key` counted from container c's top
    let r = local.get(itemOf.get(key));
    for (let s = containerOf(units.get(key)); s !== c; s = SCOPES[s].parent) {
      r += local.get(itemOf.get("S" + s));
    }
    return r;
  };
  const containers = [...byContainer.keys()].sort((a, b) => depthOf(b) - depthOf(a));
  containers.forEach(c => {
    const list = byContainer.get(c);
    // A leaf (a parameter, an input) sits just above the first unit that reads it; the
    // rest are layered by longest path (Kahn's algorithm, earliest first; a cycle, seen
    // with collapsed scopes, is broken at its earliest item).
    const isLeaf = it => it.unit && it.unit.ins.length === 0 && it.succs.length > 0;
    const core = list.filter(it => !isLeaf(it)).sort((a, b) => a.first - b.first);
    const indegree = new Map(core.map(it => [it, it.preds.filter(p => !isLeaf(p)).length]));
    const queue = core.filter(it => indegree.get(it) === 0);
    let head = 0, next = 0, placed = 0;
    while (placed < core.length) {
      if (head >= queue.length) {
        while (local.has(core[next])) next += 1;
        queue.push(core[next]);
      }
      const it = queue[head++];
      if (local.has(it)) continue;
      let l = 0;
      it.preds.forEach(p => { if (local.has(p)) l = Math.max(l, local.get(p) + p.h); });
      local.set(it, l);
      placed += 1;
      it.succs.forEach(v => {
        if (!indegree.has(v)) return;
        const d = indegree.get(v) - 1;
        indegree.set(v, d);
        if (d === 0) queue.push(v);
      });
    }
    // Then each item sinks to just above the first item that reads it, last rows first:
    // by longest path alone, terms made early and read one by one later (a sum of
    // per-sample losses) shared one row, each with an edge across all the rows below it
    // (a column each to route past every box there: minutes for a few thousand nodes).
    core.slice().sort((a, b) => local.get(b) - local.get(a)).forEach(it => {
      let l = Infinity;
      it.succs.forEach(v => { if (local.has(v)) l = Math.min(l, local.get(v)); });
      if (l < Infinity && l - it.h > local.get(it)) local.set(it, l - it.h);
    });
    list.forEach(it => {
      if (isLeaf(it)) local.set(it, it.outs.reduce((m, v) => Math.min(m, relative(v, c)),
                                                      Infinity) - 1);
    });
    let lo = Infinity, hi = -Infinity;
    list.forEach(it => {
      lo = Math.min(lo, local.get(it)); hi = Math.max(hi, local.get(it) + it.h);
    });
    list.forEach(it => local.set(it, local.get(it) - lo));
    if (c >= 0) itemOf.get("S" + c).h = hi - lo;
  });
  // Absolute rows, outermost first.
  const base = new Map([[-1, 0]]), row = new Map(), blocks = new Map();
  [...containers].reverse().forEach(c => byContainer.get(c).forEach(it => {
    const r = base.get(c) + local.get(it);
    if (it.unit) row.set(it.unit.key, r);
    else { base.set(it.scope, r); blocks.set(it.scope, {lo: r, hi: r + it.h - 1}); }
  }));
  return {row, blocks};
}
const measure = document.createElement("canvas").getContext("2d");
measure.font = "bold 11px Helvetica, Arial, sans-serif";
const TITLE_MAX = 240;  // px; a longer frame title is cut short
function frameTitle(s) { return "\\u25be " + scopeLabel(s); }
function titleWidth(s) { return Math.min(TITLE_MAX, measure.measureText(frameTitle(s)).width); }
function margins(level) { return {side: 6 + 6 * level, top: 18 + 14 * level}; }
function pack(items) {
  // Left to right, by first row: each item (a unit, or an expanded scope's block of
  // them) goes at the leftmost x that is free in every row it spans. A unit fed by an
  // edge from several rows up also holds its column in the rows between (a unit read
  // there goes beside it), so that the edge runs straight down instead of through it.
  // Long edges' columns (see longEdges) come after: the nodes keep their places.
  const columns = items.filter(it => it.column);
  items = items.filter(it => !it.column);
  items.sort((a, b) => a.from - b.from || (a.from < a.lo ? 0 : 1) - (b.from < b.lo ? 0 : 1) ||
             a.first - b.first);
  const free = new Map(), taken = new Map();  // row -> [[x0, x1]] of what is there
  const placed = [];  // the items put so far
  let w = 0, lo = Infinity, hi = -Infinity, first = Infinity;
  const put = (it, x) => {
    it.x = x;
    placed.push(it);
    for (let l = it.from; l <= it.hi; l++) {
      free.set(l, Math.max(free.get(l) || 0, x + it.w + GX));
      if (!taken.has(l)) taken.set(l, []);
      taken.get(l).push([x, x + it.w]);
    }
    w = Math.max(w, x + it.w);
    lo = Math.min(lo, it.lo); hi = Math.max(hi, it.hi);
  };
  items.forEach(it => {
    let x = 0;
    for (let l = it.from; l <= it.hi; l++) x = Math.max(x, free.get(l) || 0);
    put(it, x);
    first = Math.min(first, it.first);
  });
  columns.sort((a, b) => a.first - b.first || a.lo - b.lo);
  columns.forEach(it => put(it, columnX(it, taken, placed)));
  return {items: items.concat(columns), w, lo, hi, first};
}
function columnX(it, taken, placed) {
  // Where a long edge's column goes: the free x nearest the middle of the first column
  // of boxes (where a chain of layers runs, so that the edge mostly runs straight), GX
  // clear of everything in its rows: a gap between boxes, else beside them all.
  const blocked = [];
  let entries = 0;
  for (let l = it.from; l <= it.hi; l++) entries += (taken.get(l) || []).length;
  if (entries <= placed.length) {  // what stands in its rows, row by row
    for (let l = it.from; l <= it.hi; l++) {
      (taken.get(l) || []).forEach(([a, b]) => blocked.push([a - GX - it.w, b + GX]));
    }
  } else {
    // The same, from the items placed: where many long columns run side by side (each
    // value of a chain also summed at its end), each column is listed in every row it
    // spans, and reading them row by row took minutes for a few thousand nodes.
    placed.forEach(p => {
      if (p.from <= it.hi && p.hi >= it.from) blocked.push([p.x - GX - it.w, p.x + p.w + GX]);
    });
  }
  blocked.sort((a, b) => a[0] - b[0]);
  const want = W / 2;
  let best = Infinity, x = 0;  // x: the left end of the stretch free so far
  for (const [a, b] of blocked.concat([[Infinity, Infinity]])) {
    if (a >= x) {  // x..a is free
      const near = Math.min(Math.max(want, x), a);
      if (Math.abs(near - want) < Math.abs(best - want)) best = near;
      if (x > want) break;  // every later stretch lies further away
    }
    x = Math.max(x, b);
  }
  return best;
}
function holdFrom(u, units, row, blocks) {
  // The first row of the column unit u holds in its container (see pack): from just
  // below the nearest unit it reads that reads something itself, if that is not next.
  const l = row.get(u.key), c = containerOf(u), floor = c >= 0 ? blocks.get(c).lo : -Infinity;
  let near = -Infinity;
  u.ins.forEach(p => { if (units.get(p).ins.length) near = Math.max(near, row.get(p)); });
  return near > -Infinity && near + 1 < l ? Math.max(floor, near + 1) : l;
}
function place(units, row, blocks, columns) {
  // Expanded scopes are packed innermost first into blocks, so that a module's frame
  // holds its own nodes and nothing else; then the blocks are placed top-down. A frame's
  // content starts far enough right of its title that no edge into its first column
  // crosses the title (siblings share that indent, so that their columns line up).
  const kids = new Map();
  const add = (c, item) => { if (!kids.has(c)) kids.set(c, []); kids.get(c).push(item); };
  units.forEach(u => {  // with the backward pass, a unit and its gradient go as a pair
    const l = row.get(u.key), w = showBackward && u.grad ? 2 * W + PAIR : W;
    add(containerOf(u), {unit: u, lo: l, hi: l, from: holdFrom(u, units, row, blocks), w,
                         first: u.first});
  });
  columns.forEach(col => add(col.container, {column: col, lo: col.lo, hi: col.hi,
                                             from: col.lo, w: showBackward ? PAIR : 0,
                                             first: col.first}));
  const open = [...blocks.keys()];
  let deepest = 0;
  open.forEach(s => { deepest = Math.max(deepest, SCOPES[s].depth); });
  const indent = new Map();  // parent -> the content indent of its child frames
  open.forEach(s => {
    const m = margins(deepest - SCOPES[s].depth), p = SCOPES[s].parent;
    const need = Math.max(m.side, Math.ceil(6 + titleWidth(s) + 8 - W / 2));
    indent.set(p, Math.max(indent.get(p) || 0, need));
  });
  open.sort((a, b) => SCOPES[b].depth - SCOPES[a].depth).forEach(s => {
    const m = margins(deepest - SCOPES[s].depth), inner = pack(kids.get(s) || []);
    const left = indent.get(SCOPES[s].parent), b = blocks.get(s);
    add(SCOPES[s].parent, {block: inner, scope: s, lo: b.lo, hi: b.hi, from: b.lo,
                           w: inner.w + left + m.side, first: inner.first, left, ...m});
  });
  const root = pack(kids.get(-1) || []);
  const xs = new Map(), frames = [], stack = [[root.items, 0]];
  while (stack.length) {
    const [items, base] = stack.pop();
    items.forEach(it => {
      const x = base + it.x;
      if (it.unit) { xs.set(it.unit.key, x); return; }
      if (it.column) { it.column.x = x; return; }
      frames.push({scope: it.scope, x, w: it.w, lo: it.lo, hi: it.hi, top: it.top,
                   side: it.side});
      stack.push([it.block.items, x + it.left]);
    });
  }
  const gap = open.length ? Math.max(GY, 38 + 20 * deepest) : GY;
  return {xs, frames, gap};
}
function chainOf(u) {  // the scopes around unit u, innermost first, then the top (-1)
  const chain = [];
  for (let c = containerOf(u); c >= 0; c = SCOPES[c].parent) chain.push(c);
  chain.push(-1);
  return chain;
}
function spanParts(t, u, lo, hi, blocks) {
  // Rows lo..hi, between unit t (above) and unit u (below), split by the container an
  // edge between them crosses each in, top-down: [[container, first row, last row]].
  // Rows inside a scope around u (not around t) belong to the innermost such scope that
  // has begun; else rows inside a scope around t, to the innermost not yet ended; the
  // rest to the innermost scope around both. So the edge leaves t's frames, runs in the
  // common one beside everything between, and enters u's frames.
  const up = chainOf(t), down = chainOf(u);
  const common = up.find(c => down.includes(c));
  const tSide = up.slice(0, up.indexOf(common)), uSide = down.slice(0, down.indexOf(common));
  const parts = [];
  const push = (c, a, b) => {
    a = Math.max(a, lo); b = Math.min(b, hi);
    if (a <= b) parts.push([c, a, b]);
  };
  const split = uSide.length ? blocks.get(uSide[uSide.length - 1]).lo : hi + 1;
  let r = lo;
  tSide.forEach(s => {
    const end = Math.min(blocks.get(s).hi, split - 1);
    push(s, r, end);
    r = Math.max(r, end + 1);
  });
  push(common, r, split - 1);
  for (let i = uSide.length - 1; i >= 0; i--) {
    push(uSide[i], blocks.get(uSide[i]).lo, i > 0 ? blocks.get(uSide[i - 1]).lo - 1 : hi);
  }
  return parts;
}
function longEdges(units, edges, row, blocks) {
  // Sugiyama's virtual nodes: an edge across rows that hold other boxes (a tied weight
  // read again layers later) runs through a column of its own in each of them, which
  // place() packs beside the boxes there as it packs a node, so the edge never crosses
  // a box it does not join. One column per source and container, shared by its edges
  // (they bundle into one line), so the work grows with the rows spanned, not with
  // edges times rows.
  const columns = new Map(), routes = new Map();
  edges.forEach(([a, b]) => {
    const ra = row.get(a), rb = row.get(b);
    if (Math.abs(ra - rb) < 2) return;  // next rows: the edge stays in the gap between
    const [t, u] = ra < rb ? [a, b] : [b, a];
    const parts = spanParts(units.get(t), units.get(u), Math.min(ra, rb) + 1,
                            Math.max(ra, rb) - 1, blocks);
    // Below a, b keeps its own column free in its container's rows from holdFrom on
    // (the existing straight run down into b): the edge takes that, not a new one.
    const hold = ra < rb ? holdFrom(units.get(b), units, row, blocks) : Infinity;
    const last = parts[parts.length - 1], held = [];
    if (last && last[0] === containerOf(units.get(b)) && hold <= last[2]) {
      held.push([{unit: b}, Math.max(last[1], hold), last[2]]);
      if (hold > last[1]) last[2] = hold - 1; else parts.pop();
    }
    routes.set(a + ">" + b, parts.map(([c, r0, r1]) => {
      const key = a + "|" + c;
      let col = columns.get(key);
      if (!col) columns.set(key, col = {container: c, lo: r0, hi: r1, first: units.get(a).first});
      col.lo = Math.min(col.lo, r0); col.hi = Math.max(col.hi, r1);
      return [col, r0, r1];
    }).concat(held));
  });
  return {columns, routes};
}
function layout() {
  const {units, edges, gradEdges} = buildUnits();
  const {row, blocks} = assignRows(units);
  const {columns, routes} = longEdges(units, edges, row, blocks);
  const {xs, frames, gap} = place(units, row, blocks, columns);
  const pos = new Map(), y = l => l * (H + gap);
  units.forEach(u => pos.set(u.key, [xs.get(u.key), y(row.get(u.key))]));
  units.forEach(u => {  // each gradient just right of its forward node
    if (u.grad) { const [x, top] = pos.get(u.key); pos.set("b" + u.key, [x + W + PAIR, top]); }
  });
  frames.forEach(f => { f.y0 = y(f.lo) - f.top; f.y1 = y(f.hi) + H + f.side; });
  return {units, edges, gradEdges, pos, frames, routes, y};
}

// --- drawing ---------------------------------------------------------------------------
const elements = new Map();
function el(tag, attrs, parent) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
function ends(p, q, up) {
  const x1 = p[0] + W / 2, x2 = q[0] + W / 2;
  return {x1, x2, y1: up ? p[1] : p[1] + H, y2: up ? q[1] + H : q[1], bend: up ? -GY / 2 : GY / 2};
}
function pieces(p, q, route, shift, up) {
  // An edge from the box at p to the box at q as curves that each run one way in y:
  // the one curve of ends() between boxes in rows next to each other; else down (or up)
  // its route's columns, straight through each row (in the gap the column keeps free)
  // and in an S between rows, where no box is.
  if (!route) return [ends(p, q, up)];
  const down = q[1] > p[1], y = current.y, out = [];
  let x = p[0] + W / 2, at = down ? p[1] + H : p[1];
  const to = (x2, y2) => {
    out.push({x1: x, y1: at, x2, y2, bend: (y2 - at) / 2});
    x = x2; at = y2;
  };
  (down ? route : route.slice().reverse()).forEach(([col, r0, r1]) => {
    // a column of its own, or the one its end holds (the gradient's half of it: shifted)
    const cx = col.unit ? current.pos.get(col.unit)[0] + W / 2 + (shift ? W + PAIR : 0)
                        : col.x + shift;
    const top = y(r0), bottom = y(r1) + H;
    to(cx, down ? top : bottom);
    to(cx, down ? bottom : top);
  });
  to(q[0] + W / 2, down ? q[1] : q[1] + H);
  return out;
}
function path(parts) {
  return `M${parts[0].x1},${parts[0].y1}` + parts.map(c => ` C${c.x1},${c.y1 + c.bend} ` +
    `${c.x2},${c.y2 - c.bend} ${c.x2},${c.y2}`).join("");
}
function curveX(c, y) {
  // The x where curve c (as path() draws it: y moves one way from end to end) is at y.
  const at = (a, b, e, f, t) => {
    const u = 1 - t;
    return u * u * u * a + 3 * u * u * t * b + 3 * u * t * t * e + t * t * t * f;
  };
  let lo = 0, hi = 1;
  const up = c.y2 < c.y1;
  for (let i = 0; i < 24; i++) {
    const t = (lo + hi) / 2, yt = at(c.y1, c.y1 + c.bend, c.y2 - c.bend, c.y2, t);
    if ((yt < y) !== up) lo = t; else hi = t;
  }
  return at(c.x1, c.x1, c.x2, c.x2, (lo + hi) / 2);
}
function titleSlot(f, width, curves) {
  // Where along the frame's top band its title goes: the leftmost stretch wide enough
  // that no edge crosses it; else at the left (its halo breaks the edges it crosses).
  const band0 = f.y0 + 2, band1 = f.y0 + 17, left = f.x + 6, right = f.x + f.w - 6;
  const blocked = [];
  curves.forEach(c => {
    if (Math.max(c.y1, c.y2) <= band0 || Math.min(c.y1, c.y2) >= band1) return;
    if (Math.max(c.x1, c.x2) < left - 6 || Math.min(c.x1, c.x2) > right + 6) return;
    const ya = Math.max(band0, Math.min(c.y1, c.y2)), yb = Math.min(band1, Math.max(c.y1, c.y2));
    const xa = curveX(c, ya), xb = curveX(c, yb);
    blocked.push([Math.min(xa, xb) - 5, Math.max(xa, xb) + 5]);
  });
  blocked.sort((a, b) => a[0] - b[0]);
  let x = left;
  for (const [a, b] of blocked.concat([[right, Infinity]])) {
    if (Math.min(a, right) - x >= width) return x;
    x = Math.max(x, b);
    if (x >= right) break;
  }
  return left;
}
function drawFrames(frames, curves, parent) {
  // curves: the edges drawn, by their ends; a frame's title keeps clear of them.
  const byDepth = frames.slice().sort((a, b) => SCOPES[a.scope].depth - SCOPES[b.scope].depth);
  byDepth.forEach(f => {
    const g = el("g", {class: "frame", "data-scope": f.scope}, parent);
    el("rect", {x: f.x, y: f.y0, width: f.w, height: f.y1 - f.y0}, g);
    const label = frameTitle(f.scope), full = measure.measureText(label).width;
    const room = f.w - 12, t = el("text", {x: titleSlot(f, Math.min(full, room), curves),
                                           y: f.y0 + 13}, g);
    t.textContent = room >= full ? label : clip(label, Math.max(3, Math.floor(
      label.length * room / full)));
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
    // (measured in the frames' bold font: wider than a box's, so a name fits either way)
    const room = W - 16 - (backward ? measure.measureText("grad of ").width : 0);
    const name = n.name ? fitName(n.title, backward ? 18 : 26, room) : n.title;
    g = nodeBox(key, classes, (backward ? "grad of " : "") + name, spec(n), parent, p);
    g.addEventListener("click", ev => { ev.stopPropagation(); select(key); });
  }
  const bad = backward ? u.members.some(n => nonfinite(n.grad_stats)) : u.bad;
  if (bad) g.classList.add("nonfinite");
  else if (u.zero) g.classList.add("zerograd");
}
function render() {
  const t0 = performance.now();
  current = layout();
  const {units, edges, gradEdges, pos, frames, routes} = current;
  view.textContent = "";
  elements.clear();
  const back = el("g", {}, view), lines = el("g", {}, view), boxes = el("g", {}, view);
  const curves = [];
  const draw = (parts, cls) => {
    curves.push(...parts);
    el("path", {class: cls, d: path(parts)}, lines);
  };
  edges.forEach(([a, b]) => draw(pieces(pos.get(a), pos.get(b), routes.get(a + ">" + b), 0,
                                        false), "edge"));
  units.forEach(u => drawUnit(u, pos, boxes, false));
  if (showBackward) {
    gradEdges.forEach(([a, b]) => {  // beside the forward edge, in the same columns
      draw(pieces(pos.get("b" + a), pos.get("b" + b), routes.get(b + ">" + a), PAIR, true),
           "edge grad");
    });
    units.forEach(u => {
      if (!u.grad) return;
      const [x, y] = pos.get(u.key);
      el("path", {class: "tie", d: `M${x + W},${y + H / 2} h${PAIR}`}, lines);
      drawUnit(u, pos, boxes, true);
    });
  }
  drawFrames(frames, curves, back);
  // The extent of what is drawn, from the layout (getBBox would lay out every element
  // at once: a second on 10,000 nodes); edges stay between the boxes they join.
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  const extend = (ax, ay, bx, by) => {
    x0 = Math.min(x0, ax); y0 = Math.min(y0, ay); x1 = Math.max(x1, bx); y1 = Math.max(y1, by);
  };
  units.forEach(u => {
    const [x, y] = pos.get(u.key);
    extend(x, y, x + (showBackward && u.grad ? 2 * W + PAIR : W), y + H);
  });
  frames.forEach(f => extend(f.x, f.y0, f.x + f.w, f.y1));
  curves.forEach(c => extend(Math.min(c.x1, c.x2), Math.min(c.y1, c.y2),
                             Math.max(c.x1, c.x2), Math.max(c.y1, c.y2)));
  current.box = units.size ? {x: x0, y: y0, width: x1 - x0, height: y1 - y0}
                           : {x: 0, y: 0, width: 0, height: 0};
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
  // Fit the graph to the window where it stays readable; else keep the scope that was
  // clicked where it was on the screen.
  const before = where(s);
  render();
  if (fit(MIN_AUTO_SCALE)) return;
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
      const place = n.input_index !== null ? "arg" + n.input_index : "";  // as str(g)
      const text = normalise([n.op, n.title, place, spec(n), n.site, scope].join(" "));
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
    (n.name ? row(n.requires_grad && n.input_index === null ? "parameter" : "name",
                  esc(n.name)) : "") +
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
  autoFit();
});
document.getElementById("expand-all").addEventListener("click", () => {
  collapsed.clear(); render(); autoFit(); });
document.getElementById("collapse-all").addEventListener("click", () => {
  SCOPES.forEach((s, i) => collapsed.add(i)); render(); autoFit(); });
document.getElementById("fit").addEventListener("click", () => fit(0));
let scale = 1, tx = 20, ty = 20, drag = null;
function apply() { view.setAttribute("transform", `translate(${tx},${ty}) scale(${scale})`); }
// --- fitting the view: the whole graph in the window, at most at full size -----------
const MIN_AUTO_SCALE = 0.5;  // below this, text is too small to read: no automatic fit
// The canvas's size, read while nothing new waits to be laid out (reading it just after
// a render would lay out every element there and then).
let canvasSize = [svg.clientWidth, svg.clientHeight];
new ResizeObserver(() => { canvasSize = [svg.clientWidth, svg.clientHeight]; }).observe(svg);
function fit(least) {
  // Shows the whole graph, centred, if that needs a scale of at least `least` (the fit
  // button: 0); says whether it did.
  const box = current.box, pad = 20;
  const [cw, ch] = canvasSize;
  const s = Math.min(1, (cw - 2 * pad) / Math.max(box.width, 1),
                     (ch - 2 * pad) / Math.max(box.height, 1));
  if (!(s >= least) || s <= 0) return false;
  scale = s;
  tx = (cw - box.width * s) / 2 - box.x * s;
  ty = (ch - box.height * s) / 2 - box.y * s;
  apply();
  return true;
}
function autoFit() {
  // After the set of boxes shown changes: the whole graph where it stays readable; else
  // its top-left corner, shrunk (not below MIN_AUTO_SCALE) so that its width fits.
  if (fit(MIN_AUTO_SCALE)) return;
  const box = current.box;
  scale = Math.max(MIN_AUTO_SCALE, Math.min(1, (canvasSize[0] - 40) / Math.max(box.width, 1)));
  tx = 20 - box.x * scale; ty = 20 - box.y * scale;
  apply();
}
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
autoFit();
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
    page = _PAGE.replace("__TITLE__", html.escape(str(title))).replace("__DATA__", data)
    if path is not None:
        write_text(path, page, encoding="utf-8")  # whole or not at all
    return Text(page, "HTML page", path)
