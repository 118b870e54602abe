/**
 * Outrig's layering, kept by the linter (docs/ARCHITECTURE.md, "Layers"): model ← store ←
 * controller ← api ← server ← cli; the other subsystems are libraries below the controller; a
 * subsystem is used from outside only through its index.ts (model and common, the shared kernel of
 * types and small utilities, excepted); an API route never imports another route.
 * A local rule because the import strings alone cannot say which subsystem a path is in (the
 * controller has a memory/ folder, and so has src/): it resolves each relative import first.
 */
import { dirname, relative, resolve, sep } from 'node:path';

/** Which subsystems each may not import (by src/ folder). */
const STACK = ['model', 'store', 'controller', 'api', 'server', 'cli'];
const SHARED = new Set(['model', 'common']);
const forbidden = (from) => {
  const rank = STACK.indexOf(from);
  if (from === 'model') return (to) => to !== 'model' && to !== 'common';
  if (rank >= 0) return (to) => STACK.indexOf(to) > rank || (to === 'agent' && from !== 'cli');
  // Libraries (agent, disk, backup, network, ...) sit below the controller.
  return (to) => ['store', 'controller', 'api', 'server', 'cli'].includes(to);
};

export default {
  meta: {
    type: 'problem',
    docs: { description: 'keep the layering of src/ subsystems' },
    schema: [],
    messages: {
      upward: '{{from}} must not import {{to}} (layers: model ← store ← controller ← api ← server ← cli; libraries below the controller)',
      deep: '{{from}} may use {{to}} only through {{to}}/index.ts, not {{path}}',
      route: 'an API route must not import another route ({{path}}): move what they share out of routes/',
    },
  },
  create(context) {
    const file = context.filename ?? context.getFilename();
    const src = resolve(context.cwd ?? process.cwd(), 'src');
    const rel = relative(src, file);
    if (rel.startsWith('..')) return {};
    const from = rel.split(sep)[0];
    const isForbidden = forbidden(from);
    const check = (node) => {
      const spec = node.source?.value;
      if (typeof spec !== 'string' || !spec.startsWith('.')) return;
      const target = resolve(dirname(file), spec);
      const trel = relative(src, target);
      if (trel.startsWith('..')) return;
      const parts = trel.split(sep);
      const to = parts[0];
      if (to === from) {
        if (rel.startsWith(`api${sep}routes${sep}`) && trel.startsWith(`api${sep}routes${sep}`))
          context.report({ node: node.source, messageId: 'route', data: { path: trel } });
        return;
      }
      if (isForbidden(to)) context.report({ node: node.source, messageId: 'upward', data: { from, to } });
      else if (!SHARED.has(to) && !(parts.length === 2 && parts[1] === 'index.ts'))
        context.report({ node: node.source, messageId: 'deep', data: { from, to, path: trel } });
    };
    return { ImportDeclaration: check, ExportNamedDeclaration: check, ExportAllDeclaration: check, ImportExpression: check };
  },
};
