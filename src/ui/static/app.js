// The console's shell: token, hash routes, and the live loop. Every view is re-rendered from the
// API every few seconds (short polling: the server keeps nothing per open console, and a hidden
// tab stops polling). ?poll=<ms> changes the interval.
import { api, ApiError, auth, errorBox, h } from './lib.js';
import * as overview from './views/overview.js';
import * as lineage from './views/lineage.js';
import * as consumer from './views/consumer.js';
import * as subscriptions from './views/subscriptions.js';
import * as backfills from './views/backfills.js';

const ROUTES = [
  { re: /^#?\/?$/, view: overview, nav: 'overview' },
  { re: /^#\/lineage$/, view: lineage, nav: 'lineage' },
  { re: /^#\/consumers\/([^/]+)$/, view: consumer, nav: 'overview' },
  { re: /^#\/subscriptions$/, view: subscriptions, nav: 'subscriptions' },
  { re: /^#\/backfills$/, view: backfills, nav: 'backfills' },
  { re: /^#\/backfills\/([^/]+)$/, view: backfills, nav: 'backfills' },
];

const pollParam = Number(new URLSearchParams(location.search).get('poll'));
const POLL_MS = Number.isFinite(pollParam) && pollParam >= 100 ? pollParam : 5000;

const main = document.getElementById('main');
const live = document.getElementById('live');
const whoami = document.getElementById('whoami');
const signout = document.getElementById('signout');

let viewer = null;
let generation = 0;
let timer = null;
let controller = null;
/** Per-route state that survives re-renders (open details, chart instances); only the current route's. */
let routeState = { key: null, state: {} };

// A token handed over in the URL fragment (ips demo playback --serve prints such a URL): keep
// it for this tab only and take it out of the address bar and history.
if (location.hash.startsWith('#token=')) {
  auth.token = decodeURIComponent(location.hash.slice('#token='.length));
  history.replaceState(null, '', `${location.pathname}${location.search}#/`);
}

function route() {
  const hash = location.hash || '#/';
  for (const r of ROUTES) {
    const m = r.re.exec(hash);
    if (m) return { ...r, params: m.slice(1).map(decodeURIComponent), key: hash };
  }
  return { view: null, nav: null, params: [], key: hash };
}

function loginForm(message) {
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', placeholder: 'admin or consumer token', 'aria-label': 'token' });
  const form = h('form', { class: 'card login', onsubmit: (e) => { e.preventDefault(); auth.token = input.value.trim(); viewer = null; tick(true); } },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'The console calls the ips API with your token: an admin token sees everything, a consumer token its own consumer.'),
    message ? h('p', { class: 'err' }, message) : null,
    input,
    h('button', { type: 'submit' }, 'Open the console'));
  return form;
}

async function loadViewer(signal) {
  const o = await api('/v1/overview', { signal });
  viewer = o.viewer;
  whoami.textContent = viewer.admin ? 'admin' : `consumer ${viewer.consumer}`;
  signout.hidden = !auth.token;
  return o;
}

async function tick(reset = false) {
  clearTimeout(timer);
  const my = ++generation;
  controller?.abort();
  controller = new AbortController();
  const r = route();
  if (routeState.key !== r.key) {
    // Charts hold window listeners until destroyed: a tab left open for days must not pile them up.
    for (const v of Object.values(routeState.state)) v?.u?.destroy?.();
    routeState = { key: r.key, state: {} };
  }
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === r.nav);
  try {
    if (!r.view) {
      main.replaceChildren(h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/' }, 'Back to the overview')));
      return;
    }
    const prefetched = viewer === null || reset ? await loadViewer(controller.signal) : null;
    const node = await r.view.render({
      params: r.params, viewer, signal: controller.signal, state: routeState.state, prefetched,
      refresh: () => tick(),
    });
    if (my !== generation) return;
    main.replaceChildren(node);
    live.className = 'live on';
    live.title = `updated ${new Date().toLocaleTimeString()}; every ${POLL_MS / 1000} s`;
  } catch (e) {
    if (my !== generation || e?.name === 'AbortError') return;
    live.className = 'live err';
    if (e instanceof ApiError && e.status === 401) {
      viewer = null;
      whoami.textContent = '';
      main.replaceChildren(loginForm(auth.token ? 'That token was refused (unknown or revoked).' : null));
      return; // no polling until signed in
    }
    main.replaceChildren(h('h1', {}, 'Cannot show this page'), errorBox(e));
  } finally {
    if (my === generation && !document.hidden && !(main.querySelector('form.login'))) timer = setTimeout(() => tick(), POLL_MS);
  }
}

signout.addEventListener('click', (e) => {
  e.preventDefault();
  auth.token = null;
  viewer = null;
  whoami.textContent = '';
  signout.hidden = true;
  clearTimeout(timer);
  controller?.abort();
  main.replaceChildren(loginForm(null));
});
window.addEventListener('hashchange', () => tick());
document.addEventListener('visibilitychange', () => { if (!document.hidden) tick(); else clearTimeout(timer); });
tick();
