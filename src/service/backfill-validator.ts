import { describeError } from '../errors.js';
import type { State } from '../state/index.js';
import { DEFAULT_VALIDATION_TIMEOUT_SECONDS, runValidationCommand, validationEnv } from '../backfill/validation.js';
import { Loop } from './loop.js';

/**
 * The service's backfill validation loop, OFF unless the configuration says
 * `backfill_validation: on` (IPS_BACKFILL_VALIDATION). When on, this replica claims a committed
 * chunk that has no validation result, runs its backfill's `--validate` command, and records
 * the result; chunks pushed through a subscription sink (committed by an orchestrator over
 * HTTP) are validated this way.
 *
 * Why it is off by default: it runs shell commands, written by whoever holds an admin token,
 * as the service's user on the service's host. Turning it on makes an admin token worth a shell
 * there. The command gets a minimal environment (PATH, HOME, LANG, LC_ALL, TZ, TMPDIR, the
 * variables named in `backfill_validation_env`, and the chunk's IPS_BACKFILL_* variables), never
 * the service's own (DATABASE_URL, tokens, cloud keys), runs in its own process group with the
 * backfill's timeout, and its output is kept to 4000 characters.
 */
export interface BackfillValidatorOptions {
  owner: string;
  tickMs: number;
  /** How long a claim lasts beyond the command's own timeout. */
  claimSeconds: number;
  /** Variable names of this process's environment the command also gets. */
  passEnv: string[];
  log: (line: string) => void;
  /** Working directory of the commands (default: the process's). */
  cwd?: string;
  onResult?: (passed: boolean) => void;
}

const BASE_ENV = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR'];

export class BackfillValidator {
  private readonly loop: Loop;

  constructor(private readonly state: State, private readonly o: BackfillValidatorOptions) {
    this.loop = new Loop('backfill-validation', o.tickMs, () => this.tick(), o.log);
  }

  start(): void {
    this.loop.start();
  }

  poke(): void {
    this.loop.poke();
  }

  async stop(): Promise<void> {
    await this.loop.stop();
  }

  /** Validates one chunk; true when it found one (the loop then looks again at once). */
  async tick(): Promise<boolean> {
    const repos = this.state.repos;
    // The claim outlives the backfill's timeout for its command, so no other replica starts the same command meanwhile.
    const claimed = await repos.backfills.claimValidation(this.o.owner, this.o.claimSeconds, DEFAULT_VALIDATION_TIMEOUT_SECONDS);
    if (!claimed) return false;
    const { backfill, chunk, chunks } = claimed;
    const command = backfill.spec.validate;
    if (typeof command !== 'string') return true;
    const timeout = typeof backfill.spec.validate_timeout_seconds === 'number' ? backfill.spec.validate_timeout_seconds : DEFAULT_VALIDATION_TIMEOUT_SECONDS;
    const env: NodeJS.ProcessEnv = {};
    for (const k of [...BASE_ENV, ...this.o.passEnv]) if (process.env[k] !== undefined) env[k] = process.env[k];
    Object.assign(env, validationEnv(backfill.name, { index: chunk.idx, range: chunk.range, outputs: chunk.outputs, batchId: chunk.batchId }, chunks));
    const r = await runValidationCommand(command, env, timeout, this.o.cwd);
    try {
      await repos.backfills.setValidation(backfill.name, chunk.idx, { passed: r.passed, exitCode: r.exitCode, output: r.output, by: `ips serve ${this.o.owner}` });
      this.o.onResult?.(r.passed);
    } catch (e) {
      // The chunk was retried meanwhile (no longer committed): its next commit is validated afresh.
      this.o.log(`backfill-validation: ${backfill.name} chunk ${chunk.idx}: ${describeError(e)}`);
    }
    return true;
  }
}
