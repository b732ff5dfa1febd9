import { IpsError, describeError, isIpsError } from '../errors.js';
import { stringifyJsonLossless } from '../iceberg/json.js';

export function printJson(value: unknown): void {
  process.stdout.write(stringifyJsonLossless(value, 2) + '\n');
}

/** Exit status of a process that a closed pipe stopped (128 + SIGPIPE), as `yes | head` gives. */
const BROKEN_PIPE_STATUS = 141;

/**
 * Runs a command body; typed errors become `error [CODE]: message` (or JSON with --json), exit 1.
 * The reader of stdout going away (`ips changes … --rows | head`) is no error of ips: the command
 * stops (its cleanup runs) and exits quietly with the status a pipeline expects of it.
 */
export async function runAction(json: boolean | undefined, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    if ((e as NodeJS.ErrnoException | null)?.code === 'EPIPE') {
      process.exitCode = BROKEN_PIPE_STATUS;
      return;
    }
    const err = isIpsError(e) ? e : new IpsError('INTERNAL', describeError(e), { cause: e });
    if (json) process.stderr.write(stringifyJsonLossless({ error: { code: err.code, message: err.message } }) + '\n');
    else process.stderr.write(`error [${err.code}]: ${err.message}\n`);
    if (!isIpsError(e) && process.env['IPS_DEBUG']) process.stderr.write(`${(e as Error).stack}\n`);
    process.exitCode = 1;
  }
}

/** A one-line progress display on a terminal; silent when stderr is not a TTY. */
export function progress(label: string): (done: number, total: number) => void {
  if (!process.stderr.isTTY) return () => {};
  return (done, total) => {
    process.stderr.write(`\r${label} ${done}/${total}`);
    if (done === total) process.stderr.write('\r\x1b[K');
  };
}
