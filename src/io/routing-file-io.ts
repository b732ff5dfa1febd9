import { IpsError } from '../errors.js';
import { copyToFile, readRange, type FileIO } from './file-io.js';
import { currentReadLimits, type FileKind, type ReadLimits } from './limits.js';
import { locationCovered } from './locations.js';
import { LocalFileIO } from './local-file-io.js';
import type { S3FileIO, S3Settings } from './s3-file-io.js';

/** `FROM=TO`: locations that start with FROM are read at TO instead (copied tables, hdfs:// fixtures). */
export interface LocationMapping {
  from: string;
  to: string;
}

export function parseLocationMapping(text: string): LocationMapping {
  const i = text.indexOf('=');
  if (i <= 0 || i === text.length - 1) {
    throw new IpsError('INVALID_ARGUMENT', `--map-location expects FROM=TO (e.g. hdfs://nn/warehouse=/data/warehouse), got "${text}"`);
  }
  return { from: text.slice(0, i), to: text.slice(i + 1) };
}

/** `from` covers `location` only at a path boundary: `s3://b/t` maps `s3://b/t/f`, not `s3://b/t2/f`. */
function covers(from: string, location: string): boolean {
  if (!location.startsWith(from)) return false;
  return from.endsWith('/') || location.length === from.length || location[from.length] === '/';
}

export function applyMappings(location: string, mappings: readonly LocationMapping[]): string {
  // Longest prefix wins, so a specific mapping can override a general one.
  let best: LocationMapping | undefined;
  for (const m of mappings) if (covers(m.from, location) && (!best || m.from.length > best.from.length)) best = m;
  return best ? best.to + location.slice(best.from.length) : location;
}

export interface FileIOOptions {
  s3?: S3Settings | undefined;
  mappings?: LocationMapping[] | undefined;
  /** Size limits and remote deadline (default: the process's, see setReadLimits). */
  limits?: ReadLimits | undefined;
  /**
   * Prefixes every location must be under, after mapping (`table_allowed_locations` plus the
   * warehouse): a manifest list or manifest that a table's metadata points elsewhere (another
   * table, /etc, another bucket) is refused before it is opened. Undefined: anywhere.
   */
  allowedLocations?: readonly string[] | undefined;
}

/** Dispatches by URI scheme after applying location mappings. */
export class RoutingFileIO implements FileIO {
  private readonly local: LocalFileIO;
  private s3: Promise<S3FileIO> | undefined;

  private readonly implicit: LocationMapping[] = [];

  constructor(private readonly opts: FileIOOptions = {}) {
    this.local = new LocalFileIO(opts.limits);
  }

  get limits(): ReadLimits {
    return this.opts.limits ?? currentReadLimits();
  }

  relocate(from: string, to: string): void {
    if (from !== to) this.implicit.push({ from, to });
  }

  /** Where `location` is read from after the location mappings (explicit, then implicit). */
  resolve(location: string): string {
    const explicit = applyMappings(location, this.opts.mappings ?? []);
    const loc = explicit === location ? applyMappings(location, this.implicit) : explicit;
    // Every place a read goes through (the FileIO and DuckDB's rows reader) is bounded by the allow-list.
    const allowed = this.opts.allowedLocations;
    if (allowed !== undefined && !allowed.some((p) => locationCovered(loc, p))) {
      throw new IpsError('LOCATION_NOT_ALLOWED', `${location} is outside the locations this table may read (table_allowed_locations)`, { details: { location } });
    }
    return loc;
  }

  private async route(location: string): Promise<{ io: FileIO; loc: string }> {
    const loc = this.resolve(location);
    if (/^s3[an]?:\/\//.test(loc)) {
      // The AWS SDK takes about a second to load: only pay for it when a table is on S3.
      this.s3 ??= import('./s3-file-io.js').then((m) => new m.S3FileIO({ ...this.opts.s3, limits: this.opts.limits }));
      return { io: await this.s3, loc };
    }
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(loc) && !loc.startsWith('file:')) {
      const scheme = loc.slice(0, loc.indexOf(':'));
      throw new IpsError('UNSUPPORTED_SCHEME', `cannot read ${scheme}:// locations (${loc}); map them to a readable place with --map-location ${scheme}://…=/local/path or s3://…`);
    }
    return { io: this.local, loc };
  }

  async read(location: string, kind?: FileKind): Promise<Buffer> {
    const r = await this.route(location);
    return r.io.read(r.loc, kind);
  }
  async readRange(location: string, offset: number, length: number, kind?: FileKind): Promise<Buffer> {
    const r = await this.route(location);
    return readRange(r.io, r.loc, offset, length, kind);
  }
  async copyToFile(location: string, file: string, kind?: FileKind): Promise<number> {
    const r = await this.route(location);
    return copyToFile(r.io, r.loc, file, kind);
  }
  async exists(location: string): Promise<boolean> {
    const r = await this.route(location);
    return r.io.exists(r.loc);
  }
  async list(dirLocation: string): Promise<string[]> {
    const r = await this.route(dirLocation);
    return r.io.list(r.loc);
  }
  async write(location: string, data: Buffer, opts?: { ifAbsent?: boolean; unpublished?: boolean }): Promise<void> {
    const r = await this.route(location);
    return r.io.write(r.loc, data, opts);
  }
  close(): void {
    void this.s3?.then((s3) => s3.destroy());
  }
}
