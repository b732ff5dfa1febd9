import path from 'node:path';

/**
 * Location prefixes for allow-lists (`table_allowed_locations`): a local path or `file:` URI is
 * made absolute with `..` resolved, so that a prefix cannot be escaped; other URIs (s3://,
 * postgresql://, https://) are compared as written.
 */
export function normalizeLocation(loc: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(loc) && !loc.startsWith('file:')) return loc;
  const p = loc.startsWith('file://') ? loc.slice('file://'.length) : loc.startsWith('file:') ? loc.slice('file:'.length) : loc;
  return path.resolve(p);
}

/** `prefix` covers `loc` at a path boundary: `/data/t` covers `/data/t/x`, not `/data/t2`. */
export function locationCovered(loc: string, prefix: string): boolean {
  const l = normalizeLocation(loc);
  const p = normalizeLocation(prefix).replace(/\/+$/, '');
  return l === p || l.startsWith(`${p}/`);
}
