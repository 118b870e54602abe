import type { Command } from 'commander';
import { apiUrl } from '../common/paths.ts';
import { ApiClient } from './client.ts';
import { cliCredentials } from './credentials.ts';

interface GlobalOptions {
  url?: string;
  json?: boolean;
}

/** The API client and output mode a command runs with, from the global options. */
export function contextOf(cmd: Command): { api: ApiClient; json: boolean } {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  return { api: new ApiClient((g.url ?? apiUrl()).replace(/\/+$/, ''), cliCredentials()), json: !!g.json };
}
