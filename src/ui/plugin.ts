import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync } from 'fastify';

/**
 * The web console: static files only (HTML, ES modules, CSS) and uPlot from node_modules,
 * read once at start into memory and served under /ui. Nothing is built at run time and no
 * data is in them: the page calls the JSON API with the user's token, so it sees exactly what
 * that token may see. The set of files is fixed at start, so no request path reaches the disk.
 */

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** Scripts and styles from this origin only; data only from the API; no framing. */
const CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
  "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');

interface Asset { body: Buffer; type: string; etag: string }

/** src/ui/static next to this module (tsx), or from dist/src/ui/ back to the sources (compiled). */
export function staticDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const d of [path.join(here, 'static'), path.resolve(here, '..', '..', '..', 'src', 'ui', 'static')]) {
    if (fs.existsSync(path.join(d, 'index.html'))) return d;
  }
  throw new Error(`the console's static files are missing (looked next to ${here}); reinstall ips`);
}

function asset(body: Buffer, file: string): Asset {
  return { body, type: TYPES[path.extname(file)] ?? 'application/octet-stream', etag: `"${crypto.createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
}

export function loadAssets(): Map<string, Asset> {
  const dir = staticDir();
  const assets = new Map<string, Asset>();
  const walk = (d: string, prefix: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name), `${prefix}${e.name}/`);
      else if (e.isFile() && TYPES[path.extname(e.name)]) assets.set(`${prefix}${e.name}`, asset(fs.readFileSync(path.join(d, e.name)), e.name));
    }
  };
  walk(dir, '');
  // uPlot as its package ships it (ES module and CSS), at the version package-lock.json pins.
  const require = createRequire(import.meta.url);
  const uplot = path.dirname(require.resolve('uplot/dist/uPlot.esm.js'));
  assets.set('vendor/uPlot.esm.js', asset(fs.readFileSync(path.join(uplot, 'uPlot.esm.js')), 'uPlot.esm.js'));
  assets.set('vendor/uPlot.min.css', asset(fs.readFileSync(path.join(uplot, 'uPlot.min.css')), 'uPlot.min.css'));
  return assets;
}

export const UI_PREFIX = '/ui';

export function consolePlugin(): FastifyPluginAsync {
  const assets = loadAssets();
  return async (app) => {
    app.get(UI_PREFIX, { schema: { hide: true } }, async (_req, reply) => reply.redirect(`${UI_PREFIX}/`, 302));
    app.get(`${UI_PREFIX}/*`, { schema: { hide: true } }, async (req, reply) => {
      const rest = (req.params as { '*': string })['*'];
      const a = assets.get(rest === '' ? 'index.html' : rest);
      void reply
        .header('content-security-policy', CSP)
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .header('x-frame-options', 'DENY');
      if (!a) {
        return reply.code(404).type('application/problem+json').send({ type: 'about:blank', title: 'Not Found', status: 404, code: 'ROUTE_NOT_FOUND', detail: `no console file ${rest}; the console is at ${UI_PREFIX}/` });
      }
      // Revalidated on every load (cheap: 304), so an upgraded ips never serves a stale script.
      void reply.header('cache-control', 'no-cache').header('etag', a.etag);
      if (req.headers['if-none-match'] === a.etag) return reply.code(304).send();
      return reply.type(a.type).send(a.body);
    });
  };
}
