import crypto from 'node:crypto';
import { describeSinkConfig, revealHeaders, secretsOf, type WebhookSinkConfig } from './config.js';
import { httpRequest, statusError, type HttpContext } from './http.js';
import { payloadToJson, stringifyJson, type TriggerPayloadJson } from './payload.js';
import type { DeliverOptions, DeliveryResult, Sink, TriggerPayload } from './types.js';

/**
 * Generic webhook: one POST per trigger, a CloudEvents 1.0 event in structured mode.
 *
 *   POST <url>
 *   content-type: application/cloudevents+json; charset=utf-8
 *   idempotency-key: <dedup key>
 *   x-ips-signature-256: sha256=<hex HMAC-SHA256(secret, raw body bytes)>   (when a secret is set)
 *
 *   { "specversion": "1.0", "id": "<dedup key>", "source": "ips/subscriptions/<subscription>",
 *     "type": "dev.ips.batch.ready", "subject": "<consumer>", "time": "<created at>",
 *     "datacontenttype": "application/json", "data": { <the trigger payload, snake_case> } }
 *
 * Answers: 2xx → started; 409 → duplicate (the receiver already has this id); 408, 425, 429,
 * 5xx, network errors and timeouts → retried; any other status → a non-retryable error.
 *
 * A redelivery of the same batch sends the same `id` and `Idempotency-Key`: a receiver
 * deduplicates on either (answering 409 or 2xx for a repeat), so a retry never starts a second run.
 *
 * Verifying the signature (receiver side): read the request body as raw bytes, before any JSON
 * parsing or re-serialisation; compute HMAC-SHA256 over those bytes with the shared secret;
 * hex-encode it (lower-case) and compare `sha256=<hex>` with the header using a constant-time
 * comparison (Node: crypto.timingSafeEqual; Python: hmac.compare_digest). Reject on mismatch.
 * The event's `time` is inside the signed bytes; a receiver may reject events older than its
 * replay window.
 */

export const CLOUDEVENT_TYPE = 'dev.ips.batch.ready';
export const SIGNATURE_HEADER = 'x-ips-signature-256';

export interface TriggerCloudEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  subject: string;
  time: string;
  datacontenttype: 'application/json';
  data: TriggerPayloadJson;
}

export function webhookEvent(p: TriggerPayload): TriggerCloudEvent {
  return {
    specversion: '1.0',
    id: p.dedupKey,
    source: `ips/subscriptions/${encodeURIComponent(p.subscription)}`,
    type: CLOUDEVENT_TYPE,
    subject: p.consumer,
    time: p.createdAt,
    datacontenttype: 'application/json',
    data: payloadToJson(p),
  };
}

/** `sha256=<hex>` of the body bytes: the value of X-Ips-Signature-256. */
export function webhookSignature(secret: string, body: Uint8Array | string): string {
  return `sha256=${crypto.createHmac('sha256', secret).update(body).digest('hex')}`;
}

export class WebhookSink implements Sink {
  readonly type = 'webhook' as const;

  constructor(
    private readonly config: WebhookSinkConfig,
    private readonly timeoutMs: number,
  ) {}

  describe(): Record<string, unknown> {
    return describeSinkConfig(this.config);
  }

  async deliver(p: TriggerPayload, opts?: DeliverOptions): Promise<DeliveryResult> {
    const ctx: HttpContext = { label: 'webhook', timeoutMs: this.timeoutMs, signal: opts?.signal, secrets: secretsOf(this.config) };
    const body = Buffer.from(stringifyJson(webhookEvent(p)), 'utf8');
    const headers: Record<string, string> = {
      ...revealHeaders(this.config.headers),
      'content-type': 'application/cloudevents+json; charset=utf-8',
      'idempotency-key': p.dedupKey,
    };
    if (this.config.secret !== undefined) headers[SIGNATURE_HEADER] = webhookSignature(this.config.secret.reveal(), body);
    const url = new URL(this.config.url);
    const res = await httpRequest(ctx, 'POST', url, headers, body);
    if (res.status >= 200 && res.status < 300) return { outcome: 'started', status: res.status };
    if (res.status === 409) return { outcome: 'duplicate', status: res.status, detail: 'the receiver already had this event (409)' };
    throw statusError(ctx, 'POST', url, res, webhookHint(res.status));
  }
}

function webhookHint(status: number): string {
  if (status === 401 || status === 403) return 'The receiver refused the credentials: check the sink\'s secret and headers';
  if (status === 404 || status === 405) return 'Check the webhook URL';
  if (status === 400 || status === 413 || status === 415 || status === 422) return 'The receiver rejected the event: it must accept CloudEvents structured mode (application/cloudevents+json)';
  return 'The receiver rejected the event; fix the receiver or the sink config, then retry the delivery';
}
