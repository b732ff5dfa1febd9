import { Command } from 'commander';
import { changesCommand } from './changes.js';
import { inspectCommand } from './inspect.js';

const program = new Command('ips')
  .description('ips: incremental processing over Apache Iceberg')
  .version('0.1.0')
  .showHelpAfterError();
program.addCommand(inspectCommand());
program.addCommand(changesCommand());
await program.parseAsync(process.argv);
