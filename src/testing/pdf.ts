import { createHash } from 'node:crypto';

/**
 * A small, valid PDF (one page with a line of text) padded to roughly `size` bytes with a comment
 * stream; the same seed always gives the same bytes.
 */
export function samplePdf(seed: string, size = 2048): Buffer {
  const text = `docstokg sample ${seed}`.replace(/[()\\]/g, '');
  const content = `BT /F1 12 Tf 72 720 Td (${text}) Tj ET`;
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    `<< /Length ${content.length} >>\nstream\n${content}\nendstream`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  let body = '%PDF-1.4\n';
  const offsets: number[] = [];
  objects.forEach((o, i) => {
    offsets.push(body.length);
    body += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = body.length;
  body += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const off of offsets) body += `${String(off).padStart(10, '0')} 00000 n \n`;
  body += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n`;
  const head = Buffer.from(body, 'latin1');
  const tail = Buffer.from('%%EOF\n', 'latin1');
  const padLen = Math.max(0, size - head.length - tail.length);
  const pad = Buffer.alloc(padLen);
  // Comment lines of pseudo-random hex so every seed gives different bytes (and a different hash).
  let block = createHash('sha256').update(seed).digest();
  for (let i = 0; i < padLen; i += 64) {
    const line = Buffer.from(`%${block.toString('hex').slice(0, 62)}\n`, 'latin1');
    line.copy(pad, i, 0, Math.min(64, padLen - i));
    block = createHash('sha256').update(block).digest();
  }
  if (padLen > 0) pad[padLen - 1] = 0x0a;
  return Buffer.concat([head, pad, tail]);
}

export function sha256Hex(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}
