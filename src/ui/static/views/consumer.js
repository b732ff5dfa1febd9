// Consumer: state and watermark per table, lag over time (uPlot), watermark history, batches
// with their ranges, changed partitions, files and ICDC table, and how to read it.
import uPlot from '../vendor/uPlot.esm.js';
import { ago, api, bytes, duration, enc, errorBox, h, healthDot, num, stateBadge, table, time } from '../lib.js';

const BATCHES = 30;
const FILES_SHOWN = 100;
const DETAILS_KEPT = 20;

export function pyicebergSnippet(icdc) {
  return [
    'from pyiceberg.table import StaticTable',
    '',
    `icdc = StaticTable.from_metadata("${icdc.metadata_location}")`,
    `rows = icdc.scan(snapshot_id=${icdc.snapshot_id}).to_arrow()`,
  ].join('\n');
}

export function sparkSnippet(icdc) {
  return [
    'df = (spark.read.format("iceberg")',
    `      .option("snapshot-id", "${icdc.snapshot_id}")`,
    `      .load("${icdc.metadata_location}"))`,
    `# or by name: CALL <catalog>.system.register_table(table => '${icdc.table}', metadata_file => '${icdc.metadata_location}')`,
  ].join('\n');
}

function rangesText(ranges) {
  const entries = Object.entries(ranges ?? {});
  if (!entries.length) return '–';
  return entries.map(([f, r]) => `${f}: ${r.min ?? '?'} … ${r.max ?? '?'} (${r.flag})`).join('; ');
}

function partitionsText(parts) {
  if (!parts?.length) return '–';
  const shown = parts.slice(0, 6).map((p) => (typeof p === 'string' ? p : p?.name ?? JSON.stringify(p)));
  return `${shown.join(', ')}${parts.length > 6 ? ` … (${parts.length} in all)` : ''}`;
}

function batchDetail(b) {
  return h('div', { class: 'card', 'data-batch-detail': b.id },
    b.tables.map((t) => h('div', {},
      h('h3', {}, `${t.table}: snapshots ${t.from_snapshot_id ?? 'start'} → ${t.to_snapshot_id}`),
      h('dl', { class: 'kv' },
        h('dt', {}, 'ranges'), h('dd', {}, rangesText(t.ranges)),
        h('dt', {}, 'changed partitions'), h('dd', {}, partitionsText(t.changed_partitions)),
        h('dt', {}, 'ICDC table'), h('dd', { class: 'mono' }, t.icdc ? `${t.icdc.table} @ ${t.icdc.snapshot_id}` : '–')),
      t.icdc ? [
        h('h3', {}, 'Read it with PyIceberg'), h('pre', { 'data-snippet': 'pyiceberg' }, pyicebergSnippet(t.icdc)),
        h('h3', {}, 'Read it with Spark'), h('pre', { 'data-snippet': 'spark' }, sparkSnippet(t.icdc)),
      ] : null,
      h('h3', {}, `Files (${t.files.added.length} added, ${t.files.removed.length} removed)`),
      table(['', 'path', { label: 'records', attrs: { class: 'num' } }, { label: 'bytes', attrs: { class: 'num' } }],
        [...t.files.added.map((f) => ['+', f]), ...t.files.removed.map((f) => ['−', f])].slice(0, FILES_SHOWN).map(([sign, f]) =>
          h('tr', {}, h('td', {}, sign), h('td', { class: 'mono wrap' }, f.file_path ?? f.path ?? JSON.stringify(f)),
            h('td', { class: 'num' }, num(f.record_count)), h('td', { class: 'num' }, bytes(f.file_size_in_bytes))))),
      t.files.added.length + t.files.removed.length > FILES_SHOWN ? h('p', { class: 'muted' }, `first ${FILES_SHOWN} shown; GET /v1/batches/${b.id} lists all`) : null)));
}

function lagChart(ctx, t) {
  const key = `chart:${t.table}`;
  const xs = t.lag.map((p) => Date.parse(p.at) / 1000);
  const data = [xs, t.lag.map((p) => p.snapshots), t.lag.map((p) => p.seconds / 60)];
  const width = Math.max(260, Math.min(1200, (document.getElementById('main')?.clientWidth ?? 800) - 40));
  let c = ctx.state[key];
  if (!c) {
    const el = h('div', { class: 'chart', 'data-chart': t.table });
    const u = new uPlot({
      width, height: 220,
      // The window is a day; start the x axis shortly before the first change in it, not at a day of flat zero.
      scales: { x: { time: true, range: (u, min, max) => [Math.max(min, (u.data[0][1] ?? min) - Math.max(5, ((max - (u.data[0][1] ?? min)) * 0.05))), max] }, min: { auto: true } },
      series: [{}, { label: 'snapshots behind', stroke: '#2f5fd0', width: 2, paths: uPlot.paths.stepped({ align: 1 }) },
        { label: 'minutes behind', stroke: '#d68b00', width: 1.5, scale: 'min' }],
      axes: [{}, { label: 'snapshots' }, { side: 1, scale: 'min', label: 'minutes', grid: { show: false } }],
    }, data, el);
    c = ctx.state[key] = { el, u };
  } else {
    c.u.setData(data);
    if (Math.abs(c.u.width - width) > 4) c.u.setSize({ width, height: 220 });
  }
  return c.el;
}

export async function render(ctx) {
  const name = ctx.params[0];
  const [c, hist, batches] = await Promise.all([
    api(`/v1/consumers/${enc(name)}`, { signal: ctx.signal }),
    api(`/v1/consumers/${enc(name)}/history?window_seconds=${ctx.state.window ?? 86400}`, { signal: ctx.signal }),
    api(`/v1/consumers/${enc(name)}/batches?order=newest&limit=${BATCHES}&include_files=false`, { signal: ctx.signal }),
  ]);
  const details = ctx.state.details ??= new Map();
  const open = ctx.state.open ??= new Set();
  // Details of the open rows (a batch's files can be many: fetched only when opened).
  for (const id of open) {
    if (!details.has(id)) {
      try { details.set(id, await api(`/v1/batches/${enc(id)}`, { signal: ctx.signal })); } catch (e) { details.set(id, { error: e }); }
      while (details.size > DETAILS_KEPT) details.delete(details.keys().next().value);
    }
  }
  const toggle = (id) => { if (open.has(id)) open.delete(id); else open.add(id); ctx.refresh(); };
  const rows = [];
  for (const b of batches.batches) {
    const t = b.tables[0];
    rows.push(h('tr', { 'data-batch': b.id },
      h('td', {}, h('button', { class: 'secondary', 'aria-expanded': String(open.has(b.id)), onclick: () => toggle(b.id) }, open.has(b.id) ? '−' : '+'), ' ', h('span', { class: 'mono' }, b.id)),
      h('td', {}, stateBadge(b.state)),
      h('td', { class: 'hide-narrow' }, time(b.created_at)),
      h('td', { class: 'mono wrap' }, b.tables.map((x) => `${x.table}: ${x.from_snapshot_id ?? 'start'} → ${x.to_snapshot_id}`).join('; ')),
      h('td', { class: 'num' }, num(b.tables.reduce((n, x) => n + x.file_count, 0))),
      h('td', { class: 'num' }, t ? num(t.record_count) : '–'),
      h('td', { class: 'hide-narrow wrap' }, t ? rangesText(t.ranges) : '–'),
      h('td', { class: 'hide-narrow wrap' }, t ? partitionsText(t.changed_partitions) : '–'),
      h('td', { class: 'mono hide-narrow wrap' }, t?.icdc ? t.icdc.table : '–')));
    if (open.has(b.id)) {
      const d = details.get(b.id);
      rows.push(h('tr', {}, h('td', { colspan: 9 }, d?.error ? errorBox(d.error) : d ? batchDetail(d) : 'loading…')));
    }
  }
  const lagOf = (tableName) => hist.tables.find((x) => x.table === tableName);
  return h('div', { 'data-view': 'consumer', 'data-consumer': c.name },
    h('h1', {}, healthDot(c.state === 'active' ? 'ok' : 'error'), `Consumer ${c.name}`),
    h('dl', { class: 'kv card' },
      h('dt', {}, 'state'), h('dd', {}, c.state, c.state_reason ? ` — ${c.state_reason}` : ''),
      c.description ? [h('dt', {}, 'description'), h('dd', {}, c.description)] : null,
      h('dt', {}, 'policy'), h('dd', {}, `overwrite ${c.policy.overwrite}, delete ${c.policy.delete}`),
      h('dt', {}, 'outputs'), h('dd', {}, c.outputs.length ? c.outputs.join(', ') : '–'),
      h('dt', {}, 'open batches'), h('dd', {}, c.open_batches.length ? c.open_batches.map((b) => `#${b.id} (lease until ${time(b.lease_expires_at)})`).join(', ') : 'none')),
    h('h2', {}, 'Watermarks and lag'),
    c.tables.map((w) => {
      const hst = lagOf(w.table);
      const last = hst?.lag[hst.lag.length - 1];
      return h('div', { class: 'card', 'data-watermark': w.table },
        h('h3', {}, w.table),
        h('dl', { class: 'kv' },
          h('dt', {}, 'watermark'), h('dd', { class: 'mono' }, w.snapshot_id ?? 'start', w.partial_snapshot_id ? ` (+ part of ${w.partial_snapshot_id})` : ''),
          h('dt', {}, 'range fields'), h('dd', {}, w.range_fields.length ? w.range_fields.join(', ') : '–'),
          h('dt', {}, 'behind now'), h('dd', {}, last ? `${num(last.snapshots)} snapshots, ${num(last.files)} files, ${bytes(last.bytes)}, ${num(last.records)} records, ${duration(last.seconds)}` : '–'),
          h('dt', {}, 'last move'), h('dd', {}, ago(w.updated_at))),
        hst?.error ? errorBox({ message: `${hst.error.code}: ${hst.error.message}` }) : null,
        hst && hst.lag.length ? [h('h3', {}, 'Lag over the last 24 h'), lagChart(ctx, hst)] : null,
        hst ? [h('h3', {}, 'Watermark history'), table(['moved', 'reason', { label: 'by', attrs: { class: 'hide-narrow' } }, 'batch', 'to snapshot'],
          hst.watermark_moves.slice(0, 15).map((m) => h('tr', {},
            h('td', {}, time(m.moved_at)), h('td', {}, m.reason), h('td', { class: 'hide-narrow wrap' }, m.actor),
            h('td', { class: 'mono' }, m.batch_id ?? '–'), h('td', { class: 'mono wrap' }, m.to_snapshot_id ?? 'start', m.to_partial_snapshot_id ? ` (+ part of ${m.to_partial_snapshot_id})` : ''))),
          { attrs: { 'data-testid': 'watermark-history' } })] : null);
    }),
    h('h2', {}, `Batches (latest ${BATCHES})`),
    table(['batch', 'state', { label: 'created', attrs: { class: 'hide-narrow' } }, 'snapshots (from, to]', { label: 'files', attrs: { class: 'num' } }, { label: 'records', attrs: { class: 'num' } },
      { label: 'ranges', attrs: { class: 'hide-narrow' } }, { label: 'changed partitions', attrs: { class: 'hide-narrow' } }, { label: 'ICDC table', attrs: { class: 'hide-narrow' } }],
    rows, { empty: 'no batches yet', attrs: { 'data-testid': 'batches' } }),
    h('p', { class: 'muted' }, `as of ${new Date().toLocaleTimeString()}`));
}
