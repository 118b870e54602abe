/**
 * How the CLI proves itself to the API: a bearer token (OUTRIG_TOKEN, else the admin token the
 * controller on this machine wrote to $OUTRIG_DATA/admin-token) or an operator client certificate
 * (OUTRIG_CERT + OUTRIG_KEY); and which CA it trusts (OUTRIG_CA, else $OUTRIG_DATA/ca.crt).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dataRoot } from '../common/paths.ts';
import { CliError } from './errors.ts';

export interface ApiCredentials {
  ca?: string;
  token?: string;
  cert?: string;
  key?: string;
  /** Where the CA came from, for errors: the file read, or what was looked for when none was found. */
  caSource?: string;
}

function readIf(path: string | undefined, what: string): string | undefined {
  if (!path) return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}

export function cliCredentials(env: NodeJS.ProcessEnv = process.env): ApiCredentials {
  const root = dataRoot();
  const fileOrDefault = (v: string | undefined, name: string) => v || (existsSync(join(root, name)) ? join(root, name) : undefined);
  if (!!env.OUTRIG_CERT !== !!env.OUTRIG_KEY) throw new CliError('OUTRIG_CERT and OUTRIG_KEY go together: set both or neither');
  const cert = readIf(env.OUTRIG_CERT, 'the client certificate');
  const caFile = fileOrDefault(env.OUTRIG_CA, 'ca.crt');
  return {
    ca: readIf(caFile, 'the CA certificate'),
    caSource: env.OUTRIG_CA ? `OUTRIG_CA=${env.OUTRIG_CA}` : (caFile ?? `no OUTRIG_CA, and no ${join(root, 'ca.crt')}`),
    cert,
    key: readIf(env.OUTRIG_KEY, 'the client key'),
    // A certificate is the stronger credential: with one, do not also send the local admin token.
    token: env.OUTRIG_TOKEN || (cert ? undefined : readIf(fileOrDefault(undefined, 'admin-token'), 'the admin token')?.trim()),
  };
}
