// Small helpers shared by the views: DOM building (text only, never HTML strings: names and
// error messages come from outside), the API client and value formatting.

/** h('td', {class: 'num'}, 'text', childNode, [more]) */
export function h(tag, attrs, ...children) {
  const svg = tag.startsWith('svg:');
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.code ?? `HTTP_${status}`;
  }
}

const TOKEN_KEY = 'ips.token';
export const auth = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set token(t) { if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY); },
};

/** Calls the JSON API with the user's token; throws ApiError with the problem's code and detail. */
export async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = { accept: 'application/json' };
  if (auth.token) headers.authorization = `Bearer ${auth.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, cache: 'no-store' });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

export const enc = encodeURIComponent;

const NUM = new Intl.NumberFormat('en-US');
export function num(v) {
  if (v === null || v === undefined) return '–';
  // 64-bit values arrive as decimal strings: group the digits without a lossy Number.
  if (typeof v === 'string') return v.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return NUM.format(v);
}

export function bytes(v) {
  if (v === null || v === undefined) return '–';
  const n = Number(v); // display only; the exact value is in the title
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let x = n;
  while (x >= 1024 && i < units.length - 1) { x /= 1024; i++; }
  return `${i === 0 ? x : x.toFixed(x < 10 ? 1 : 0)} ${units[i]}`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '–';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export function since(iso, now = Date.now()) {
  if (!iso) return null;
  return (now - Date.parse(iso)) / 1000;
}

export function ago(iso) {
  if (!iso) return '–';
  return `${duration(since(iso))} ago`;
}

export function time(iso) {
  if (!iso) return '–';
  return new Date(iso).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function healthDot(health, title) {
  return h('span', { class: `dot ${health ?? 'idle'}`, title: title ?? health ?? '' });
}

export function stateBadge(state) {
  return h('span', { class: `badge st-${state}` }, state);
}

export function table(headers, rows, opts = {}) {
  return h('div', { class: 'scroll' }, h('table', opts.attrs ?? {},
    h('thead', {}, h('tr', {}, headers.map((c) => (typeof c === 'string' ? h('th', {}, c) : h('th', c.attrs ?? {}, c.label))))),
    h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: headers.length, class: 'muted' }, opts.empty ?? 'none')))));
}

export function errorBox(e) {
  return h('p', { class: 'err', role: 'alert' }, e instanceof ApiError ? `${e.status} ${e.code}: ${e.message}` : String(e?.message ?? e));
}
