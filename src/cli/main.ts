import { Command } from 'commander';
import { changesCommand } from './changes.js';
import { consumersCommand } from './consumers.js';
import { inspectCommand } from './inspect.js';
import { serveCommand } from './serve.js';
import { stepCommand } from './step.js';
import { tablesCommand } from './tables.js';

const program = new Command('ips')
  .description('ips: incremental processing over Apache Iceberg')
  .version('0.1.0')
  .showHelpAfterError();
program.addCommand(inspectCommand());
program.addCommand(changesCommand());
program.addCommand(serveCommand());
program.addCommand(stepCommand());
program.addCommand(tablesCommand());
program.addCommand(consumersCommand());
await program.parseAsync(process.argv);
