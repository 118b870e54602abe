/**
 * The reader's code for the sandbox: one self-contained ES module built from reader-main.ts with
 * esbuild and handed to node on standard input, so the sandbox needs no view of this checkout
 * (which its user could not read anyway). Built once per process.
 */
import { buildSync } from 'esbuild';
import { join } from 'node:path';

let code: string | undefined;

export function readerBundle(): string {
  code ??= buildSync({
    entryPoints: [join(import.meta.dirname, 'reader-main.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    logLevel: 'silent',
  }).outputFiles[0]!.text;
  return code;
}
