import client from 'prom-client';
import type { DatabaseStats } from '../state/database.js';

/** Prometheus metrics of one service process (one registry per app, so tests can build many). */
export class Metrics {
  readonly registry = new client.Registry();
  readonly requests: client.Counter<'method' | 'route' | 'status'>;
  readonly duration: client.Histogram<'method' | 'route'>;
  readonly batches: client.Counter<'event'>;
  readonly triggers: client.Counter<'event'>;
  readonly backfillValidations: client.Counter<'result'>;

  constructor() {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'ips_' });
    this.requests = new client.Counter({
      name: 'ips_http_requests_total', help: 'HTTP requests by route template and status', labelNames: ['method', 'route', 'status'], registers: [this.registry],
    });
    this.duration = new client.Histogram({
      name: 'ips_http_request_duration_seconds', help: 'HTTP request latency by route template', labelNames: ['method', 'route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry],
    });
    this.batches = new client.Counter({
      name: 'ips_batch_events_total',
      help: 'Step protocol outcomes: prepared, reused (retried prepare), no_changes, committed, commit_replayed, aborted, conflict',
      labelNames: ['event'], registers: [this.registry],
    });
    this.triggers = new client.Counter({
      name: 'ips_trigger_events_total',
      help: 'Trigger loop outcomes: polled, table_changed, fired, delivered, duplicate (the orchestrator had the run), retry, dead',
      labelNames: ['event'], registers: [this.registry],
    });
    this.backfillValidations = new client.Counter({
      name: 'ips_backfill_validations_total',
      help: 'Backfill validation commands run by this process (backfill_validation: on), by result: passed, failed',
      labelNames: ['result'], registers: [this.registry],
    });
  }

  /**
   * The state database's counts (statements, waits for an answer, transactions), read at each
   * scrape: what a step costs the database, and whether a change made it cheaper.
   */
  observeDatabase(stats: Readonly<DatabaseStats>): void {
    const counter = (name: string, help: string, read: () => number): void => {
      new client.Counter({
        name, help, registers: [this.registry],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    };
    counter('ips_db_statements_total', 'Statements this process sent to its state database (BEGIN and COMMIT included)', () => stats.statements);
    counter('ips_db_round_trips_total', 'Times this process waited for an answer of its state database (BEGIN is sent with the first statement of its transaction)', () => stats.roundTrips);
    counter('ips_db_transactions_total', 'Transactions this process ran on its state database (retries included)', () => stats.transactions);
  }
}
