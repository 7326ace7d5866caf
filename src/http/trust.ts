import { readFileSync } from 'node:fs';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';

/**
 * The trust of a run with --ca-file: Node.js's bundled roots, the certificates of
 * NODE_EXTRA_CA_CERTS (which the new store does not inherit) and the file's. Made once: given as
 * undici's `ca` option instead, every TLS connection would parse the ~140 roots again.
 */
export function trustWith(ca: string): SecureContext {
  return trustByAdding(ca) ?? trustByListing(ca);
}

/**
 * The certificates added to a default context, which makes Node.js copy its bundled roots already
 * parsed; a `ca` option listing every root parses them again, tens of milliseconds at each start.
 * Null where the native context has no addCACert (what Node.js's own `ca` option calls for each
 * certificate, not a public interface).
 */
export function trustByAdding(ca: string): SecureContext | null {
  const context = createSecureContext();
  const native = (context as { context?: { addCACert?: (pem: string) => void } }).context;
  if (typeof native?.addCACert !== 'function') return null;
  // A system bundle given as NODE_EXTRA_CA_CERTS mostly repeats the bundled roots, which the copied
  // store holds already: only the others are parsed and added.
  const bundled = new Set(rootCertificates.map(base64Of));
  for (const pem of [...pemCertificates(extraCaCerts()).filter((c) => !bundled.has(base64Of(c))), ca]) native.addCACert(pem);
  return context;
}

/** The same trust through the public `ca` option: every root listed and parsed again. */
export function trustByListing(ca: string): SecureContext {
  return createSecureContext({ ca: [...rootCertificates, ...pemCertificates(extraCaCerts()), ca] });
}

/** A PEM certificate's base64 alone: the same certificate whatever its line breaks. */
const base64Of = (pem: string): string => pem.replace(/-----[^-]+-----|\s+/g, '');

/** The text of NODE_EXTRA_CA_CERTS, which a `ca` option would otherwise replace. */
function extraCaCerts(): string {
  const file = process.env.NODE_EXTRA_CA_CERTS;
  try {
    return file ? readFileSync(file, 'utf8') : '';
  } catch {
    // Node.js itself only warns about an unreadable file; its certificates are then not trusted either.
    return '';
  }
}

/** The PEM certificates in a text, in order. */
export function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}
