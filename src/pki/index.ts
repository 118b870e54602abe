export { ClusterCa, fingerprintOf, type IssuedCertificate } from './ca.ts';
export { createCsr, checkCsr, type CheckedCsr } from './csr.ts';
export { generateKeyPair, keyFingerprint, publicKeyB64, publicKeyFromB64, signBytes, verifyBytes, type KeyPairPem } from './keys.ts';
export { hasProfile, HOST_URI_PREFIX, profileOf, VNET_OID, vnetSegments, type Profile } from './profiles.ts';
export { x509 } from './x509.ts';
