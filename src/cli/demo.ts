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
  engineThreads?: string;
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

/** The options both demos take (the playback month's), so `ips demo backfill` runs the same month. */
function monthOptions(cmd: Command, defaultDir: string): Command {
  return cmd
    .option('--days <n>', 'simulated days (default 30)')
    .option('--rows-per-day <n>', 'playback events per day (default 33000: about 1M a month)')
    .option('--profiles <n>', 'distinct profiles (default 1000)')
    .option('--late-fraction <x>', 'share of each day\'s events that are late backlogs (default 0.03)')
    .option('--lookback-days <n>', 'the lookback pipeline\'s window (default 14)')
    .option('--seed <n>', 'random seed (default 42)')
    .addOption(new Option('--dir <dir>', 'working directory: engine scratch, embedded state, tables (emptied at start)').env('IPS_DEMO_DIR').default(defaultDir))
    .addOption(new Option('--warehouse <dir-or-uri>', 'where the demo\'s Iceberg tables go, e.g. s3://lake/demo (default <dir>/warehouse)').env('IPS_DEMO_WAREHOUSE'))
    .addOption(new Option('--catalog <uri>', 'postgresql://… JDBC/SQL catalog for the tables (default: Hadoop layout with version-hint.text)').env('IPS_DEMO_CATALOG'))
    .option('--catalog-name <name>', 'catalog_name in the SQL catalog (default ips_demo)')
    .addOption(new Option('--s3-endpoint <url>', 'S3 endpoint for an s3:// warehouse, e.g. http://127.0.0.1:9000 for MinIO').env('IPS_S3_ENDPOINT'))
    .addOption(new Option('--s3-region <region>', 'S3 region').env('AWS_REGION'))
    .addOption(new Option('--ips-url <url>', 'use this running ips (e.g. the docker-compose stack) instead of starting one in-process').env('IPS_URL'))
    .addOption(new Option('--ips-token <token>', 'admin token for --ips-url').env('IPS_TOKEN'))
    .addOption(new Option('--callback-host <host>', 'host a separate ips uses to reach this process\'s run receiver (default 127.0.0.1)').env('IPS_DEMO_CALLBACK_HOST'))
    .addOption(new Option('--engine-threads <n>', 'DuckDB worker threads of both pipelines (default 1: the CPU-cheapest, the demo compares CPU)').env('IPS_DEMO_ENGINE_THREADS'))
    .option('--json', 'print the report as JSON');
}

async function monthRun(opts: DemoOptions, extra: Record<string, number | undefined> = {}) {
  const { parsePlaybackOptions } = await import('../playback/model.js');
  const options = parsePlaybackOptions(Object.fromEntries(Object.entries({
    days: int(opts.days, 'days'),
    rowsPerDay: int(opts.rowsPerDay, 'rows-per-day'),
    profiles: int(opts.profiles, 'profiles'),
    lateFraction: opts.lateFraction === undefined ? undefined : Number(opts.lateFraction),
    lookbackDays: int(opts.lookbackDays, 'lookback-days'),
    maxLatenessDays: opts.lookbackDays === undefined ? undefined : Math.min(13, Number(opts.lookbackDays) - 1),
    seed: int(opts.seed, 'seed'),
    ...extra,
  }).filter(([, v]) => v !== undefined)));
  const workDir = path.resolve(opts.dir);
  const engineThreads = int(opts.engineThreads, 'engine-threads');
  if (engineThreads !== undefined && (engineThreads < 1 || engineThreads > 64)) throw new IpsError('INVALID_ARGUMENT', `--engine-threads must be 1..64, got ${engineThreads}`);
  return {
    options, workDir,
    ...(engineThreads !== undefined ? { engineThreads } : {}),
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
  };
}

export function demoCommand(): Command {
  const demo = new Command('demo').description('demonstrations of what ips is for');
  monthOptions(demo.command('playback')
    .description("Netflix's two-stage playback pipeline on a simulated month, incremental (ips) versus a 14-day lookback, runs started by ips triggers"), '.ips-demo')
    .option('--serve', 'keep ips running after the demo, with its web console at /ui (prints the URL and an admin token); Ctrl-C stops it')
    .option('--port <n>', 'port of the ips that --serve keeps up (default 8742; 0: any free port)')
    .action(async (opts: DemoOptions) => {
      await runAction(opts.json, async () => {
        const run = await monthRun(opts);
        if (opts.serve && opts.ipsUrl) throw new IpsError('INVALID_ARGUMENT', '--serve keeps the in-process ips up; with --ips-url the console is that ips\'s own /ui');
        const port = opts.serve ? int(opts.port, 'port') ?? 8742 : undefined;
        if (port !== undefined && port > 65535) throw new IpsError('INVALID_ARGUMENT', `--port must be 0..65535, got ${port}`);
        // The console is served with the API's auth: an admin token of this run only (or IPS_ADMIN_TOKEN).
        const adminToken = opts.serve ? process.env['IPS_ADMIN_TOKEN']?.split(',')[0]?.trim() || crypto.randomBytes(24).toString('hex') : undefined;
        freshWorkDir(run.workDir);
        const { options, workDir } = run;
        const { runPlayback } = await import('../playback/runner.js');
        const { progressLine, reportJson, reportText } = await import('../playback/report.js');
        const say = (line: string) => process.stderr.write(`${line}\n`);
        if (!opts.json) say(`ips demo playback: ${options.days} days × ${options.rowsPerDay.toLocaleString('en-US')} events, incremental versus ${options.lookbackDays}-day lookback (working in ${workDir})`);
        const result = await runPlayback({
          ...run,
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
  monthOptions(demo.command('backfill')
    .description('the playback month, then a corrected stage 1 re-applied to the last 14 days by one managed backfill (chunked by day), followed by stage 2 through lineage'), '.ips-demo-backfill')
    .option('--backfill-days <n>', 'the newest days the backfill re-processes (default 14, at most --lookback-days)')
    .option('--concurrency <n>', 'backfill chunks in flight (default 2)')
    .option('--live-days <n>', 'days that arrive while the backfill is open (paused meanwhile), through the live pipeline beside it (default 0)')
    .action(async (opts: DemoOptions & { backfillDays?: string; concurrency?: string; liveDays?: string }) => {
      await runAction(opts.json, async () => {
        const run = await monthRun(opts);
        const backfillDays = int(opts.backfillDays, 'backfill-days') ?? Math.min(14, run.options.days, run.options.lookbackDays);
        const concurrency = int(opts.concurrency, 'concurrency') ?? 2;
        const liveDays = int(opts.liveDays, 'live-days') ?? 0;
        const { backfillDemoOptions, runBackfillDemo } = await import('../playback/backfill-demo.js');
        backfillDemoOptions(run.options, backfillDays, concurrency, liveDays); // bad knobs fail before the directory is touched
        freshWorkDir(run.workDir);
        const { backfillProgressLine, backfillReportJson, backfillReportText, monthProgressLine } = await import('../playback/backfill-report.js');
        const { renderBackfill } = await import('./backfills.js');
        const say = (line: string) => process.stderr.write(`${line}\n`);
        const chatty = !opts.json || process.stderr.isTTY;
        if (!opts.json) say(`ips demo backfill: ${run.options.days} days × ${run.options.rowsPerDay.toLocaleString('en-US')} events, then a backfill of the last ${backfillDays} (working in ${run.workDir})`);
        const r = await runBackfillDemo({
          ...run, backfillDays, concurrency, liveDays,
          onLog: chatty ? say : () => {},
          onProgress: (p) => { if (chatty) say(monthProgressLine(p)); },
          onBackfill: (v) => { if (chatty) say(backfillProgressLine(v)); },
        });
        if (opts.json) printJson(backfillReportJson(r));
        else process.stdout.write(`\n${renderBackfill(r.view as unknown as Parameters<typeof renderBackfill>[0])}\n${backfillReportText(r)}\n`);
        if (!r.after.identical || r.liveWatermarkMoved || !r.view.complete) {
          throw new IpsError('DEMO_FAILED', `the backfill demo did not end right: status ${r.view.status}, ${r.after.daily.differencesVsRecomputation + r.after.agg.differencesVsRecomputation} rows differ from the recomputation`);
        }
      });
    });
  return demo;
}
