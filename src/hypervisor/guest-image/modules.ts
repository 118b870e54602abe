/**
 * Kernel module dependency resolution from modules.dep, so the initramfs can insmod
 * modules in an order that works (busybox insmod does not resolve dependencies).
 */

interface ModuleIndex {
  /** module name (underscored) -> path relative to /lib/modules/<version> */
  path: Map<string, string>;
  /** module name -> names of the modules it depends on */
  deps: Map<string, string[]>;
}

export function moduleNameOf(path: string): string {
  const base = path.split('/').pop() ?? path;
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

export function parseModulesDep(text: string): ModuleIndex {
  const path = new Map<string, string>();
  const deps = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const mod = line.slice(0, colon).trim();
    const name = moduleNameOf(mod);
    path.set(name, mod);
    deps.set(
      name,
      line
        .slice(colon + 1)
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map(moduleNameOf),
    );
  }
  return { path, deps };
}

/**
 * Returns the wanted modules plus their dependencies, dependencies first.
 * Modules that are built into the kernel (listed in modules.builtin) are left out.
 */
export function loadOrder(index: ModuleIndex, wanted: string[], builtin: Set<string> = new Set()): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, chain: string[]) => {
    if (builtin.has(name) || state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') throw new Error(`module dependency cycle: ${[...chain, name].join(' -> ')}`);
    if (!index.path.has(name)) throw new Error(`kernel module ${name} not found in modules.dep`);
    state.set(name, 'visiting');
    for (const d of index.deps.get(name) ?? []) visit(d, [...chain, name]);
    state.set(name, 'done');
    order.push(name);
  };
  for (const w of wanted) visit(w.replace(/-/g, '_'), []);
  return order;
}

export function parseModulesBuiltin(text: string): Set<string> {
  return new Set(text.split('\n').filter(Boolean).map(moduleNameOf));
}
