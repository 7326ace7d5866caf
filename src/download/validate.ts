import { PDF_MAGIC_WINDOW } from '../config.js';

const MAGIC = Buffer.from('%PDF-');

/**
 * Looks for `%PDF-` within the first PDF_MAGIC_WINDOW bytes, as PDF readers do, whatever the
 * Content-Type claimed. Holds at most that many bytes, and only until it has decided.
 */
export class PdfSniffer {
  private head: Buffer[] = [];
  private held = 0;
  private decided: boolean | null = null;

  /** false as soon as the window is full without the magic; true while undecided or valid. */
  push(chunk: Buffer): boolean {
    if (this.decided !== null) return this.decided;
    this.head.push(chunk);
    this.held += chunk.length;
    if (this.held >= PDF_MAGIC_WINDOW) return this.decide();
    return true;
  }

  finish(): boolean {
    return this.decided ?? this.decide();
  }

  private decide(): boolean {
    // Usually the first chunk alone covers the window: no copy of it.
    const first = this.head[0];
    const head = first && first.length >= PDF_MAGIC_WINDOW ? first.subarray(0, PDF_MAGIC_WINDOW) : Buffer.concat(this.head).subarray(0, PDF_MAGIC_WINDOW);
    this.decided = head.indexOf(MAGIC) !== -1;
    this.head = [];
    return this.decided;
  }
}
