/** Certificate signing requests: made by agents, checked by the controller. */
import { toCryptoKeys, type KeyPairPem } from './keys.ts';
import { ALG, x509 } from './x509.ts';

export async function createCsr(name: string, pair: KeyPairPem): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${name}`, keys: await toCryptoKeys(pair), signingAlgorithm: ALG });
  return csr.toString('pem');
}

export interface CheckedCsr {
  commonName: string;
  publicKey: x509.PublicKey;
  /** SPKI DER base64 of the requested key, to compare with the key the host proved in discovery. */
  publicKeyB64: string;
}

/** Parses a CSR and checks its self-signature (proof the requester holds the key). */
export async function checkCsr(pem: string): Promise<CheckedCsr> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch (e) {
    throw new Error(`malformed CSR: ${(e as Error).message}`, { cause: e });
  }
  if (!(await csr.verify())) throw new Error('CSR signature does not verify');
  const cn = csr.subjectName.getField('CN')[0];
  if (!cn) throw new Error('CSR has no common name');
  return { commonName: cn, publicKey: csr.publicKey, publicKeyB64: Buffer.from(csr.publicKey.rawData).toString('base64') };
}
