// Lineage: tables and consumers as a layered graph (table → consumer from subscriptions,
// consumer → table from declared outputs), each node coloured by its health. The graph is
// small, so a plain longest-path layering with one barycentre pass lays it out well enough.
import { api, enc, h } from '../lib.js';

const NODE_W = 236;
const NODE_H = 34;
const COL_GAP = 70;
const ROW_GAP = 18;
const PAD = 16;

/** Nodes and edges from the overview: ids are "t:<table>" and "c:<consumer>". */
export function graphOf(o) {
  const nodes = new Map();
  const edges = [];
  const health = new Map(o.tables.map((t) => [t.name, t.load_error ? 'error' : 'ok']));
  const table = (name) => { if (!nodes.has(`t:${name}`)) nodes.set(`t:${name}`, { id: `t:${name}`, kind: 'table', name, health: health.get(name) ?? 'idle' }); };
  for (const t of o.tables) table(t.name);
  for (const c of o.consumers) {
    nodes.set(`c:${c.name}`, { id: `c:${c.name}`, kind: 'consumer', name: c.name, health: c.health });
    for (const t of c.inputs) { table(t); edges.push([`t:${t}`, `c:${c.name}`]); }
    for (const t of c.outputs) { table(t); edges.push([`c:${c.name}`, `t:${t}`]); }
  }
  return { nodes: [...nodes.values()], edges };
}

/** Columns by longest path from a source (cycle-safe: a node is ranked at most |nodes| deep). */
export function layout(g) {
  const preds = new Map(g.nodes.map((n) => [n.id, []]));
  for (const [a, b] of g.edges) preds.get(b)?.push(a);
  const rank = new Map();
  const rankOf = (id, depth = 0) => {
    if (rank.has(id)) return rank.get(id);
    if (depth > g.nodes.length) return 0;
    const ps = preds.get(id) ?? [];
    const r = ps.length ? 1 + Math.max(...ps.map((p) => rankOf(p, depth + 1))) : 0;
    rank.set(id, r);
    return r;
  };
  for (const n of g.nodes) rankOf(n.id);
  const cols = [];
  for (const n of g.nodes) (cols[rank.get(n.id)] ??= []).push(n);
  const pos = new Map();
  cols.forEach((col, ci) => {
    // Order a column by the mean row of its predecessors, so edges cross less.
    const key = (n) => {
      const ps = (preds.get(n.id) ?? []).map((p) => pos.get(p)?.row).filter((r) => r !== undefined);
      return ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : Number.MAX_SAFE_INTEGER;
    };
    col.sort((a, b) => key(a) - key(b) || a.name.localeCompare(b.name));
    col.forEach((n, row) => pos.set(n.id, { col: ci, row, x: PAD + ci * (NODE_W + COL_GAP), y: PAD + row * (NODE_H + ROW_GAP) }));
  });
  const width = PAD * 2 + Math.max(1, cols.length) * NODE_W + Math.max(0, cols.length - 1) * COL_GAP;
  const height = PAD * 2 + Math.max(1, ...cols.map((c) => c?.length ?? 0)) * (NODE_H + ROW_GAP) - ROW_GAP;
  return { pos, width, height };
}

function label(name) {
  return name.length > 33 ? `${name.slice(0, 32)}…` : name;
}

export async function render(ctx) {
  const o = ctx.prefetched ?? await api('/v1/overview', { signal: ctx.signal });
  const g = graphOf(o);
  const { pos, width, height } = layout(g);
  const edges = g.edges.map(([a, b]) => {
    const p = pos.get(a);
    const q = pos.get(b);
    const x1 = p.x + NODE_W;
    const y1 = p.y + NODE_H / 2;
    const x2 = q.x;
    const y2 = q.y + NODE_H / 2;
    const mx = (x1 + x2) / 2;
    return h('svg:path', { class: 'edge', d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, 'marker-end': 'url(#arrow)', 'data-edge': `${a}->${b}` });
  });
  const nodes = g.nodes.map((n) => {
    const p = pos.get(n.id);
    const body = [
      h('svg:title', {}, `${n.kind} ${n.name}: ${n.health}`),
      h('svg:rect', { x: p.x, y: p.y, width: NODE_W, height: NODE_H }),
      h('svg:text', { x: p.x + NODE_W / 2, y: p.y + NODE_H / 2 + 4, 'text-anchor': 'middle' }, label(n.name)),
    ];
    const attrs = { class: `node ${n.kind} h-${n.health}`, 'data-node': n.id, 'data-health': n.health };
    return n.kind === 'consumer' ? h('svg:a', { ...attrs, href: `#/consumers/${enc(n.name)}` }, body) : h('svg:g', attrs, body);
  });
  const svg = h('svg:svg', { class: 'lineage', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'pipeline graph', style: null },
    h('svg:defs', {}, h('svg:marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' }, h('svg:path', { d: 'M0,0 L10,5 L0,10 z', fill: '#9aa3b2' }))),
    edges, nodes);
  // Wide graphs keep a readable size and scroll inside their box instead of shrinking to nothing.
  svg.setAttribute('width', String(width));
  svg.style.maxWidth = 'none';
  svg.style.minWidth = `${Math.min(width, 600)}px`;
  svg.style.width = `${width}px`;
  return h('div', { 'data-view': 'lineage' },
    h('h1', {}, 'Lineage'),
    h('p', { class: 'muted' }, 'Tables (square) feed the consumers (round) that subscribe to them; consumers feed the tables they declare as outputs. Green: healthy, amber: lag growing or a sink error, red: stale, dead triggers, missing files or a table that cannot be loaded.'),
    h('div', { class: 'scroll', 'data-testid': 'lineage' }, svg));
}
