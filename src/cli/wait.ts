/** Waiting for a resource to reach a state, with a spinner for people and silence for --json. */
import { Option, type Command } from 'commander';
import ora from 'ora';
import { CliError } from './errors.ts';
import { parseIntStrict } from './parse.ts';

export interface WaitFlags {
  wait: boolean;
  timeout: number;
}

/** --no-wait and --timeout, for commands that wait for a result. */
export function waitOptions(c: Command): Command {
  return c
    .option('--no-wait', 'return at once instead of waiting for the result')
    .addOption(new Option('--timeout <seconds>', 'how long to wait').default(300).argParser(parseIntStrict('--timeout')));
}

export interface WaitOptions<T> {
  /** Fetches the current state; undefined means the resource is gone. */
  poll: () => Promise<T | undefined>;
  done: (v: T | undefined) => boolean;
  /** Throws a CliError to stop waiting with a failure. */
  fail?: (v: T | undefined) => string | undefined;
  describe: (v: T | undefined) => string;
  timeoutMs: number;
  quiet: boolean;
  intervalMs?: number;
}

export async function waitFor<T>(o: WaitOptions<T>): Promise<T | undefined> {
  const spinner = o.quiet || !process.stderr.isTTY ? undefined : ora({ stream: process.stderr }).start();
  const deadline = Date.now() + o.timeoutMs;
  let last: T | undefined;
  let lastText = '';
  try {
    while (true) {
      last = await o.poll();
      const text = o.describe(last);
      if (spinner) spinner.text = text;
      else if (!o.quiet && text !== lastText) process.stderr.write(text + '\n');
      lastText = text;
      if (o.done(last)) {
        spinner?.succeed(text);
        return last;
      }
      const why = o.fail?.(last);
      if (why) {
        spinner?.fail(text);
        throw new CliError(why);
      }
      if (Date.now() > deadline) {
        spinner?.fail(text);
        throw new CliError(`timed out after ${Math.round(o.timeoutMs / 1000)}s: ${text}`);
      }
      await new Promise((r) => setTimeout(r, o.intervalMs ?? 250));
    }
  } finally {
    spinner?.stop();
  }
}
