// `ips inspect` and `ips changes` take the read limits from the environment (IPS_MAX_*_BYTES,
// the same names as `ips serve`'s settings): a file over its limit is FILE_TOO_LARGE naming the
// setting; a bad value is INVALID_CONFIG naming the variable.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../setup/env.js';

const BIN = path.join(REPO_ROOT, 'bin', 'ips.js');
const TABLE = path.join(REPO_ROOT, 'fixtures', 'tables', 'playback');

function ips(args: string[], env: Record<string, string>): { status: number | null; error: { code: string; message: string } | null } {
  const r = spawnSync(process.execPath, [BIN, ...args, '--json'], { cwd: REPO_ROOT, encoding: 'utf8', env: { ...process.env, ...env } });
  let error = null;
  try {
    error = (JSON.parse(r.stderr.trim().split('\n').at(-1) ?? '') as { error: { code: string; message: string } }).error;
  } catch { /* no JSON error */ }
  return { status: r.status, error };
}

describe('read limits of the table commands', () => {
  it('a manifest over IPS_MAX_MANIFEST_BYTES is FILE_TOO_LARGE', () => {
    for (const cmd of ['inspect', 'changes']) {
      const r = ips([cmd, TABLE], { IPS_MAX_MANIFEST_BYTES: '1024' });
      expect(r.status, cmd).toBe(1);
      expect(r.error?.code, cmd).toBe('FILE_TOO_LARGE');
      expect(r.error?.message, cmd).toContain('max_manifest_bytes');
    }
  });

  it('the defaults read the table; a bad value names the variable', () => {
    expect(ips(['inspect', TABLE], {}).status).toBe(0);
    const bad = ips(['changes', TABLE], { IPS_MAX_METADATA_BYTES: 'lots' });
    expect(bad.error?.code).toBe('INVALID_CONFIG');
    expect(bad.error?.message).toContain('IPS_MAX_METADATA_BYTES');
  });
});
