/** Small utilities every subsystem shares (logging, bytes, secrets, HTTPS, paths): may be imported directly. */
export * from './bounded-map.ts';
export * from './bytes.ts';
export * from './crash-guard.ts';
export * from './https.ts';
export * from './log-pretty.ts';
export * from './log.ts';
export * from './paths.ts';
export * from './route-source.ts';
export * from './secrets.ts';
export * from './system-requirements.ts';
export * from './version.ts';
