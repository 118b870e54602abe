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

interface WaitOptions<T> {
  /** Fetches the current state; undefined means the resource is gone. */
  poll: () => Promise<T | undefined>;
  done: (v: T | undefined) => boolean;
  /** Throws a CliError to stop waiting with a failure. */
  fail?: (v: T | undefined) => string | undefined;
  describe: (v: T | undefined) => string;
  timeoutMs: number;
  quiet: boolean;
  intervalMs?: number;
  /**
   * Ctrl-C while waiting: what keeps running on the controller and how to follow or cancel it,
   * from the last state seen. Given, Ctrl-C stops the wait with that message and exit code 130.
   */
  interrupted?: (last: T | undefined) => string;
}

/** The exit code of a command stopped by Ctrl-C (128 + SIGINT), as shells report it. */
const INTERRUPTED_EXIT = 130;

export async function waitFor<T>(o: WaitOptions<T>): Promise<T | undefined> {
  const spinner = o.quiet || !process.stderr.isTTY ? undefined : ora({ stream: process.stderr }).start();
  const deadline = Date.now() + o.timeoutMs;
  let last: T | undefined;
  let lastText = '';
  // Ctrl-C ends the wait, not the work: the controller carries on, so say what and how to reach it.
  let interrupt: (() => void) | undefined;
  const interrupted = new Promise<'interrupted'>((resolve) => (interrupt = () => resolve('interrupted')));
  const onSigint = () => interrupt!();
  if (o.interrupted) process.once('SIGINT', onSigint);
  const orInterrupt = async <R>(p: Promise<R>): Promise<R> => {
    const r = await Promise.race([p, interrupted]);
    if (r !== 'interrupted') return r as R;
    spinner?.stop();
    // A request still in flight must not hold the process open.
    setTimeout(() => process.exit(INTERRUPTED_EXIT), 2000).unref();
    throw new CliError(`interrupted: ${o.interrupted!(last)}`, INTERRUPTED_EXIT);
  };
  let timer: NodeJS.Timeout | undefined;
  try {
    while (true) {
      last = await orInterrupt(o.poll());
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
        throw new CliError(`timed out after ${Math.round(o.timeoutMs / 1000)}s: ${text}${o.interrupted ? `; ${o.interrupted(last)}` : ''}`);
      }
      await orInterrupt(new Promise((r) => (timer = setTimeout(r, o.intervalMs ?? 250))));
    }
  } finally {
    clearTimeout(timer);
    process.off('SIGINT', onSigint);
    spinner?.stop();
  }
}
