import { PREFIX } from '../src/annotations.js';
import { SkError } from '../src/errors.js';
import { isRecord } from '../src/is-record.js';
import { POD_TEMPLATE_PATHS } from '../src/migrate/workloads.js';
import type { SpecInput } from '../src/spec.js';
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
      readonly warnings: readonly string[];
      readonly spec: SpecInput;
    }
  | {
      readonly kind: 'skip';
      readonly reason: string;
      readonly skip?: SkipReason;
      readonly warnings: readonly string[];
    };

/**
 * `sidekey.io/*` annotations on a workload's own metadata (not its pod template) do nothing: the API
 * server creates pods from the template. Returns the warning, or undefined.
 */
export function misplacedAnnotations(
  obj: Record<string, unknown>,
  tplPath: readonly (string | number)[],
): string | undefined {
  if (tplPath.length === 0) return undefined;
  const meta = isRecord(obj.metadata) ? obj.metadata : {};
  const ann = isRecord(meta.annotations) ? meta.annotations : {};
  const keys = Object.keys(ann).filter((k) => k.startsWith(PREFIX));
  if (keys.length === 0) return undefined;
  const where = [...tplPath, 'metadata', 'annotations'].join('.');
  return `${keys.sort().join(', ')} ${keys.length === 1 ? 'is' : 'are'} on the ${String(obj.kind)}'s own metadata, where the webhook never sees ${keys.length === 1 ? 'it' : 'them'}: move ${keys.length === 1 ? 'it' : 'them'} to ${where}`;
}

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
  if (!isRecord(obj)) return { kind: 'skip', reason: 'not a Kubernetes object', warnings: [] };
  const kind = typeof obj.kind === 'string' ? obj.kind : '';
  // Where each workload kind keeps its pod template: one table, shared with scan/migrate.
  const tplPath = POD_TEMPLATE_PATHS[kind];
  if (!tplPath) return { kind: 'skip', reason: `kind ${kind || '(none)'} has no pod template`, warnings: [] };
  let tpl: unknown = obj;
  for (const k of tplPath) tpl = isRecord(tpl) ? tpl[k] : undefined;
  if (!isRecord(tpl)) {
    throw new SkError('SK_ERR_MANIFEST_INVALID', `${objectName(obj)}: ${tplPath.join('.')} is missing`, {
      where: tplPath.join('.'),
    });
  }
  const meta = isRecord(obj.metadata) ? obj.metadata : {};
  const ns = typeof meta.namespace === 'string' ? meta.namespace : namespace;
  const outcome = mutatePod({ operation: 'CREATE', namespace: ns, pod: tpl as Pod, workloadKind: kind }, ctx);
  const misplaced = misplacedAnnotations(obj, tplPath);
  if (outcome.kind === 'skip') {
    const warnings: string[] = [];
    if (misplaced) warnings.push(misplaced);
    if (outcome.reason === 'opt-in-value') warnings.push(SKIP_TEXT[outcome.reason]);
    return { kind: 'skip', reason: SKIP_TEXT[outcome.reason], skip: outcome.reason, warnings };
  }
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
  return {
    kind: 'inject',
    object: mutated,
    patch: diffPatch(obj, mutated),
    mode: outcome.mode,
    warnings: misplaced ? [...outcome.warnings, misplaced] : outcome.warnings,
    spec: outcome.spec,
  };
}
