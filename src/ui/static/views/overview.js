// Overview: problems first, then consumers (worst first) with their lag, then tables.
import { ago, api, bytes, duration, enc, h, healthDot, num, since, stateBadge, table } from '../lib.js';

function problemLink(p) {
  if (p.backfill) return h('a', { href: `#/backfills/${enc(p.backfill)}` }, 'backfill');
  if (p.subscription) return h('a', { href: '#/subscriptions' }, 'subscription');
  if (p.consumer) return h('a', { href: `#/consumers/${enc(p.consumer)}` }, 'consumer');
  return null;
}

export function problemsList(problems) {
  if (!problems.length) return h('p', { class: 'none', 'data-testid': 'no-problems' }, '✓ No problems: every consumer is fresh, every trigger delivered.');
  return h('ul', { class: 'problems', 'data-testid': 'problems' }, problems.map((p) =>
    h('li', { class: `sev-${p.severity}`, 'data-kind': p.kind }, h('strong', {}, p.kind.replace(/_/g, ' ')), ': ', p.message, ' ', problemLink(p))));
}

function lagCells(t) {
  if (!t.lag) return [h('td', { colspan: 5, class: 'err' }, t.lag_error ? `${t.lag_error.code}: ${t.lag_error.message}` : 'unknown')];
  const behind = t.lag.oldest_pending_at ? duration(since(t.lag.oldest_pending_at)) : '0 s';
  return [
    h('td', { class: 'num' }, num(t.lag.snapshots), t.growing_from !== null ? h('span', { class: 'err', title: `was ${t.growing_from}` }, ' ↑') : null),
    h('td', { class: 'num hide-narrow' }, num(t.lag.files)),
    h('td', { class: 'num hide-narrow', title: `${t.lag.bytes} bytes` }, bytes(t.lag.bytes)),
    h('td', { class: 'num' }, num(t.lag.records)),
    h('td', { class: 'num' }, behind),
  ];
}

export function consumersTable(consumers) {
  const rows = [];
  for (const c of consumers) {
    const tables = c.tables.length ? c.tables : [null];
    tables.forEach((t, i) => {
      const first = i === 0;
      const dead = c.subscriptions.reduce((n, s) => n + s.dead, 0);
      const pending = c.subscriptions.reduce((n, s) => n + s.pending, 0);
      const open = c.open_batches[0];
      rows.push(h('tr', { 'data-consumer': c.name },
        h('td', { class: 'nowrap' }, first ? [healthDot(c.health), h('a', { href: `#/consumers/${enc(c.name)}` }, c.name)] : ''),
        h('td', { class: 'hide-narrow' }, first ? h('span', { class: `badge st-${c.state === 'active' ? 'committed' : 'failed'}` }, c.state) : ''),
        h('td', { class: 'wrap' }, t ? t.table : '–'),
        ...(t ? lagCells(t) : [h('td', { colspan: 5, class: 'muted' }, 'no tables')]),
        h('td', { class: 'hide-narrow' }, first && open ? h('span', { title: `batch ${open.id}, instance ${open.instance_id}`, 'data-open-batch': open.id }, `${num(open.files)} files, ${ago(open.created_at)}`) : first ? '–' : ''),
        h('td', { class: 'hide-narrow nowrap' }, first ? (dead ? h('span', { class: 'err' }, `${dead} dead`) : `${num(pending)} pending`) : ''),
        h('td', { class: 'hide-narrow' }, first ? ago(c.last_commit_at) : '')));
    });
  }
  return table(['consumer', { label: 'state', attrs: { class: 'hide-narrow' } }, 'table', { label: 'snapshots', attrs: { class: 'num' } }, { label: 'files', attrs: { class: 'num hide-narrow' } },
    { label: 'bytes', attrs: { class: 'num hide-narrow' } }, { label: 'records', attrs: { class: 'num' } }, { label: 'behind', attrs: { class: 'num' } },
    { label: 'open batch', attrs: { class: 'hide-narrow' } }, { label: 'triggers', attrs: { class: 'hide-narrow' } }, { label: 'last commit', attrs: { class: 'hide-narrow' } }],
  rows, { empty: 'no consumers', attrs: { 'data-testid': 'consumers' } });
}

function tablesTable(tables) {
  return table(['table', 'head snapshot', { label: 'operation', attrs: { class: 'hide-narrow' } }, 'last commit', { label: 'oldest needed', attrs: { class: 'hide-narrow' } }, 'consumers'],
    tables.map((t) => h('tr', { 'data-table': t.name },
      h('td', { class: 'nowrap' }, healthDot(t.load_error ? 'error' : 'ok', t.load_error ? `${t.load_error.code}: ${t.load_error.message}` : 'loads'), t.name,
        t.load_error ? h('div', { class: 'err' }, `${t.load_error.code}: ${t.load_error.message}`) : null),
      h('td', { class: 'mono wrap' }, t.head ? t.head.snapshot_id : '–'),
      h('td', { class: 'hide-narrow' }, t.head?.operation ?? '–'),
      h('td', {}, ago(t.last_commit_at)),
      h('td', { class: 'mono hide-narrow wrap' }, t.oldest_needed ? (t.oldest_needed.full_history ? `all history (${t.oldest_needed.consumer})` : `${t.oldest_needed.snapshot_id} (${t.oldest_needed.backfill ? `backfill ${t.oldest_needed.backfill}` : t.oldest_needed.consumer})`) : '–'),
      h('td', { class: 'wrap' }, t.consumers.map((c, i) => [i ? ', ' : '', h('a', { href: `#/consumers/${enc(c)}` }, c)])))),
  { empty: 'no tables', attrs: { 'data-testid': 'tables' } });
}

/**
 * Rows shown of a long list until asked for all: a fleet has thousands of consumers and tables,
 * and rebuilding that many rows on every poll would make the page crawl. Consumers come worst
 * first, so the ones shown are the ones that need a look.
 */
export const SHOWN_ROWS = 200;

/** The first SHOWN_ROWS of `items` (all once `ctx.state[key]` is set), and the button that shows the rest. */
function firstRows(ctx, key, items, noun) {
  if (ctx.state[key] || items.length <= SHOWN_ROWS) return { items, more: null };
  return {
    items: items.slice(0, SHOWN_ROWS),
    more: h('p', { class: 'muted' }, `The first ${SHOWN_ROWS} of ${items.length} ${noun}. `,
      h('button', { class: 'secondary', 'data-show-all': key, onclick: () => { ctx.state[key] = true; ctx.refresh(); } }, `Show all ${items.length}`)),
  };
}

export async function render(ctx) {
  const o = ctx.prefetched ?? await api('/v1/overview', { signal: ctx.signal });
  const consumers = firstRows(ctx, 'allConsumers', o.consumers, 'consumers, worst first');
  const tables = firstRows(ctx, 'allTables', o.tables, 'tables');
  return h('div', { 'data-view': 'overview' },
    h('h1', {}, 'Overview'),
    h('h2', {}, `Problems (${o.problems.length})`),
    problemsList(o.problems),
    h('h2', {}, `Consumers (${o.consumers.length})`),
    consumersTable(consumers.items),
    consumers.more,
    h('h2', {}, `Tables (${o.tables.length})`),
    tablesTable(tables.items),
    tables.more,
    o.backfills.length ? [h('h2', {}, `Backfills (${o.backfills.length})`),
      table(['backfill', 'consumer', 'table', 'state'], o.backfills.map((b) => h('tr', {},
        h('td', {}, h('a', { href: `#/backfills/${enc(b.name)}` }, b.name)), h('td', {}, b.consumer), h('td', {}, b.table), h('td', {}, stateBadge(b.state)))))] : null,
    h('p', { class: 'muted' }, `as of ${new Date(o.generated_at).toLocaleTimeString()}`));
}
