import type { Transform } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { BodySink } from '../http/fetch-into.js';

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

/**
 * The sink undici feeds for an encoded body: encoded bytes into the decoder, decoded bytes into
 * `part`, each side pausing the other when it is full. A decoder error fails the response.
 */
export class DecodingSink implements BodySink {
  private error: Error | null = null;
  private readonly drained: Promise<void>;

  constructor(private readonly decoder: Transform, private readonly part: BodySink, fail: (err: Error) => void) {
    decoder.on('data', (decoded: Buffer) => {
      try {
        if (!part.accept(decoded, () => decoder.resume())) decoder.pause();
      } catch (err) {
        decoder.destroy(err as Error);
      }
    });
    this.drained = new Promise((resolve, reject) => {
      decoder.on('end', resolve);
      decoder.on('error', (err: Error) => {
        this.error ??= err;
        reject(err);
        fail(err);
      });
    });
    this.drained.catch(() => undefined);
  }

  accept(chunk: Buffer, resume: () => void): boolean {
    if (this.error) throw this.error;
    if (this.decoder.write(chunk)) return true;
    this.decoder.once('drain', resume);
    return false;
  }

  async end(): Promise<void> {
    this.decoder.end();
    try {
      await this.drained;
    } catch (err) {
      await this.part.abort(err as Error);
      throw err;
    }
    await this.part.end();
  }

  async abort(err: Error): Promise<void> {
    if (!this.decoder.destroyed) this.decoder.destroy();
    await this.part.abort(err);
  }
}
