import { type Document, isMap, isSeq, parseAllDocuments } from 'yaml';
import { SkError } from '../errors.js';
import { isRecord } from '../is-record.js';

/**
 * Reading Kubernetes manifests for `sidekey scan` / `sidekey migrate`: YAML (multi-document) or JSON,
 * `*List` objects, and every workload kind that carries a pod template. The parsed `yaml` Documents
 * are kept so `migrate` can edit nodes in place and keep the input's comments and layout.
 */

/** A path into a YAML document (map keys and sequence indexes), as used by `doc.getIn`. */
export type DocPath = readonly (string | number)[];

/**
 * Where the pod template (an object with `metadata` and `spec`) sits inside each workload kind,
 * relative to the object. A Pod is its own template.
 */
export const POD_TEMPLATE_PATHS: Readonly<Record<string, DocPath>> = Object.freeze({
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
});

/** The workload kinds `scan` and `migrate` understand. */
export const WORKLOAD_KINDS: readonly string[] = Object.freeze(Object.keys(POD_TEMPLATE_PATHS));

/** One container (or init container) of a workload's pod template. */
export interface ContainerInfo {
  readonly name: string;
  readonly init: boolean;
  /** Document path of the container object. */
  readonly path: DocPath;
  readonly container: Readonly<Record<string, unknown>>;
}

/** A workload found in the input: identity, where it is, and its pod template (plain data). */
export interface Workload {
  readonly kind: string;
  readonly name: string;
  /** `metadata.namespace`, or undefined when the manifest does not say. */
  readonly namespace: string | undefined;
  /** `file.yaml#<doc>` (1-based document number), with `[item]` inside a List. */
  readonly source: string;
  readonly docIndex: number;
  /** Document path of the object (non-empty inside a List). */
  readonly objectPath: DocPath;
  /** Document path of the pod template (metadata + spec). */
  readonly templatePath: DocPath;
  readonly annotations: Readonly<Record<string, string>>;
  readonly serviceAccountName: string;
  readonly containers: readonly ContainerInfo[];
}

/** One parsed input: its documents (kept for in-place edits) and their plain values. */
export interface ManifestSet {
  readonly source: string;
  readonly text: string;
  /** The input was JSON (output is then written back as JSON). */
  readonly json: boolean;
  readonly docs: readonly Document[];
  readonly values: readonly unknown[];
}

/** Parse YAML (multi-document) or JSON text; SK_ERR_MANIFEST_INVALID names the source and line. */
export function parseManifests(text: string, source: string): ManifestSet {
  const docs = parseAllDocuments(text, { prettyErrors: false, keepSourceTokens: false });
  if (!Array.isArray(docs)) {
    // An empty stream parses to an EmptyStream object.
    return { source, text, json: false, docs: [], values: [] };
  }
  const values: unknown[] = [];
  for (const doc of docs) {
    const err = doc.errors[0];
    if (err) {
      const line = err.linePos?.[0]?.line ?? text.slice(0, err.pos[0]).split('\n').length;
      throw new SkError(
        'SK_ERR_MANIFEST_INVALID',
        `${source}${line ? `:${line}` : ''}: not valid YAML/JSON (${err.code})`,
        { where: source },
      );
    }
    try {
      values.push(doc.toJS({ maxAliasCount: 100 }));
    } catch {
      // The alias limit (a "billion laughs" input): the one way a parsed document fails here.
      throw new SkError(
        'SK_ERR_MANIFEST_INVALID',
        `${source}: not usable YAML (its aliases expand too far)`,
        {
          where: source,
        },
      );
    }
  }
  return { source, text, json: /^\s*[[{]/.test(text), docs, values };
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** Plain value at `path` inside `root`. */
export function getPath(root: unknown, path: DocPath): unknown {
  let cur = root;
  for (const p of path) {
    if (typeof p === 'number') cur = Array.isArray(cur) ? cur[p] : undefined;
    else cur = isRecord(cur) ? cur[p] : undefined;
    if (cur === undefined) return undefined;
  }
  return cur;
}

/** The top-level objects of a document: the object itself, or the items of a `*List`. */
function objectsOf(value: unknown): Array<{ path: DocPath; obj: Record<string, unknown>; item?: number }> {
  // A bare JSON array of objects is read like a List.
  if (Array.isArray(value)) {
    return value.flatMap((item, i) =>
      objectsOf(item).map((o) => ({ path: [i, ...o.path], obj: o.obj, item: i })),
    );
  }
  if (!isRecord(value)) return [];
  const kind = str(value.kind);
  if (kind?.endsWith('List') && Array.isArray(value.items)) {
    return value.items.flatMap((item, i) =>
      objectsOf(item).map((o) => ({ path: ['items', i, ...o.path], obj: o.obj, item: i })),
    );
  }
  return [{ path: [], obj: value }];
}

/** Every workload with a pod template, in input order. Objects of other kinds are skipped. */
export function findWorkloads(set: ManifestSet): Workload[] {
  const out: Workload[] = [];
  set.values.forEach((value, docIndex) => {
    for (const { path, obj, item } of objectsOf(value)) {
      const kind = str(obj.kind);
      const rel = kind ? POD_TEMPLATE_PATHS[kind] : undefined;
      if (!kind || !rel) continue;
      const meta = isRecord(obj.metadata) ? obj.metadata : {};
      const templatePath = [...path, ...rel];
      const template = getPath(value, templatePath);
      const tmeta = isRecord(template) && isRecord(template.metadata) ? template.metadata : {};
      const spec = isRecord(template) && isRecord(template.spec) ? template.spec : {};
      const annotations: Record<string, string> = {};
      if (isRecord(tmeta.annotations)) {
        for (const [k, v] of Object.entries(tmeta.annotations)) if (typeof v === 'string') annotations[k] = v;
      }
      const containers: ContainerInfo[] = [];
      for (const [field, init] of [
        ['initContainers', true],
        ['containers', false],
      ] as const) {
        const list = spec[field];
        if (!Array.isArray(list)) continue;
        list.forEach((c, i) => {
          if (!isRecord(c)) return;
          containers.push({
            name: str(c.name) ?? `#${i}`,
            init,
            path: [...templatePath, 'spec', field, i],
            container: c,
          });
        });
      }
      out.push({
        kind,
        name: str(meta.name) ?? str(meta.generateName) ?? '(unnamed)',
        namespace: str(meta.namespace),
        source: `${set.source}#${docIndex + 1}${item !== undefined ? `[${item}]` : ''}`,
        docIndex,
        objectPath: path,
        templatePath,
        annotations,
        serviceAccountName: str(spec.serviceAccountName) ?? str(spec.serviceAccount) ?? 'default',
        containers,
      });
    }
  });
  return out;
}

/** `namespace/name` key for Secret lookups (empty namespace when a manifest does not say). */
export function secretId(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

/**
 * The key names (never the values) of every `kind: Secret` in the input, by {@link secretId}.
 * `migrate` uses them to expand `envFrom` per key.
 */
export function findSecretKeys(set: ManifestSet): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const value of set.values) {
    for (const { obj } of objectsOf(value)) {
      if (obj.kind !== 'Secret') continue;
      const meta = isRecord(obj.metadata) ? obj.metadata : {};
      const name = str(meta.name);
      if (!name) continue;
      const keys = new Set<string>();
      for (const field of ['data', 'stringData'] as const) {
        const d = obj[field];
        if (isRecord(d)) for (const k of Object.keys(d)) keys.add(k);
      }
      out.set(secretId(str(meta.namespace), name), [...keys].sort());
    }
  }
  return out;
}

/** Whether a YAML node at `path` is a map (for in-place edits that must not replace scalars). */
export function isMapAt(doc: Document, path: DocPath): boolean {
  return isMap(doc.getIn(path, true));
}

/** Whether a YAML node at `path` is a sequence. */
export function isSeqAt(doc: Document, path: DocPath): boolean {
  return isSeq(doc.getIn(path, true));
}
