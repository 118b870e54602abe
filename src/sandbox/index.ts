export { ConfinedError, confinedCommand, printable, runConfined, sandboxAvailable, SANDBOX_UID, type ConfinedResult, type ConfineOptions } from './confine.ts';
