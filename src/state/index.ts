import { BatchesRepo } from './batches.js';
import { ConsumersRepo } from './consumers.js';
import { databaseConfigFromEnv, openDatabase, type Database, type DatabaseConfig, type Queryable, type TransactionOptions } from './database.js';
import { migrate, type MigrateOptions, type MigrateResult } from './migrate.js';
import { SourceTablesRepo } from './source-tables.js';
import { TokensRepo } from './tokens.js';
import { OutboxRepo } from './outbox.js';
import { SubscriptionsRepo } from './subscriptions.js';
import { TableWatchRepo } from './table-watch.js';
import { WatermarksRepo } from './watermarks.js';
import { BackfillsRepo } from './backfills.js';
import { IcdcTablesRepo } from './icdc-tables.js';
import { RetentionRepo } from './retention.js';
import { SignalsRepo } from './signals.js';
import { PartitionsRepo } from './partitions.js';

export * from './database.js';
export * from './common.js';
export * from './migrate.js';
export * from './source-tables.js';
export * from './consumers.js';
export * from './watermarks.js';
export * from './batches.js';
export * from './tokens.js';
export * from './table-watch.js';
export * from './subscriptions.js';
export * from './outbox.js';
export * from './backfills.js';
export * from './icdc-tables.js';
export * from './retention.js';
export * from './signals.js';
export * from './partitions.js';

/** The repositories over one handle: the database, or a transaction (then all of them share it). */
export interface Repositories {
  q: Queryable;
  sourceTables: SourceTablesRepo;
  consumers: ConsumersRepo;
  watermarks: WatermarksRepo;
  batches: BatchesRepo;
  tokens: TokensRepo;
  watch: TableWatchRepo;
  subscriptions: SubscriptionsRepo;
  outbox: OutboxRepo;
  backfills: BackfillsRepo;
  icdcTables: IcdcTablesRepo;
  retention: RetentionRepo;
  signals: SignalsRepo;
  partitions: PartitionsRepo;
}

export function repositories(q: Queryable): Repositories {
  return {
    q,
    sourceTables: new SourceTablesRepo(q),
    consumers: new ConsumersRepo(q),
    watermarks: new WatermarksRepo(q),
    batches: new BatchesRepo(q),
    tokens: new TokensRepo(q),
    watch: new TableWatchRepo(q),
    subscriptions: new SubscriptionsRepo(q),
    outbox: new OutboxRepo(q),
    backfills: new BackfillsRepo(q),
    icdcTables: new IcdcTablesRepo(q),
    retention: new RetentionRepo(q),
    signals: new SignalsRepo(q),
    partitions: new PartitionsRepo(q),
  };
}

/** The service's state: an open, migrated database and its repositories. */
export class State {
  readonly repos: Repositories;

  private constructor(readonly db: Database, readonly migration: MigrateResult) {
    this.repos = repositories(db);
  }

  /**
   * Opens the configured database (default: from the environment, see databaseConfigFromEnv)
   * and applies pending migrations before returning.
   */
  static async open(config: DatabaseConfig = databaseConfigFromEnv(), options: MigrateOptions = {}): Promise<State> {
    const db = await openDatabase(config);
    try {
      return new State(db, await migrate(db, options));
    } catch (e) {
      await db.close().catch(() => {});
      throw e;
    }
  }

  /** Runs fn in one transaction with repositories bound to it. */
  withTransaction<T>(fn: (repos: Repositories) => Promise<T>, options?: TransactionOptions): Promise<T> {
    return this.db.withTransaction((tx) => fn(repositories(tx)), options);
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
