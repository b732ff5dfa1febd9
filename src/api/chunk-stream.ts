import { PassThrough, type Readable } from 'node:stream';

/**
 * A response body fed by a writer that pushes text chunks (src/capture/changes-json.ts's
 * ChunkSink): the writer waits while the client reads slowly, and stops with an error when the
 * client goes away, so a long answer never piles up in memory or writes into nothing. An error of
 * the writer ends the body early (the client sees a cut connection, not a complete document).
 */
export function chunkStream(write: (sink: (chunk: string) => Promise<void>) => Promise<void>): Readable {
  const out = new PassThrough();
  const sink = (chunk: string): Promise<void> => new Promise((resolve, reject) => {
    if (out.destroyed) return reject(new Error('the client went away'));
    if (out.write(chunk)) return resolve();
    const done = (): void => {
      out.off('drain', done);
      out.off('close', done);
      if (out.destroyed) reject(new Error('the client went away'));
      else resolve();
    };
    out.once('drain', done);
    out.once('close', done);
  });
  write(sink).then(() => out.end(), (e: unknown) => out.destroy(e instanceof Error ? e : new Error(String(e))));
  return out;
}
