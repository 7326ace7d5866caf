import { Writable, pipeline, type Transform } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';

/**
 * Requests say `Accept-Encoding: identity`, but some servers compress anyway. Such a body is
 * decoded on its way into the part; the part writer counts decoded bytes, so --max-bytes bounds
 * what a small compressed body may expand to (a decompression bomb stops at the limit).
 */
export function decoderFor(encoding: string | null): Transform | null | 'unsupported' {
  const codings = (encoding ?? '').toLowerCase().split(',').map((s) => s.trim()).filter((s) => s !== '' && s !== 'identity');
  if (codings.length === 0) return null;
  if (codings.length > 1) return 'unsupported';
  switch (codings[0]) {
    case 'gzip':
    case 'x-gzip':
      return createGunzip();
    case 'deflate':
      return createInflate();
    case 'br':
      return createBrotliDecompress();
    default:
      return 'unsupported';
  }
}

/** The writable undici feeds: encoded bytes in, decoded bytes into `sink`; finishes when the sink has. */
export class DecodingWriter extends Writable {
  private done: Promise<void>;
  constructor(private readonly decoder: Transform, private readonly sink: Writable) {
    super();
    this.done = new Promise((resolve, reject) => {
      pipeline(decoder, sink, (err) => {
        if (err) {
          reject(err);
          this.destroy(err);
        } else resolve();
      });
    });
    this.done.catch(() => undefined);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.decoder.write(chunk, (err) => callback(err ?? null));
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.decoder.end();
    this.done.then(() => callback(), callback);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.sink.destroyed) this.sink.destroy(err ?? undefined);
    if (!this.decoder.destroyed) this.decoder.destroy();
    callback(err);
  }
}
