/**
 * Repository encryption: a random master key, kept in key files sealed with a key derived from
 * the passphrase by scrypt (memory-hard: 2^15 × 8 × 128 bytes = 32 MiB per guess). Everything
 * stored is sealed with AES-256-GCM (authenticated: a flipped bit is an error, never wrong data).
 * Blob ids are an HMAC of the plaintext under a second key, so ids do not tell which well-known
 * content a repository holds. An unencrypted repository (on purpose) uses plain SHA-256 ids.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, scrypt } from 'node:crypto';

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}
const DEFAULT_SCRYPT: ScryptParams = { N: 2 ** 15, r: 8, p: 1 };

/** A key file as stored: the KDF's parameters and salt, and the sealed master key. */
export interface KeyFile {
  kdf: 'scrypt';
  params: ScryptParams;
  salt: string;
  sealed: string;
  created: string;
}

export class WrongPassphraseError extends Error {
  constructor() {
    super('wrong passphrase: no key of this repository opens with it');
  }
}

class IntegrityError extends Error {}

const NONCE = 12;
const TAG = 16;

/** Seals and opens what the repository stores, and names blobs. */
export interface Crypter {
  readonly encrypted: boolean;
  seal(plain: Uint8Array): Buffer;
  open(sealed: Uint8Array, what: string): Buffer;
  blobId(plain: Uint8Array): string;
}

export class AeadCrypter implements Crypter {
  readonly encrypted = true;
  private readonly enc: Buffer;
  private readonly mac: Buffer;

  constructor(master: Buffer) {
    if (master.length !== 64) throw new Error('a master key is 64 bytes');
    this.enc = master.subarray(0, 32);
    this.mac = master.subarray(32);
  }

  /** Random nonces drawn in bulk: one system call per 1,024 seals instead of one each. */
  private nonces = Buffer.alloc(0);
  private nextNonce = 0;

  private nonce(): Buffer {
    if (this.nextNonce + NONCE > this.nonces.length) {
      this.nonces = randomBytes(NONCE * 1024);
      this.nextNonce = 0;
    }
    this.nextNonce += NONCE;
    return this.nonces.subarray(this.nextNonce - NONCE, this.nextNonce);
  }

  seal(plain: Uint8Array): Buffer {
    const nonce = this.nonce();
    const c = createCipheriv('aes-256-gcm', this.enc, nonce);
    // GCM's final() adds no bytes: one allocation for the ciphertext, one for the sealed result.
    const body = c.update(plain);
    c.final();
    return Buffer.concat([nonce, body, c.getAuthTag()], NONCE + body.length + TAG);
  }

  open(sealed: Uint8Array, what: string): Buffer {
    if (sealed.length < NONCE + TAG) throw new IntegrityError(`${what} is too short to be sealed data (${sealed.length} bytes)`);
    const b = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length);
    const d = createDecipheriv('aes-256-gcm', this.enc, b.subarray(0, NONCE));
    d.setAuthTag(b.subarray(b.length - TAG));
    try {
      const plain = d.update(b.subarray(NONCE, b.length - TAG));
      d.final();
      return plain;
    } catch {
      throw new IntegrityError(`${what} is damaged: its authentication tag does not match`);
    }
  }

  blobId(plain: Uint8Array): string {
    return createHmac('sha256', this.mac).update(plain).digest('hex');
  }
}

/**
 * The passphrase of one key scope's repository (a volume's backups, or a host's files), derived
 * from the cluster's master secret: the controller keeps the master and hands a host only the
 * passphrases of what it backs up or restores, so a host cannot read or write any other scope.
 */
export function scopePassphrase(master: string, scope: string): string {
  return createHmac('sha256', master).update(`outrig backup scope\0${scope}`).digest('base64url');
}

export class PlainCrypter implements Crypter {
  readonly encrypted = false;
  seal(plain: Uint8Array): Buffer {
    return Buffer.from(plain);
  }
  open(sealed: Uint8Array): Buffer {
    return Buffer.from(sealed);
  }
  blobId(plain: Uint8Array): string {
    return createHash('sha256').update(plain).digest('hex');
  }
}

function derive(passphrase: string, salt: Buffer, p: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(passphrase.normalize('NFC'), salt, 32, { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r + 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

export function newMasterKey(): Buffer {
  return randomBytes(64);
}

export async function sealMasterKey(passphrase: string, master: Buffer, params: ScryptParams = DEFAULT_SCRYPT, now = new Date()): Promise<KeyFile> {
  const salt = randomBytes(32);
  const kek = await derive(passphrase, salt, params);
  const nonce = randomBytes(NONCE);
  const c = createCipheriv('aes-256-gcm', kek, nonce);
  const body = Buffer.concat([c.update(master), c.final()]);
  return {
    kdf: 'scrypt',
    params,
    salt: salt.toString('base64'),
    sealed: Buffer.concat([nonce, body, c.getAuthTag()]).toString('base64'),
    created: now.toISOString(),
  };
}

export async function openMasterKey(passphrase: string, kf: KeyFile): Promise<Buffer> {
  const kek = await derive(passphrase, Buffer.from(kf.salt, 'base64'), kf.params);
  const b = Buffer.from(kf.sealed, 'base64');
  const d = createDecipheriv('aes-256-gcm', kek, b.subarray(0, NONCE));
  d.setAuthTag(b.subarray(b.length - TAG));
  try {
    const master = Buffer.concat([d.update(b.subarray(NONCE, b.length - TAG)), d.final()]);
    if (master.length !== 64) throw new WrongPassphraseError();
    return master;
  } catch {
    throw new WrongPassphraseError();
  }
}
