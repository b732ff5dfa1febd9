// Backfills: the list, and per backfill a grid of chunk states per stage that updates live,
// with pause, resume, cancel and retry (admins).
import { api, bytes, duration, enc, h, num, stateBadge, table, time } from '../lib.js';

// Chunk states (stage 0) and, downstream, whether each stage has processed the chunk's output.
const STATES = ['pending', 'running', 'committed', 'failed', 'cancelled', 'waiting', 'propagated', 'blocked', 'no-output', 'unknown'];

function legend() {
  return h('div', { class: 'legend' }, STATES.map((s) => h('span', {}, h('i', { class: `st-${s}` }), s)));
}

async function control(ctx, name, action, button) {
  button.disabled = true;
  try {
    await api(`/v1/backfills/${enc(name)}/${action}`, { method: 'POST' });
    ctx.state.flash = `${action}: done`;
  } catch (e) {
    ctx.state.flash = `${action} failed: ${e.message}`;
  }
  ctx.refresh();
}

function grid(chunks, label) {
  return h('div', { class: 'grid', 'data-stage': label },
    chunks.map((c) => h('div', {
      class: `cell st-${c.state}`, 'data-chunk': c.index, 'data-state': c.state,
      title: `chunk ${c.index}: ${c.state}${c.range ? ` — ${typeof c.range === 'string' ? c.range : JSON.stringify(c.range)}` : ''}${c.attempts ? `, ${c.attempts} attempt(s)` : ''}${c.error ? ` — ${c.error}` : ''}${c.reason ? ` — ${c.reason}` : ''}`,
    }, String(c.index))));
}

async function detail(ctx, name) {
  const b = await api(`/v1/backfills/${enc(name)}`, { signal: ctx.signal });
  const admin = ctx.viewer?.admin;
  const flash = ctx.state.flash;
  const t = b.totals;
  return h('div', { 'data-view': 'backfill', 'data-backfill': b.name },
    h('h1', {}, `Backfill ${b.name} `, stateBadge(b.status)),
    flash ? h('p', { class: 'card', role: 'status' }, flash) : null,
    admin ? h('div', { class: 'actions' },
      ['pause', 'resume', 'cancel', 'retry'].map((a) => h('button', { class: a === 'cancel' ? 'secondary' : '', 'data-action': a, onclick: (e) => control(ctx, b.name, a, e.currentTarget) }, a[0].toUpperCase() + a.slice(1)))) : null,
    h('dl', { class: 'kv card' },
      h('dt', {}, 'consumer'), h('dd', {}, h('a', { href: `#/consumers/${enc(b.consumer)}` }, b.consumer), ` on ${b.table}`),
      h('dt', {}, 'range'), h('dd', { class: 'mono wrap' }, b.spec ? JSON.stringify(b.spec) : '–'),
      h('dt', {}, 'chunks'), h('dd', {}, `${num(t.chunks)} (${Object.entries(t.by_state).map(([k, v]) => `${v} ${k}`).join(', ')})`),
      h('dt', {}, 'data'), h('dd', {}, `${num(t.files)} files, ${num(t.records)} records, ${bytes(t.bytes)}; committed ${num(t.committed_records)} records`),
      h('dt', {}, 'throughput'), h('dd', {}, b.throughput.records_per_second ? `${num(Math.round(b.throughput.records_per_second))} records/s, ETA ${duration(b.throughput.eta_seconds)}` : '–'),
      h('dt', {}, 'created'), h('dd', {}, `${time(b.created_at)} by ${b.created_by}`)),
    h('h2', {}, 'Chunks per stage'),
    legend(),
    h('h3', {}, `stage 0: ${b.consumer}`),
    grid(b.chunks, 'own'),
    b.stages.filter((s) => s.depth > 0).map((s) => [
      h('h3', {}, `stage ${s.depth}: ${s.consumer}${s.table ? ` (reads ${s.table})` : ''}${s.blocked ? ` — blocked: ${s.blocked}` : ''}`),
      grid(s.chunks, s.consumer)]),
    h('h2', {}, 'Chunks'),
    table(['chunk', 'state', 'range', { label: 'files', attrs: { class: 'num' } }, { label: 'records', attrs: { class: 'num' } }, { label: 'attempts', attrs: { class: 'num hide-narrow' } }, { label: 'batch', attrs: { class: 'hide-narrow' } }, 'error'],
      b.chunks.map((c) => h('tr', { 'data-chunk-row': c.index },
        h('td', {}, String(c.index)), h('td', {}, stateBadge(c.state)), h('td', { class: 'mono wrap' }, typeof c.range === 'string' ? c.range : JSON.stringify(c.range)),
        h('td', { class: 'num' }, num(c.files)), h('td', { class: 'num' }, num(c.records)), h('td', { class: 'num hide-narrow' }, num(c.attempts)),
        h('td', { class: 'mono hide-narrow' }, c.batch_id ?? '–'), h('td', { class: 'err wrap' }, c.error ?? '')))));
}

export async function render(ctx) {
  if (ctx.params[0]) return detail(ctx, ctx.params[0]);
  const { backfills } = await api('/v1/backfills', { signal: ctx.signal });
  return h('div', { 'data-view': 'backfills' },
    h('h1', {}, 'Backfills'),
    table(['backfill', 'consumer', 'table', 'state', 'chunks', { label: 'created', attrs: { class: 'hide-narrow' } }],
      backfills.map((b) => h('tr', { 'data-backfill': b.name },
        h('td', {}, h('a', { href: `#/backfills/${enc(b.name)}` }, b.name)), h('td', {}, b.consumer), h('td', {}, b.table), h('td', {}, stateBadge(b.state)),
        h('td', {}, `${num(b.chunks)}: ${Object.entries(b.by_state).map(([k, v]) => `${v} ${k}`).join(', ')}`), h('td', { class: 'hide-narrow' }, time(b.created_at)))),
      { empty: 'no backfills' }));
}
