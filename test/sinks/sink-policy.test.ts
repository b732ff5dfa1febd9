// Sink policy without a network: link-local and cloud metadata addresses are refused by default
// (even with no sink_allowed_hosts list), unless named exactly; response bodies are redacted
// before they reach a trigger's last_error, and a consumer's token sees the status line only.
import { describe, expect, it } from 'vitest';
import { IpsError } from '../../src/errors.js';
import { hostNotAllowed, isMetadataOrLinkLocal, parseSinkConfig } from '../../src/sinks/config.js';
import { excerpt, httpRequest, redactSecrets, statusError, withoutResponseBody } from '../../src/sinks/http.js';
import { SinkError } from '../../src/sinks/types.js';

describe('sink hosts', () => {
  const refused = ['169.254.169.254', '169.254.0.1', '[fe80::1]', '[fd00:ec2::254]', 'metadata.google.internal', 'METADATA.GOOGLE.INTERNAL.', '100.100.100.200', '[::ffff:169.254.169.254]', 'instance-data'];

  it.each(refused)('refuses %s with no allow-list, and with a wildcard list', (host) => {
    expect(hostNotAllowed(`http://${host}/latest/meta-data/`, undefined)).toMatch(/link-local or cloud metadata/);
    expect(hostNotAllowed(`http://${host}/x`, ['*.internal', '*.google.internal'])).not.toBeNull();
  });

  it('allows one only when the list names it exactly', () => {
    expect(hostNotAllowed('http://169.254.169.254/x', ['169.254.169.254'])).toBeNull();
    expect(hostNotAllowed('http://[fe80::1]:8080/x', ['[fe80::1]:8080'])).toBeNull();
  });

  it('leaves ordinary hosts as before', () => {
    expect(hostNotAllowed('https://hooks.example.com/x', undefined)).toBeNull();
    expect(hostNotAllowed('http://127.0.0.1:9000/x', undefined)).toBeNull();
    expect(hostNotAllowed('http://169.255.0.1/x', undefined)).toBeNull();
    expect(isMetadataOrLinkLocal('metadata.example.com')).toBe(false);
  });

  it('a subscription whose sink is a metadata address is INVALID_SINK', () => {
    let err: unknown;
    try {
      parseSinkConfig({ type: 'webhook', url: 'http://169.254.169.254/latest/meta-data/iam/security-credentials/' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IpsError);
    expect((err as IpsError).code).toBe('INVALID_SINK');
  });
});

describe('sink host names that resolve to metadata addresses', () => {
  const ctx = (addresses: string[]) => ({ label: 'webhook', timeoutMs: 2000, signal: undefined, secrets: [], lookup: async () => addresses.map((address) => ({ address })) });

  it.each([['169.254.169.254'], ['fe80::1'], ['::ffff:169.254.169.254'], ['fd00:ec2::254']])('a name resolving to %s is refused before any request, not retried', async (address) => {
    let err: unknown;
    try {
      await httpRequest(ctx(['10.1.2.3', address]), 'POST', new URL('http://hooks.example.test/h'), {}, '{}');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SinkError);
    expect((err as SinkError).message).toContain(`resolves to ${address}`);
    expect((err as SinkError).retryable).toBe(false);
  });

  it('a name resolving to ordinary addresses goes on to the request', async () => {
    let err: unknown;
    try {
      // Port 9 on loopback: nothing listens, so the request itself fails (retryable), after the check.
      await httpRequest({ label: 'webhook', timeoutMs: 2000, signal: undefined, secrets: [] }, 'POST', new URL('http://localhost:9/h'), {}, '{}');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SinkError);
    expect((err as SinkError).message).toContain('could not reach');
    expect((err as SinkError).retryable).toBe(true);
  });
});

describe('sink responses in last_error', () => {
  const body = JSON.stringify({
    error: 'unauthorized', token: 'tok_live_9f8e7d6c5b4a39281706', session: 'abc123def456', detail: 'Authorization: Bearer sk-1234567890abcdefghijkl was rejected',
    jwt: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U', aws: 'AKIAIOSFODNN7EXAMPLE/wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY',
  });

  it('masks credential-looking values and keeps the words', () => {
    const r = redactSecrets(body);
    for (const s of ['tok_live_9f8e7d6c5b4a39281706', 'abc123def456', 'sk-1234567890abcdefghijkl', 'eyJhbGciOiJIUzI1NiJ9', 'wJalrXUtnFEMIK7MDENG']) expect(r).not.toContain(s);
    expect(r).toContain('unauthorized');
    expect(r).toContain('was rejected');
  });

  it('an error keeps the status line for everyone and the (redacted, short) body for admins only', () => {
    const res = { status: 500, statusText: 'Internal Server Error', headers: new Headers(), text: `${body} ${'x'.repeat(1000)}` };
    const e = statusError({ label: 'webhook', timeoutMs: 1000, signal: undefined, secrets: [] }, 'POST', new URL('https://hooks.example.com/h'), res);
    expect(e.retryable).toBe(true);
    expect(e.message).toContain('answered 500 Internal Server Error (will retry)');
    expect(e.message).not.toContain('tok_live_9f8e7d6c5b4a39281706');
    expect(e.message.length).toBeLessThan(500);
    const consumerView = withoutResponseBody(e.message)!;
    expect(consumerView).toBe('webhook: POST https://hooks.example.com/h answered 500 Internal Server Error (will retry) (response body shown to admins only)');
    expect(excerpt('  a\n b  ', [])).toBe('a b');
  });
});
