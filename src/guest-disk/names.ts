/**
 * What a file name taken from a guest's disk (or from a backup of one) may be before anything is
 * written under it: one path component, printable, of a length Linux accepts. Pure; shared by the
 * sandboxed reader (which skips what fails), the writer outside it (which stops on what fails:
 * the reader never sends such a name) and restores of guest backups.
 */

// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Whether `s` holds a C0 or C1 control character (or DEL). */
export function hasControl(s: string): boolean {
  return CONTROL.test(s);
}

/** Why `name` cannot be written as one path component, or undefined when it can. */
export function nameProblem(name: string): string | undefined {
  if (name === '') return 'an empty name';
  if (name === '.' || name === '..') return `the name "${name}"`;
  if (name.includes('/')) return 'a name holding "/"';
  if (CONTROL.test(name)) return 'a name holding a control character';
  if (Buffer.byteLength(name) > 255) return 'a name longer than 255 bytes';
  return undefined;
}

/** Why a symbolic link's target cannot be kept (it is never followed, only written back as a link). */
export function linkTargetProblem(target: string): string | undefined {
  if (target === '') return 'an empty link target';
  if (CONTROL.test(target)) return 'a link target holding a control character';
  if (Buffer.byteLength(target) > 4095) return 'a link target longer than 4095 bytes';
  return undefined;
}

/** Extended attribute names kept from a guest's filesystem: the namespaces Linux lets tools set, printable. */
export function xattrNameProblem(name: string): string | undefined {
  if (!/^(user|trusted|security)\.[\x21-\x7e]{1,240}$|^system\.posix_acl_(access|default)$/.test(name))
    return `an extended attribute name Outrig does not keep`;
  return undefined;
}

/** A path (components) shown in a message: JSON quoting escapes every control character a guest put there. */
export function showPath(components: string[]): string {
  return JSON.stringify(`/${components.join('/')}`);
}

/** Bytes of a name that is not UTF-8, shown escaped (for a message only). */
export function showBytes(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x >= 0x20 && x < 0x7f && x !== 0x5c && x !== 0x22 ? String.fromCharCode(x) : `\\x${x.toString(16).padStart(2, '0')}`;
  return `"${s}"`;
}
