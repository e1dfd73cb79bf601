// TypeDoc plugin: files every top-level export of the API docs under the layer of lib/ it is
// declared in (ARCHITECTURE.md: wire, message, SASL, transport, session, client, pool), without a
// @category tag on every declaration. The layer is a @category tag added to the export's own
// comment; an export without a comment gets none, so TypeDoc's notDocumented validation still
// reports it.
import { CommentTag, Converter, ReflectionKind } from 'typedoc';

/** lib/<folder>/ or lib/<file>.ts → the category title; the order of categoryOrder in typedoc.json. */
const LAYERS = {
  wire: 'Wire',
  message: 'Message',
  auth: 'SASL mechanisms',
  transport: 'Transport',
  session: 'Session',
  client: 'Client',
  pool: 'Pool',
  errors: 'Errors',
  queue: 'Queue',
};

/** @param {import('typedoc').Application} app */
export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    // One entry point gives the exports at the top; several (rx-smtp, rx-smtp/queue) give a module each.
    const tops = context.project.children ?? [];
    const exported = tops.flatMap((r) => (r.kindOf(ReflectionKind.Module) ? (r.children ?? []) : [r]));
    for (const reflection of exported) {
      const file = context.project.getSymbolIdFromReflection(reflection)?.packagePath;
      const layer = file && LAYERS[/^lib\/([^/.]+)/.exec(file)?.[1]];
      if (!layer) {
        app.logger.warn(`typedoc-layers: ${reflection.name} (${file}) is in no layer of lib/`);
        continue;
      }
      documentation(reflection)?.blockTags.push(new CommentTag('@category', [{ kind: 'text', text: layer }]));
    }
  });
}

/** The comment that documents an export: its own, or its first signature's (functions, methods). */
function documentation(reflection) {
  const holder = reflection.type?.type === 'reflection' ? reflection.type.declaration : reflection;
  const signatures = holder.signatures;
  return reflection.comment ?? signatures?.find((s) => s.comment)?.comment;
}
