/**
 * The shell command blocks of README.md as the README walk runs them: per `## ` section, each ```sh
 * block's commands in order (continuation lines joined, trailing comments dropped), and on which
 * machine each runs: a comment line "# on the controller machine" or "# on every new server"
 * switches machines, as a reader would.
 */
export interface ReadmeCommand {
  section: string;
  machine: 'controller' | 'new-server';
  line: string;
}

/** A line without its trailing comment: a `#` outside quotes that starts a word. */
export function stripComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i).trimEnd();
  }
  return line.trimEnd();
}

export function readmeCommands(markdown: string, sections: string[]): ReadmeCommand[] {
  const out: ReadmeCommand[] = [];
  let section = '';
  let inBlock = false;
  let machine: ReadmeCommand['machine'] = 'controller';
  let pending = '';
  for (const raw of markdown.split('\n')) {
    if (!inBlock && raw.startsWith('## ')) section = raw.slice(3).trim();
    if (raw.startsWith('```')) {
      inBlock = !inBlock && raw.trim() === '```sh';
      machine = 'controller';
      continue;
    }
    if (!inBlock || !sections.includes(section)) continue;
    const trimmed = raw.trim();
    if (trimmed.startsWith('#')) {
      if (/^# on the controller machine/.test(trimmed)) machine = 'controller';
      else if (/^# on every new server/.test(trimmed)) machine = 'new-server';
      continue;
    }
    const line = stripComment(raw);
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1).trim() + ' ';
      continue;
    }
    const full = (pending + line.trim()).trim();
    pending = '';
    if (full) out.push({ section, machine, line: full });
  }
  return out;
}

/** The `<placeholder>`s of a line, which a reader fills from what earlier commands printed. */
export function placeholders(line: string): string[] {
  return [...line.matchAll(/<([a-z][a-z ]*)>/g)].map((m) => m[1]!);
}
