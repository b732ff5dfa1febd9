import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { IpsError } from '../errors.js';
import { printJson, runAction } from './common.js';

interface DemoOptions {
  days?: string;
  rowsPerDay?: string;
  profiles?: string;
  lateFraction?: string;
  lookbackDays?: string;
  seed?: string;
  dir: string;
  warehouse?: string;
  catalog?: string;
  catalogName?: string;
  s3Endpoint?: string;
  s3Region?: string;
  ipsUrl?: string;
  ipsToken?: string;
  callbackHost?: string;
  json?: boolean;
  serve?: boolean;
  port?: string;
}

const MARKER = '.ips-demo';

/** Resolves on the first SIGINT or SIGTERM (then the caller shuts down cleanly). */
function waitForStop(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

/** The demo owns its directory: it starts from scratch, but never deletes a directory it did not make. */
function freshWorkDir(dir: string): void {
  if (fs.existsSync(dir)) {
    const entries = fs.readdirSync(dir);
    if (entries.length > 0 && !entries.includes(MARKER)) {
      throw new IpsError('INVALID_ARGUMENT', `${dir} exists and was not made by ips demo: pick another --dir (the demo deletes its directory's contents at start)`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, MARKER), 'made by `ips demo playback`; deleted and remade by its next run\n');
}

const int = (v: string | undefined, name: string): number | undefined => {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new IpsError('INVALID_ARGUMENT', `--${name} must be a whole number, got "${v}"`);
  return Number(v);
};

export function demoCommand(): Command {
  const demo = new Command('demo').description('demonstrations of what ips is for');
  demo.command('playback')
    .description("Netflix's two-stage playback pipeline on a simulated month, incremental (ips) versus a 14-day lookback, runs started by ips triggers")
    .option('--days <n>', 'simulated days (default 30)')
    .option('--rows-per-day <n>', 'playback events per day (default 33000: about 1M a month)')
    .option('--profiles <n>', 'distinct profiles (default 1000)')
    .option('--late-fraction <x>', 'share of each day\'s events that are late backlogs (default 0.03)')
    .option('--lookback-days <n>', 'the lookback pipeline\'s window (default 14)')
    .option('--seed <n>', 'random seed (default 42)')
    .addOption(new Option('--dir <dir>', 'working directory: engine scratch, embedded state, tables (emptied at start)').env('IPS_DEMO_DIR').default('.ips-demo'))
    .addOption(new Option('--warehouse <dir-or-uri>', 'where the demo\'s Iceberg tables go, e.g. s3://lake/demo (default <dir>/warehouse)').env('IPS_DEMO_WAREHOUSE'))
    .addOption(new Option('--catalog <uri>', 'postgresql://… JDBC/SQL catalog for the tables (default: Hadoop layout with version-hint.text)').env('IPS_DEMO_CATALOG'))
    .option('--catalog-name <name>', 'catalog_name in the SQL catalog (default ips_demo)')
    .addOption(new Option('--s3-endpoint <url>', 'S3 endpoint for an s3:// warehouse, e.g. http://127.0.0.1:9000 for MinIO').env('IPS_S3_ENDPOINT'))
    .addOption(new Option('--s3-region <region>', 'S3 region').env('AWS_REGION'))
    .addOption(new Option('--ips-url <url>', 'use this running ips (e.g. the docker-compose stack) instead of starting one in-process').env('IPS_URL'))
    .addOption(new Option('--ips-token <token>', 'admin token for --ips-url').env('IPS_TOKEN'))
    .addOption(new Option('--callback-host <host>', 'host a separate ips uses to reach this process\'s run receiver (default 127.0.0.1)').env('IPS_DEMO_CALLBACK_HOST'))
    .option('--serve', 'keep ips running after the demo, with its web console at /ui (prints the URL and an admin token); Ctrl-C stops it')
    .option('--port <n>', 'port of the ips that --serve keeps up (default 8742; 0: any free port)')
    .option('--json', 'print the report as JSON')
    .action(async (opts: DemoOptions) => {
      await runAction(opts.json, async () => {
        const { parsePlaybackOptions } = await import('../playback/model.js');
        const options = parsePlaybackOptions(Object.fromEntries(Object.entries({
          days: int(opts.days, 'days'),
          rowsPerDay: int(opts.rowsPerDay, 'rows-per-day'),
          profiles: int(opts.profiles, 'profiles'),
          lateFraction: opts.lateFraction === undefined ? undefined : Number(opts.lateFraction),
          lookbackDays: int(opts.lookbackDays, 'lookback-days'),
          maxLatenessDays: opts.lookbackDays === undefined ? undefined : Math.min(13, Number(opts.lookbackDays) - 1),
          seed: int(opts.seed, 'seed'),
        }).filter(([, v]) => v !== undefined)));
        if (opts.serve && opts.ipsUrl) throw new IpsError('INVALID_ARGUMENT', '--serve keeps the in-process ips up; with --ips-url the console is that ips\'s own /ui');
        const port = opts.serve ? int(opts.port, 'port') ?? 8742 : undefined;
        if (port !== undefined && port > 65535) throw new IpsError('INVALID_ARGUMENT', `--port must be 0..65535, got ${port}`);
        // The console is served with the API's auth: an admin token of this run only (or IPS_ADMIN_TOKEN).
        const adminToken = opts.serve ? process.env['IPS_ADMIN_TOKEN']?.split(',')[0]?.trim() || crypto.randomBytes(24).toString('hex') : undefined;
        const workDir = path.resolve(opts.dir);
        freshWorkDir(workDir);
        const { runPlayback } = await import('../playback/runner.js');
        const { progressLine, reportJson, reportText } = await import('../playback/report.js');
        const say = (line: string) => process.stderr.write(`${line}\n`);
        if (!opts.json) say(`ips demo playback: ${options.days} days × ${options.rowsPerDay.toLocaleString('en-US')} events, incremental versus ${options.lookbackDays}-day lookback (working in ${workDir})`);
        const result = await runPlayback({
          options, workDir,
          ...(opts.warehouse ? { warehouse: opts.warehouse } : {}),
          ...(opts.catalog ? { catalogUri: opts.catalog } : {}),
          ...(opts.catalogName ? { catalogName: opts.catalogName } : {}),
          ...(opts.ipsUrl ? { ipsUrl: opts.ipsUrl } : {}),
          ...(opts.ipsToken ? { ipsToken: opts.ipsToken } : {}),
          ...(opts.callbackHost ? { callbackHost: opts.callbackHost } : {}),
          s3: {
            endpoint: opts.s3Endpoint, region: opts.s3Region ?? 'us-east-1',
            accessKeyId: process.env['AWS_ACCESS_KEY_ID'], secretAccessKey: process.env['AWS_SECRET_ACCESS_KEY'],
            ...(opts.s3Endpoint ? { pathStyle: true } : {}),
          },
          onLog: opts.json ? () => {} : say,
          onProgress: (p) => { if (!opts.json || process.stderr.isTTY) say(progressLine(p)); },
          ...(adminToken !== undefined ? { adminToken, keepServer: true, port } : {}),
        }).catch((e: unknown) => {
          if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new IpsError('ADDRESS_IN_USE', `port ${port} is in use (another ips serve?): pick another with --port (0: any free port)`);
          throw e;
        });
        const consoleUrl = result.server ? `${result.server.url}/ui/#token=${adminToken}` : null;
        if (opts.json) printJson({ ...reportJson(result), ...(consoleUrl ? { console: { url: `${result.server!.url}/ui/`, token: adminToken, open: consoleUrl } } : {}) });
        else process.stdout.write(`\n${reportText(result)}\n`);
        if (result.server) {
          if (!opts.json) {
            process.stdout.write(`\nThe console: ${consoleUrl}\n(admin token ${adminToken}; the same ips serves the API at ${result.server.url}). Ctrl-C stops it.\n`);
          }
          await waitForStop();
          await result.server.close();
        }
        if (!result.verification.identical) {
          throw new IpsError('PIPELINES_DIFFER', 'the incremental and lookback pipelines produced different tables: see the report above');
        }
      });
    });
  demo.command('backfill')
    .description('a two-stage pipeline, then a change of logic re-applied to a range of days by a managed backfill (one chunk per day, two in flight), followed downstream')
    .option('--days <n>', 'simulated days (default 10)')
    .option('--rows-per-day <n>', 'events per day (default 2000)')
    .option('--from-day <n>', 'first day the backfill re-processes, 0-based (default 3)')
    .option('--to-day <n>', 'last day the backfill re-processes, inclusive (default 7)')
    .addOption(new Option('--dir <dir>', 'working directory: engine scratch, embedded state, tables (emptied at start)').env('IPS_DEMO_DIR').default('.ips-demo-backfill'))
    .addOption(new Option('--warehouse <dir-or-uri>', 'where the tables and ICDC tables go, e.g. s3://lake/demo (default <dir>/warehouse)').env('IPS_DEMO_WAREHOUSE'))
    .addOption(new Option('--s3-endpoint <url>', 'S3 endpoint for an s3:// warehouse, e.g. http://127.0.0.1:9000 for MinIO').env('IPS_S3_ENDPOINT'))
    .addOption(new Option('--s3-region <region>', 'S3 region').env('AWS_REGION'))
    .option('--json', 'print the backfill view as JSON')
    .action(async (opts: { days?: string; rowsPerDay?: string; fromDay?: string; toDay?: string; dir: string; json?: boolean; warehouse?: string; s3Endpoint?: string; s3Region?: string }) => {
      await runAction(opts.json, async () => {
        const days = int(opts.days, 'days') ?? 10;
        const from = int(opts.fromDay, 'from-day') ?? 3;
        const to = int(opts.toDay, 'to-day') ?? 7;
        if (days < 1 || days > 366) throw new IpsError('INVALID_ARGUMENT', '--days must be 1..366');
        if (from > to || to >= days) throw new IpsError('INVALID_ARGUMENT', `--from-day and --to-day must satisfy 0 <= from <= to < days (${days})`);
        const workDir = path.resolve(opts.dir);
        freshWorkDir(workDir);
        const { runBackfillDemo } = await import('../backfill/demo.js');
        const { backfillViewJson } = await import('../api/routes/backfills.js');
        const { renderBackfill } = await import('./backfills.js');
        const say = (line: string) => process.stderr.write(`${line}\n`);
        const { databaseConfigFromEnv } = await import('../state/index.js');
        const r = await runBackfillDemo({
          dir: workDir, days, rowsPerDay: int(opts.rowsPerDay, 'rows-per-day') ?? 2000, from, to, startDate: '2026-10-01',
          // State: DATABASE_URL when set (e.g. PostgreSQL), else embedded in <dir>/db.
          ...(process.env['DATABASE_URL'] ? { database: databaseConfigFromEnv() } : {}),
          ...(opts.warehouse ? { warehouse: opts.warehouse } : {}),
          ...(opts.warehouse?.startsWith('s3://') ? {
            s3: {
              endpoint: opts.s3Endpoint, region: opts.s3Region ?? 'us-east-1', accessKeyId: process.env['AWS_ACCESS_KEY_ID'],
              secretAccessKey: process.env['AWS_SECRET_ACCESS_KEY'], ...(opts.s3Endpoint ? { pathStyle: true } : {}),
            },
          } : {}),
          ...(opts.json ? {} : { log: say }),
        });
        const json = backfillViewJson(r.view);
        if (opts.json) printJson({ ...json, rows_differing: r.rowsDiffering, rows: r.rows, live_watermark_moved: r.liveWatermarkMoved });
        else {
          process.stdout.write(`\n${renderBackfill(json as unknown as Parameters<typeof renderBackfill>[0])}\n`);
          process.stdout.write(`${r.rowsDiffering === 0 ? '✓' : '✗'} daily_totals: ${r.rows} rows, ${r.rowsDiffering} differ from a recomputation from all events (cents in the backfilled days, units elsewhere)\n`);
          process.stdout.write(`${r.liveWatermarkMoved ? '✗' : '✓'} the live watermark of "daily" did not move for the backfill; ${r.liveBatches} live batches before it\n`);
        }
        if (r.rowsDiffering !== 0 || r.liveWatermarkMoved || r.view.status !== 'complete') {
          throw new IpsError('DEMO_FAILED', `the backfill demo did not end right: status ${r.view.status}, ${r.rowsDiffering} rows differ`);
        }
      });
    });
  return demo;
}
