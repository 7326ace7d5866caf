import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A self-signed certificate for 127.0.0.1 (P-256, the key type most HTTPS sites serve), made once
 * per output directory with openssl. Clients trust it explicitly: docstokg --ca-file, curl
 * --cacert, aria2c --ca-certificate, the Node.js floor NODE_EXTRA_CA_CERTS.
 */
export function makeCertificate(outDir) {
  const cert = join(outDir, 'bench-cert.pem');
  const key = join(outDir, 'bench-key.pem');
  if (!existsSync(cert) || !existsSync(key)) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
      '-days', '7', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  }
  return { cert, key };
}
