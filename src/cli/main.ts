import type { Command } from 'commander';
import { Command as Program } from 'commander';

/**
 * Each command's module is loaded only when that command runs (or for the full help), so that
 * `ips step …` in a workflow does not load the Iceberg reader or the HTTP server.
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  inspect: async () => (await import('./inspect.js')).inspectCommand(),
  changes: async () => (await import('./changes.js')).changesCommand(),
  serve: async () => (await import('./serve.js')).serveCommand(),
  step: async () => (await import('./step.js')).stepCommand(),
  tables: async () => (await import('./tables.js')).tablesCommand(),
  consumers: async () => (await import('./consumers.js')).consumersCommand(),
  subscriptions: async () => (await import('./subscriptions.js')).subscriptionsCommand(),
  signals: async () => (await import('./signals.js')).signalsCommand(),
  demo: async () => (await import('./demo.js')).demoCommand(),
  backfills: async () => (await import('./backfills.js')).backfillsCommand(),
  lineage: async () => (await import('./backfills.js')).lineageCommand(),
  retention: async () => (await import('./retention.js')).retentionCommand(),
};

const program = new Program('ips')
  .description('ips: incremental processing over Apache Iceberg')
  .version('0.1.0')
  .showHelpAfterError();
const wanted = process.argv[2];
const names = wanted !== undefined && Object.hasOwn(COMMANDS, wanted) ? [wanted] : Object.keys(COMMANDS);
for (const name of names) program.addCommand(await COMMANDS[name]!());
if (process.argv.includes('--json')) jsonUsageErrors(program);
await program.parseAsync(process.argv);

/**
 * With --json, a usage error (unknown option, missing argument) is JSON too, like every other
 * error, so that a script that parses stderr never meets commander's text.
 */
function jsonUsageErrors(cmd: Command): void {
  cmd.showHelpAfterError(false).configureOutput({
    outputError: (text, write) => write(JSON.stringify({ error: { code: 'USAGE', message: text.trim().replace(/^error: /, '') } }) + '\n'),
  });
  for (const sub of cmd.commands) jsonUsageErrors(sub);
}
