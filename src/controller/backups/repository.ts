/**
 * Which repository a backup is in, and with which passphrase. The cluster's master secret stays
 * with the controller: each backup is in the repository of its key scope (its volume's, or its
 * host's files'), whose passphrase is derived from the master and travels only inside the
 * operations that need it, on the mutual-TLS agent stream.
 */
import { join } from 'node:path';
import { scopePassphrase } from '../../backup/index.ts';
import type { BackupRepoRef } from '../../model/agent-protocol.ts';
import type { Backup } from '../../model/backup.ts';

export interface BackupConfig {
  /** The repository backups go to unless they name one. */
  defaultRepository: string;
  /** The master secret every scope's passphrase is derived from (never sent to a host). */
  passphrase: string;
}

/** The repository a backup is in and its passphrase: its scope's, or for a backup from before scopes, the shared one. */
export function repoOf(config: BackupConfig, b: Pick<Backup, 'spec'>): BackupRepoRef {
  const scope = b.spec.scope;
  if (!scope) return { path: b.spec.repository, passphrase: config.passphrase };
  return { path: join(b.spec.repository, scope), passphrase: scopePassphrase(config.passphrase, scope) };
}
