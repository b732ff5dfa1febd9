// Service configuration: file, then environment, then flags; validated at start with the
// offending setting named.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { isIpsError } from '../../src/errors.js';
import { loadServiceConfig } from '../../src/service/config.js';
import { REPO_ROOT } from '../setup/env.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'ips-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function failure(env: Record<string, string>): string {
  try {
    loadServiceConfig({ env });
  } catch (e) {
    if (isIpsError(e)) return `${e.code}: ${e.message}`;
    throw e;
  }
  throw new Error('expected the configuration to be refused');
}

describe('service configuration', () => {
  test('defaults: loopback, open API, embedded state and warehouse under the data directory', () => {
    const c = loadServiceConfig({ env: { IPS_DATA_DIR: path.join(tmp, 'd') } });
    expect(c).toMatchObject({ host: '127.0.0.1', port: 8742, auth: 'none', bodyLimitBytes: 1048576 });
    expect(c.database).toEqual({ driver: 'pglite', dataDir: path.join(tmp, 'd', 'db') });
    expect(c.warehouse).toBe(path.join(tmp, 'd', 'warehouse'));
    expect(c.sources).toEqual(['environment']);
  });

  test('backfill validation commands run in the service only when the configuration turns it on', () => {
    const d = { IPS_DATA_DIR: path.join(tmp, 'd') };
    expect(loadServiceConfig({ env: d })).toMatchObject({ backfillValidation: false, backfillValidationEnv: [] });
    expect(loadServiceConfig({ env: { ...d, IPS_BACKFILL_VALIDATION: 'on', IPS_BACKFILL_VALIDATION_ENV: 'CATALOG_URI, SPARK_HOME' } }))
      .toMatchObject({ backfillValidation: true, backfillValidationEnv: ['CATALOG_URI', 'SPARK_HOME'] });
    expect(failure({ ...d, IPS_BACKFILL_VALIDATION: 'yes' })).toMatch(/^INVALID_CONFIG: .*IPS_BACKFILL_VALIDATION/);
    expect(failure({ ...d, IPS_BACKFILL_VALIDATION_ENV: 'OK,NOT-A-NAME' })).toMatch(/^INVALID_CONFIG: .*IPS_BACKFILL_VALIDATION_ENV: an environment variable name/);
  });

  test('a bad value names its variable', () => {
    expect(failure({ IPS_PORT: 'eighty' })).toMatch(/^INVALID_CONFIG: .*IPS_PORT/);
    expect(failure({ IPS_PORT: '70000' })).toMatch(/IPS_PORT/);
    expect(failure({ IPS_LOG_LEVEL: 'loud' })).toMatch(/IPS_LOG_LEVEL/);
    expect(failure({ DATABASE_URL: 'mysql://x' })).toMatch(/^INVALID_CONFIG: DATABASE_URL must be postgres/);
    expect(failure({ IPS_ADMIN_TOKEN: 'short' })).toMatch(/IPS_ADMIN_TOKEN: an admin token has at least 16 characters/);
    expect(failure({ IPS_TRIGGER_IDLE_CHECK_SECONDS: '0' })).toMatch(/^INVALID_CONFIG: .*IPS_TRIGGER_IDLE_CHECK_SECONDS/);
    expect(failure({ IPS_MAX_BATCH_FILES: '0' })).toMatch(/^INVALID_CONFIG: .*IPS_MAX_BATCH_FILES/);
    expect(failure({ IPS_MAX_BATCH_FILES: '1.5' })).toMatch(/^INVALID_CONFIG: .*IPS_MAX_BATCH_FILES/);
  });

  test('the ceiling on files per batch: 100,000 unless set', () => {
    const d = { IPS_DATA_DIR: path.join(tmp, 'd') };
    expect(loadServiceConfig({ env: d }).maxBatchFiles).toBe(100_000);
    expect(loadServiceConfig({ env: { ...d, IPS_MAX_BATCH_FILES: '2500' } }).maxBatchFiles).toBe(2500);
  });

  test('an open API is refused off loopback; tokens are required there', () => {
    expect(failure({ IPS_HOST: '0.0.0.0' })).toMatch(/set IPS_ADMIN_TOKEN/);
    expect(failure({ IPS_HOST: '0.0.0.0', IPS_AUTH: 'none' })).toMatch(/auth "none" is allowed only on a loopback address/);
    const c = loadServiceConfig({ env: { IPS_HOST: '0.0.0.0', IPS_ADMIN_TOKEN: 'a-long-enough-admin-token' } });
    expect(c.auth).toBe('token');
    // The token never shows in logs or JSON.
    expect(JSON.stringify(c)).not.toContain('a-long-enough-admin-token');
    expect(c.adminTokens[0]!.reveal()).toBe('a-long-enough-admin-token');
  });

  test('a YAML file, with the environment over it; unknown keys are refused with the file named', () => {
    const file = path.join(tmp, 'ips.yaml');
    writeFileSync(file, 'port: 9001\nhost: 127.0.0.2\nwarehouse: s3://bucket/icdc\nbody_limit_bytes: 4096\n');
    const c = loadServiceConfig({ env: { IPS_CONFIG: file, IPS_PORT: '9002' } });
    expect(c).toMatchObject({ port: 9002, host: '127.0.0.2', warehouse: 's3://bucket/icdc', bodyLimitBytes: 4096 });
    expect(c.sources).toEqual([file, 'environment']);
    const bad = path.join(tmp, 'bad.yaml');
    writeFileSync(bad, 'prot: 9001\n');
    expect(failure({ IPS_CONFIG: bad })).toContain(`${bad}: prot: unknown setting`);
    // A file's log_level is used (the default is warn), and the environment still wins over it.
    const levels = path.join(tmp, 'levels.yaml');
    writeFileSync(levels, 'log_level: debug\n');
    expect(loadServiceConfig({ env: {} }).logLevel).toBe('warn');
    expect(loadServiceConfig({ env: { IPS_CONFIG: levels } }).logLevel).toBe('debug');
    expect(loadServiceConfig({ env: { IPS_CONFIG: levels, IPS_LOG_LEVEL: 'error' } }).logLevel).toBe('error');
    const json = path.join(tmp, 'broken.json');
    writeFileSync(json, '{"port": ');
    expect(failure({ IPS_CONFIG: json })).toMatch(/is not valid JSON/);
    expect(failure({ IPS_CONFIG: path.join(tmp, 'missing.yaml') })).toMatch(/cannot read the configuration file/);
  });

  test('ips serve refuses a bad configuration before it opens anything, and says why', () => {
    const r = spawnSync(process.execPath, [path.join(REPO_ROOT, 'bin', 'ips.js'), 'serve', '--host', '0.0.0.0'], {
      encoding: 'utf8', env: { ...process.env, IPS_DATA_DIR: path.join(tmp, 'never'), IPS_ADMIN_TOKEN: '', DATABASE_URL: '' }, timeout: 60_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/error \[INVALID_CONFIG\]: .*IPS_ADMIN_TOKEN/);
  });
});
