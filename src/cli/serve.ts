import { Command, Option } from 'commander';
import { describeConfig } from '../state/index.js';
import { loadServiceConfig, settingsHelp } from '../service/config.js';
import { printJson, runAction } from './common.js';

interface ServeOptions {
  host?: string;
  port?: string;
  dataDir?: string;
  warehouse?: string;
  json?: boolean;
}

export function serveCommand(): Command {
  return new Command('serve')
    .description('run the ips service (HTTP API); with no DATABASE_URL, state is an embedded database in --data-dir')
    .addOption(new Option('--host <host>', 'address to listen on (default 127.0.0.1)').env('IPS_HOST'))
    .addOption(new Option('--port <port>', 'port (default 8742; 0 picks a free one)').env('IPS_PORT'))
    .addOption(new Option('--data-dir <dir>', 'embedded state and default warehouse (default .ips)').env('IPS_DATA_DIR'))
    .addOption(new Option('--warehouse <dir-or-uri>', 'where ICDC tables are written (default <data-dir>/warehouse)').env('IPS_WAREHOUSE'))
    .option('--json', 'print the start-up line as JSON')
    .addHelpText('after', () => `
Configuration: an optional file named by IPS_CONFIG (YAML or JSON), then the environment, then
these flags. Settings (file key and environment variable; docs/configuration.md says what each does):
${settingsHelp().map((x) => `  ${x}`).join('\n')}
Without IPS_ADMIN_TOKEN the API is open, which is allowed on a loopback address only.`)
    .action(async (opts: ServeOptions) => {
      await runAction(opts.json, async () => {
        const overrides: Record<string, string> = {};
        if (opts.host !== undefined) overrides.host = opts.host;
        if (opts.port !== undefined) overrides.port = opts.port;
        if (opts.dataDir !== undefined) overrides.data_dir = opts.dataDir;
        if (opts.warehouse !== undefined) overrides.warehouse = opts.warehouse;
        const config = loadServiceConfig({ overrides });
        const log = opts.json ? () => {} : (line: string) => process.stderr.write(`${line}\n`);
        // Loaded here: the HTTP stack is not needed by the client commands, which start faster without it.
        const { startServer } = await import('../api/server.js');
        const server = await startServer(config, { log });
        const info = {
          url: server.url,
          state: describeConfig(config.database),
          warehouse: config.warehouse,
          auth: config.auth,
          docs: `${server.url}/docs`,
          console: `${server.url}/ui/`,
          pid: process.pid,
          backfill_validation: config.backfillValidation,
        };
        if (opts.json) printJson(info);
        else {
          process.stdout.write(`ips listening on ${info.url} (API docs: ${info.docs})\n`);
          process.stdout.write(`  state: ${info.state}\n  warehouse: ${info.warehouse}\n  console: ${info.console}\n`);
          process.stdout.write(config.auth === 'none'
            ? '  auth: none (loopback only; set IPS_ADMIN_TOKEN to require tokens)\n'
            : '  auth: bearer tokens\n');
          if (config.backfillValidation) process.stdout.write('  backfill validation: on (backfills\' --validate commands run in this process)\n');
        }
        await new Promise<void>((resolve) => {
          const stop = (signal: string) => {
            log(`${signal}: shutting down`);
            server.close().then(resolve, (e: unknown) => {
              process.stderr.write(`shutdown failed: ${String(e)}\n`);
              process.exitCode = 1;
              resolve();
            });
          };
          process.once('SIGINT', () => stop('SIGINT'));
          process.once('SIGTERM', () => stop('SIGTERM'));
        });
      });
    });
}
