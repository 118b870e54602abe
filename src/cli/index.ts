/** The command-line interface: `outrig` and its subcommands (bin/outrig.js runs main). */
export { main } from './main.ts';
