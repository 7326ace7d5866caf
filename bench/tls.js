import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A self-signed certificate for the given addresses (P-256, the key type most HTTPS sites serve),
 * made once per output directory and name with openssl. Clients trust it explicitly: docstokg
 * --ca-file, curl --cacert, aria2c --ca-certificate, the Node.js floor NODE_EXTRA_CA_CERTS.
 */
export function makeCertificate(outDir, { name = 'bench', ips = ['127.0.0.1'] } = {}) {
  const cert = join(outDir, `${name}-cert.pem`);
  const key = join(outDir, `${name}-key.pem`);
  if (!existsSync(cert) || !existsSync(key)) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
      '-days', '7', '-subj', `/CN=${ips[0]}`, '-addext', `subjectAltName=${ips.map((ip) => `IP:${ip}`).join(',')}`], { stdio: 'ignore' });
  }
  return { cert, key };
}
