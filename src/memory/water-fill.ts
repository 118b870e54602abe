/**
 * Shares an integer amount among items in proportion to their weights, none above its cap;
 * what a capped item cannot take goes to the others. Integer MiB throughout, largest remainder
 * first, ties by key: the same input always gives the same answer. Pure.
 */
export interface FillItem {
  key: string;
  weight: number;
  cap: number;
}

export function waterFill(amount: number, items: FillItem[]): Map<string, number> {
  const out = new Map<string, number>(items.map((i) => [i.key, 0]));
  let left = Math.max(0, Math.floor(amount));
  let open = items.filter((i) => i.cap > 0 && i.weight > 0);
  while (left > 0 && open.length) {
    const total = open.reduce((s, i) => s + i.weight, 0);
    // Ideal shares of what is left; items whose share reaches their cap are filled and leave.
    const shares = open.map((i) => ({ i, ideal: (left * i.weight) / total, room: i.cap - out.get(i.key)! }));
    const capped = shares.filter((s) => s.ideal >= s.room);
    if (capped.length) {
      for (const s of capped) {
        out.set(s.i.key, s.i.cap);
        left -= s.room;
      }
      open = open.filter((i) => out.get(i.key)! < i.cap);
      continue;
    }
    const floors = shares.map((s) => ({ ...s, base: Math.floor(s.ideal), frac: s.ideal - Math.floor(s.ideal) }));
    let given = 0;
    for (const f of floors) {
      out.set(f.i.key, out.get(f.i.key)! + f.base);
      given += f.base;
    }
    let rest = left - given;
    floors.sort((a, b) => b.frac - a.frac || a.i.key.localeCompare(b.i.key));
    for (const f of floors) {
      if (rest <= 0) break;
      if (out.get(f.i.key)! < f.i.cap) {
        out.set(f.i.key, out.get(f.i.key)! + 1);
        rest--;
      }
    }
    // Every share was below its room, so each +1 fitted: nothing is left.
    left = rest;
  }
  return out;
}
