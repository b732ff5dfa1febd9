import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** The `data` of an ips trigger's CloudEvent, as far as the demo reads it. */
export interface TriggerData {
  subscription: string;
  consumer: string;
  batch_id: string;
  dedup_key: string;
  tables: { table: string; icdc_table: string | null; icdc_metadata_location: string | null; record_count: string; file_count: number }[];
  /** A backfill chunk's trigger: which chunk, and its range (validated where it is used). */
  backfill?: unknown;
}

/**
 * The orchestrator side of the demo: an HTTP endpoint that ips's webhook sink starts runs on.
 * It checks the HMAC signature like any receiver should, answers at once (the run happens
 * after the answer, as an orchestrator queues a run), and starts one run per dedup key: a
 * redelivered trigger is acknowledged but never runs twice.
 */
export class RunReceiver {
  private server: http.Server | null = null;
  private readonly seen = new Set<string>();
  duplicates = 0;
  rejected = 0;

  constructor(private readonly secret: string, private readonly onRun: (stage: string, data: TriggerData) => void) {}

  async listen(host = '127.0.0.1'): Promise<string> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const m = /^\/runs\/([a-z0-9_-]+)$/.exec(req.url ?? '');
        const expected = `sha256=${crypto.createHmac('sha256', this.secret).update(body).digest('hex')}`;
        const got = String(req.headers['x-ips-signature-256'] ?? '');
        if (req.method !== 'POST' || !m) {
          res.writeHead(404).end();
          return;
        }
        if (got.length !== expected.length || !crypto.timingSafeEqual(Buffer.from(got), Buffer.from(expected))) {
          this.rejected++;
          res.writeHead(401).end('bad signature');
          return;
        }
        const event = JSON.parse(body.toString('utf8')) as { id: string; data: TriggerData };
        if (this.seen.has(event.id)) {
          this.duplicates++;
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"duplicate"}');
          return;
        }
        this.seen.add(event.id);
        res.writeHead(202, { 'content-type': 'application/json' }).end('{"status":"queued"}');
        this.onRun(m[1]!, event.data);
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(0, host, () => resolve());
    });
    const a = this.server.address() as AddressInfo;
    return `http://${host}:${a.port}`;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
