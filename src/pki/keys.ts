/** Key pairs as PEM (what TLS and files want) and as CryptoKeys (what X.509 generation wants). */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { ALG, subtle } from './x509.ts';

export interface KeyPairPem {
  privateKey: string;
  publicKey: string;
}

export function generateKeyPair(): KeyPairPem {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** SPKI DER, base64: how public keys travel in discovery messages. */
export function publicKeyB64(pem: string): string {
  return createPublicKey(pem).export({ type: 'spki', format: 'der' }).toString('base64');
}

/** A key's fingerprint: SHA-256 of its SPKI DER (given as base64), hex. Enrollment rules register hosts by it. */
export function keyFingerprint(spkiB64: string): string {
  return createHash('sha256').update(Buffer.from(spkiB64, 'base64')).digest('hex');
}

export function publicKeyFromB64(b64: string): KeyObject {
  return createPublicKey({ key: Buffer.from(b64, 'base64'), format: 'der', type: 'spki' });
}

export function signBytes(privateKeyPem: string, data: Buffer): Buffer {
  return sign('sha256', data, createPrivateKey(privateKeyPem));
}

export function verifyBytes(publicKey: KeyObject | string, data: Buffer, signature: Buffer): boolean {
  try {
    return verify('sha256', data, publicKey, signature);
  } catch {
    return false;
  }
}

export async function toCryptoKeys(pair: KeyPairPem): Promise<CryptoKeyPair> {
  const der = (pem: string) => Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  return {
    privateKey: await subtle.importKey('pkcs8', der(pair.privateKey), ALG, true, ['sign']),
    publicKey: await subtle.importKey('spki', der(pair.publicKey), ALG, true, ['verify']),
  };
}
