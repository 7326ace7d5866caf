import { ItemError } from '../errors.js';
import type { BodySink } from '../http/fetch-into.js';
import { LANDING_MAX_BYTES } from '../resolve/landing.js';
import type { PartWriter } from './part-writer.js';

/** An HTML answer where a PDF was asked for: the page, for the landing step to read. */
export class HtmlPage extends ItemError {
  constructor(
    readonly pageUrl: string,
    readonly html: string,
    httpStatus: number | null,
  ) {
    super('not_pdf', 'the answer is an HTML page, not a PDF', { httpStatus });
  }
}

/** The page is read far enough: the rest of it is not. */
export class PageFull extends Error {}

/** The PDF check needs this many bytes to decide (SPEC §4: the header within the first 1,024). */
const SNIFF_BYTES = 1024;

const notPdf = (err: unknown): boolean => err instanceof ItemError && err.code === 'not_pdf';

/**
 * The body of an answer served as HTML. It is written as a PDF while it may be one (a PDF served
 * as text/html is still stored), and kept as a page once the PDF check fails on its first bytes:
 * up to LANDING_MAX_BYTES, the rest not read. `onPage` is told when it becomes a page.
 */
export class PageSink implements BodySink {
  private page: Buffer[] | null = null;
  private head: Buffer[] = [];
  private headBytes = 0;
  private pageBytes = 0;
  private released: Promise<void> | null = null;

  constructor(
    private readonly writer: PartWriter,
    private readonly onPage: () => void,
  ) {}

  /** The page's text; empty while the body is still taken for a PDF. */
  html(): string {
    return this.page ? Buffer.concat(this.page).toString('utf8') : '';
  }

  accept(chunk: Buffer, resume: () => void): boolean {
    if (this.page) return this.keep(chunk);
    if (this.headBytes < SNIFF_BYTES) {
      this.head.push(Buffer.from(chunk));
      this.headBytes += chunk.length;
    }
    try {
      return this.writer.accept(chunk, resume);
    } catch (err) {
      if (!notPdf(err)) throw err;
      this.becomePage();
      return true;
    }
  }

  async end(): Promise<void> {
    if (this.page) return this.released!;
    try {
      await this.writer.end();
    } catch (err) {
      // A page shorter than the PDF check's window fails it only at its end.
      if (!notPdf(err)) throw err;
      this.becomePage();
      await this.released;
    }
  }

  abort(): Promise<void> {
    return this.writer.abort();
  }

  private becomePage(): void {
    this.page = this.head;
    this.pageBytes = this.headBytes;
    this.head = [];
    this.released = this.writer.abort();
    this.onPage();
  }

  private keep(chunk: Buffer): boolean {
    const room = LANDING_MAX_BYTES - this.pageBytes;
    this.page!.push(Buffer.from(chunk.subarray(0, Math.max(0, room))));
    this.pageBytes += Math.min(room, chunk.length);
    if (chunk.length >= room) throw new PageFull();
    return true;
  }
}
