/**
 * The adapter for firewall-plan.ts: keeps the firewall's state in the agent's data directory and
 * loads the rule set with `nft -f` (one transaction: the kernel never holds half of it). The
 * tables live in the kernel, not in the agent, so they go on filtering while the agent restarts;
 * a new agent re-applies the state it kept before it does anything else.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIREWALL_REQUIREMENTS, missing, requireTools } from '../common/system-requirements.ts';
import { emptyFirewall, firewallScript, isEmptyFirewall, parseFirewallState, type FirewallState } from './firewall-plan.ts';
import { sh } from './linux.ts';

export class HostFirewall {
  private current: FirewallState = emptyFirewall();
  /** The script last loaded into the kernel by this process (none yet: the next apply always runs). */
  private applied?: string;

  constructor(
    /** The agent's network state directory: firewall.json (the state) and firewall.nft (the script last applied). */
    private readonly dir: string,
    /** This host's underlay address: the only one UDP 4789 is taken on. */
    private readonly underlay: () => string | undefined,
  ) {}

  private get stateFile(): string {
    return join(this.dir, 'firewall.json');
  }

  get state(): FirewallState {
    return this.current;
  }

  /**
   * At agent start: the kept state applied again (a reboot cleared the tables; otherwise this
   * replaces them with the same rules in one transaction). An agent that never had a firewall
   * here touches nothing.
   */
  async resume(): Promise<void> {
    if (!existsSync(this.stateFile)) return;
    this.current = parseFirewallState(readFileSync(this.stateFile, 'utf8'));
    // Nothing to filter and no nft to ask: nothing can be left to remove either.
    if (isEmptyFirewall(this.current) && missing(FIREWALL_REQUIREMENTS).length) return;
    await this.load(firewallScript(this.current, this.underlay()));
  }

  /** The state changed by `fn`, kept, then applied; the kernel is untouched when the rule set stays the same. */
  async update(fn: (s: FirewallState) => FirewallState): Promise<void> {
    const next = fn(this.current);
    // A host that has never carried a network keeps no state and needs no nft.
    if (isEmptyFirewall(next) && !existsSync(this.stateFile)) return;
    const script = firewallScript(next, this.underlay());
    // Kept first: an agent that dies before nft runs applies it at its next start.
    mkdirSync(this.dir, { recursive: true });
    writeFileSync(`${this.stateFile}.new`, JSON.stringify(next));
    renameSync(`${this.stateFile}.new`, this.stateFile);
    this.current = next;
    if (script !== this.applied) await this.load(script);
  }

  private async load(script: string): Promise<void> {
    requireTools(FIREWALL_REQUIREMENTS, 'the host firewall of networks');
    const file = join(this.dir, 'firewall.nft');
    mkdirSync(this.dir, { recursive: true });
    writeFileSync(file, script);
    await sh('nft', ['-f', file]);
    this.applied = script;
  }
}
