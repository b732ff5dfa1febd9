import { Command } from 'commander';
import { inspectCommand } from './inspect.js';

const program = new Command('ips')
  .description('ips: incremental processing over Apache Iceberg')
  .version('0.1.0')
  .showHelpAfterError();
program.addCommand(inspectCommand());
await program.parseAsync(process.argv);
