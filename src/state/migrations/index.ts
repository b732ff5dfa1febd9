import { sql as initial } from './0001-initial.js';
import { sql as apiTokens } from './0002-api-tokens.js';
import { sql as triggers } from './0003-triggers.js';
import { sql as backfills } from './0004-backfills.js';
import { sql as triggerConditions } from './0005-trigger-conditions.js';
import { sql as restCatalog } from './0006-rest-catalog.js';
import { sql as backfillValidation } from './0007-backfill-validation.js';
import { sql as retention } from './0009-retention.js';
import { sql as rowChangelog } from './0010-row-changelog.js';
import { sql as fleetState } from './0012-fleet-state.js';
import { sql as batchArchive } from './0013-batch-archive.js';

/** A schema migration: plain SQL, run in one transaction with its bookkeeping row. */
export interface SqlMigration {
  /** Sorts in apply order; never renamed once released (it is the key in ips_migrations). */
  name: string;
  up: string;
}

/**
 * Every migration, in order. Add new ones at the end: a released migration never changes
 * (edit the schema with a new one). SQL lives in .ts modules so that the compiled dist/ has it.
 */
export const MIGRATIONS: readonly SqlMigration[] = [
  { name: '0001-initial', up: initial },
  { name: '0002-api-tokens', up: apiTokens },
  { name: '0003-triggers', up: triggers },
  { name: '0004-backfills', up: backfills },
  { name: '0005-trigger-conditions', up: triggerConditions },
  { name: '0006-rest-catalog', up: restCatalog },
  { name: '0007-backfill-validation', up: backfillValidation },
  { name: '0009-retention', up: retention },
  { name: '0010-row-changelog', up: rowChangelog },
  { name: '0012-fleet-state', up: fleetState },
  { name: '0013-batch-archive', up: batchArchive },
];
