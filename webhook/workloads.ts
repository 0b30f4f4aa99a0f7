import { SkError } from '../src/errors.js';
import { isRecord } from '../src/is-record.js';
import { POD_TEMPLATE_PATHS } from '../src/migrate/workloads.js';
import { diffPatch, type Operation } from './diff.js';
import type { Pod } from './k8s.js';
import { mutatePod, type PipelineContext } from './pipeline.js';
import { SKIP_TEXT, type SkipReason } from './should-inject.js';

export type ObjectResult =
  | {
      readonly kind: 'inject';
      readonly object: Record<string, unknown>;
      readonly patch: Operation[];
      readonly mode: string;
    }
  | { readonly kind: 'skip'; readonly reason: string; readonly skip?: SkipReason };

/** `Deployment/web` — how messages name an object. */
export function objectName(obj: Record<string, unknown>): string {
  const meta = isRecord(obj.metadata) ? obj.metadata : {};
  return `${String(obj.kind ?? 'object')}/${String(meta.name ?? meta.generateName ?? '(unnamed)')}`;
}

/**
 * Run the webhook pipeline on the pod (template) of any workload, exactly as the API server would on
 * the pods it creates, and return the mutated object and the patch of the whole object. Invalid
 * annotations throw the SkError, prefixed with the object's name.
 */
export function injectObject(obj: unknown, ctx: PipelineContext, namespace?: string): ObjectResult {
  if (!isRecord(obj)) return { kind: 'skip', reason: 'not a Kubernetes object' };
  const kind = typeof obj.kind === 'string' ? obj.kind : '';
  // Where each workload kind keeps its pod template: one table, shared with scan/migrate.
  const tplPath = POD_TEMPLATE_PATHS[kind];
  if (!tplPath) return { kind: 'skip', reason: `kind ${kind || '(none)'} has no pod template` };
  let tpl: unknown = obj;
  for (const k of tplPath) tpl = isRecord(tpl) ? tpl[k] : undefined;
  if (!isRecord(tpl)) {
    throw new SkError('SK_ERR_MANIFEST_INVALID', `${objectName(obj)}: ${tplPath.join('.')} is missing`, {
      where: tplPath.join('.'),
    });
  }
  const meta = isRecord(obj.metadata) ? obj.metadata : {};
  const ns = typeof meta.namespace === 'string' ? meta.namespace : namespace;
  const outcome = mutatePod({ operation: 'CREATE', namespace: ns, pod: tpl as Pod }, ctx);
  if (outcome.kind === 'skip')
    return { kind: 'skip', reason: SKIP_TEXT[outcome.reason], skip: outcome.reason };
  if (outcome.kind === 'invalid') {
    const e = outcome.error;
    throw new SkError(e.code, `${objectName(obj)}: ${e.message}`, { where: e.where });
  }
  let mutated: Record<string, unknown>;
  if (tplPath.length === 0) {
    mutated = outcome.pod as Record<string, unknown>;
  } else {
    mutated = structuredClone(obj);
    let parent: Record<string, unknown> = mutated;
    for (const k of tplPath.slice(0, -1)) parent = parent[k] as Record<string, unknown>;
    parent[tplPath[tplPath.length - 1]!] = outcome.pod;
  }
  return { kind: 'inject', object: mutated, patch: diffPatch(obj, mutated), mode: outcome.mode };
}
