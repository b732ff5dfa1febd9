// Subscriptions and triggers: conditions, sink (secrets already hidden by the API), recent
// deliveries, and dead letters with a retry button (admins).
import { api, enc, h, num, stateBadge, table, time } from '../lib.js';

const RECENT = 10;

function conditionText(c) {
  const parts = [];
  if (c.interval_seconds !== undefined) parts.push(`at most every ${c.interval_seconds} s`);
  if (c.min_files !== undefined) parts.push(`≥ ${c.min_files} files`);
  if (c.min_bytes !== undefined) parts.push(`≥ ${c.min_bytes} bytes`);
  if (c.min_records !== undefined) parts.push(`≥ ${c.min_records} records`);
  if (c.max_delay_seconds !== undefined) parts.push(`at most ${c.max_delay_seconds} s of delay`);
  return parts.length ? parts.join(', ') : 'on every change';
}

function sinkText(sink) {
  return Object.entries(sink).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ');
}

function triggerRow(t, ctx, extra) {
  return h('tr', { 'data-trigger': t.id, 'data-state': t.state },
    h('td', { class: 'mono' }, t.id), h('td', {}, stateBadge(t.state)), h('td', { class: 'mono' }, t.batch_id),
    h('td', { class: 'num' }, num(t.attempts)), h('td', { class: 'hide-narrow' }, time(t.delivered_at ?? t.created_at)),
    h('td', { class: 'wrap' }, t.last_error ?? t.outcome ?? '–'), extra ?? h('td', {}, ''));
}

async function retry(ctx, id, button) {
  button.disabled = true;
  try {
    await api(`/v1/triggers/${enc(id)}/retry`, { method: 'POST' });
    ctx.state.flash = `trigger ${id} is pending again`;
  } catch (e) {
    ctx.state.flash = `retry of ${id} failed: ${e.message}`;
  }
  ctx.refresh();
}

/** Subscriptions whose latest triggers are read on every refresh without being asked for. */
const AUTO_RECENT = 10;

export async function render(ctx) {
  // The counts come with the overview (one read); the trigger lists only where they matter, so a
  // page of many subscriptions does not cost a request per subscription per refresh.
  const [{ subscriptions }, overview] = await Promise.all([
    api('/v1/subscriptions', { signal: ctx.signal }),
    api('/v1/overview', { signal: ctx.signal }),
  ]);
  const counts = new Map(overview.consumers.flatMap((c) => c.subscriptions.map((x) => [x.name, x])));
  const shown = ctx.state.shown ??= new Set();
  const cards = await Promise.all(subscriptions.map(async (s, i) => {
    const n = counts.get(s.name) ?? { pending: 0, dead: 0, delivered: 0 };
    const wantRecent = i < AUTO_RECENT || shown.has(s.name);
    const [recent, dead] = await Promise.all([
      wantRecent ? api(`/v1/subscriptions/${enc(s.name)}/triggers?order=newest&limit=${RECENT}`, { signal: ctx.signal }) : null,
      n.dead > 0 ? api(`/v1/subscriptions/${enc(s.name)}/triggers?state=dead&limit=100`, { signal: ctx.signal }) : { triggers: [] },
    ]);
    const heads = ['trigger', 'state', 'batch', { label: 'attempts', attrs: { class: 'num' } }, { label: 'at', attrs: { class: 'hide-narrow' } }, 'outcome / last error', ''];
    return h('div', { class: 'card', 'data-subscription': s.name },
      h('h2', {}, s.name, ' ', h('span', { class: `badge ${s.enabled ? 'st-committed' : 'st-cancelled'}` }, s.enabled ? 'enabled' : 'disabled')),
      h('dl', { class: 'kv' },
        h('dt', {}, 'consumer'), h('dd', {}, h('a', { href: `#/consumers/${enc(s.consumer)}` }, s.consumer)),
        h('dt', {}, 'tables'), h('dd', {}, s.tables.join(', ')),
        h('dt', {}, 'condition'), h('dd', {}, conditionText(s.condition)),
        h('dt', {}, 'sink'), h('dd', { class: 'mono', 'data-testid': 'sink' }, sinkText(s.sink)),
        h('dt', {}, 'fired'), h('dd', {}, `${num(s.fired)} batches, last ${time(s.last_fired_at)}`),
        s.last_error ? [h('dt', {}, 'last error'), h('dd', { class: 'err' }, s.last_error)] : null),
      h('h3', {}, `Dead letters (${dead.triggers.length})`),
      dead.triggers.length
        ? table(heads, dead.triggers.map((t) => triggerRow(t, ctx, h('td', {}, ctx.viewer?.admin
          ? h('button', { 'data-retry': t.id, onclick: (e) => retry(ctx, t.id, e.currentTarget) }, 'Retry')
          : h('span', { class: 'muted' }, 'an admin can retry')))), { attrs: { 'data-testid': 'dead' } })
        : h('p', { class: 'none' }, 'none'),
      h('h3', {}, `Latest triggers (${num(n.delivered)} delivered, ${num(n.pending)} pending)`),
      recent
        ? table(heads, recent.triggers.map((t) => triggerRow(t, ctx)), { empty: 'none yet', attrs: { 'data-testid': 'recent' } })
        : h('button', { class: 'secondary', onclick: () => { shown.add(s.name); ctx.refresh(); } }, 'Show the latest triggers'));
  }));
  const flash = ctx.state.flash;
  return h('div', { 'data-view': 'subscriptions' },
    h('h1', {}, 'Subscriptions and triggers'),
    flash ? h('p', { class: 'card', role: 'status' }, flash) : null,
    subscriptions.length ? cards : h('p', { class: 'muted' }, 'No subscriptions.'));
}

