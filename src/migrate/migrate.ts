import { createTwoFilesPatch } from 'diff';
import { type Document, isMap, isSeq, stringify } from 'yaml';
import { ANN_CONTAINERS, ANN_INJECT, ENV_PREFIX, PREFIX, SECRET_PREFIX, secretKey } from '../annotations.js';
import { SkError } from '../errors.js';
import { isRecord } from '../is-record.js';
import { parseRef } from '../refs.js';
import { SECRET_NAME_RE } from '../spec.js';
import { classifyLiteral } from './scan.js';
import {
  type ContainerInfo,
  type DocPath,
  findSecretKeys,
  findWorkloads,
  type ManifestSet,
  secretId,
} from './workloads.js';

/**
 * `sidekey migrate`: rewrite manifests from env-var secrets to sidekey annotations.
 *
 * For every workload's pod template:
 * 1. each `valueFrom.secretKeyRef` env var `VAR` of an app container becomes `sidekey.io/secret-<name>: <ref>` +
 *    `sidekey.io/env-<name>: VAR` and the env var is removed (the webhook then gives the app
 *    `VAR_FILE`);
 * 2. each `envFrom.secretRef` is expanded per key when the Secret's keys are known (a Secret in the
 *    same input, or looked up in the cluster by the CLI), else left alone with a note saying what is
 *    missing;
 * 3. literal values that look like secrets are reported with guidance, never moved or guessed;
 * 4. `sidekey.io/inject: "true"` is set.
 *
 * Edits are made on the parsed YAML nodes in place, so comments and layout of everything else are
 * kept; documents without changes are copied byte for byte. Running it twice gives the same output.
 */

export interface MigrateOptions {
  /**
   * Ref template for another backend, e.g. `vault:secret/data/{namespace}/{secret}#{key}`. Placeholders:
   * `{namespace}`, `{secret}`, `{key}`, `{workload}`; without `#`, `#{key}` is appended. Default
   * `k8s:{secret}#{key}`.
   */
  readonly to?: string;
  /** Namespace for manifests that do not name one (used by `{namespace}` and the RBAC). */
  readonly namespace?: string;
  /** Secret key names known from elsewhere (the cluster), by `namespace/name`. */
  readonly secretKeys?: ReadonlyMap<string, readonly string[]>;
}

export interface MigrateNote {
  readonly level: 'info' | 'warn';
  /** `Kind/name` (with namespace when known). */
  readonly workload: string;
  readonly message: string;
}

/** One env var moved to sidekey. */
export interface MigratedVar {
  readonly workload: string;
  readonly env: string;
  /** The sidekey secret name (`sidekey.io/secret-<name>`). */
  readonly name: string;
  readonly ref: string;
}

/** The Secrets a service account must be able to read for the workload's `k8s:` refs. */
export interface RbacNeed {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly secrets: readonly string[];
}

export interface MigrateResult {
  readonly output: string;
  readonly changed: boolean;
  readonly migrated: readonly MigratedVar[];
  readonly notes: readonly MigrateNote[];
  readonly rbac: readonly RbacNeed[];
}

const DEFAULT_TO = 'k8s:{secret}#{key}';
/**
 * The webhook mounts the secrets into app containers only (user init containers run before the files
 * can be relied on in every mode), so env secrets of init containers stay; say so rather than break them.
 */
const INIT_NOTE = (what: string, where: string) =>
  `${what} in ${where} left as is: sidekey mounts secrets into app containers only; move it by hand if that init container can run after the agent and read a file`;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Annotation names are at most 63 characters; `secret-` takes 7 of them. */
const MAX_NAME = 63 - SECRET_PREFIX.length;

/** Check a `--to` mapping once, before any manifest is touched. */
export function checkMapping(to: string): void {
  const probe = to.replace(/\{(namespace|secret|key|workload)\}/g, 'x');
  const bad = /\{[^}]*\}/.exec(probe);
  if (bad) {
    throw new SkError(
      'SK_ERR_CLI_USAGE',
      `--to: unknown placeholder ${bad[0]} (use {namespace}, {secret}, {key}, {workload})`,
      {
        where: '--to',
      },
    );
  }
  parseRef(probe.includes('#') ? probe : `${probe}#x`, '--to');
}

function mapRef(
  to: string,
  vars: { namespace: string; secret: string; key: string; workload: string },
): string {
  const tpl = to.includes('#') ? to : `${to}#{key}`;
  return tpl.replace(/\{(namespace|secret|key|workload)\}/g, (_, k: keyof typeof vars) => vars[k]);
}

/** A sidekey secret name from an env var name: `DB_PASSWORD` → `db-password`. */
export function secretNameFor(env: string): string {
  let n = env
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '');
  if (n.length > MAX_NAME) n = n.slice(0, MAX_NAME).replace(/[-.]+$/, '');
  return SECRET_NAME_RE.test(n) ? n : 'secret';
}

interface Planned {
  env: string;
  ref: string;
  name: string;
  optional: boolean;
  /** Already declared by existing annotations (nothing to write). */
  existing: boolean;
}

/** Migrate one parsed input. The ManifestSet's documents are edited in place. */
export function migrateManifests(set: ManifestSet, opts: MigrateOptions = {}): MigrateResult {
  const to = opts.to ?? DEFAULT_TO;
  checkMapping(to);
  const secretKeys = new Map<string, readonly string[]>([...(opts.secretKeys ?? []), ...findSecretKeys(set)]);
  const notes: MigrateNote[] = [];
  const migrated: MigratedVar[] = [];
  const rbac = new Map<string, { namespace: string; serviceAccount: string; secrets: Set<string> }>();
  const changedDocs = new Set<number>();
  let usedDefaultNs = false;

  for (const w of findWorkloads(set)) {
    const doc = set.docs[w.docIndex];
    if (!doc) continue;
    const ns = w.namespace ?? opts.namespace;
    const label = `${w.namespace ? `${w.namespace}/` : ''}${w.kind}/${w.name}`;
    const note = (level: MigrateNote['level'], message: string) =>
      notes.push({ level, workload: label, message });
    const nsForRef = ns ?? 'default';
    if (!ns && to.includes('{namespace}')) usedDefaultNs = true;
    const refFor = (secret: string, key: string) =>
      mapRef(to, { namespace: nsForRef, secret, key, workload: w.name });

    const optIn = w.annotations[ANN_INJECT];
    if (optIn !== undefined && optIn !== 'true') {
      note('warn', `${ANN_INJECT} is "${optIn}": the workload opted out of sidekey, so it is left as is`);
      continue;
    }

    // Existing declarations: VAR -> name, name -> ref.
    const declaredRef = new Map<string, string>();
    const envToName = new Map<string, string>();
    for (const [k, v] of Object.entries(w.annotations)) {
      if (k.startsWith(`${PREFIX}${SECRET_PREFIX}`))
        declaredRef.set(k.slice(PREFIX.length + SECRET_PREFIX.length), v);
      if (k.startsWith(`${PREFIX}${ENV_PREFIX}`))
        envToName.set(v, k.slice(PREFIX.length + ENV_PREFIX.length));
    }
    const usedNames = new Set(declaredRef.keys());
    const plan = new Map<string, Planned>();
    const conflicted = new Set<string>();
    const allocate = (env: string): string => {
      const base = secretNameFor(env);
      let n = base;
      for (let i = 2; usedNames.has(n); i++) n = `${base.slice(0, MAX_NAME - String(i).length - 1)}-${i}`;
      usedNames.add(n);
      return n;
    };
    const want = (env: string, ref: string, optional: boolean, where: string): boolean => {
      if (conflicted.has(env)) return false;
      const prev = plan.get(env);
      if (prev) {
        if (prev.ref === ref) return true;
        conflicted.add(env);
        note(
          'warn',
          `${env} comes from ${prev.ref} in one container and ${ref} in ${where}; left as is (one env var, one secret per pod)`,
        );
        return false;
      }
      const name = envToName.get(env);
      if (name !== undefined) {
        const declared = declaredRef.get(name);
        if (declared !== undefined && declared !== ref) {
          conflicted.add(env);
          note(
            'warn',
            `${env} in ${where} is from ${ref}, but ${secretKey(SECRET_PREFIX, name)} already says ${declared}; left as is`,
          );
          return false;
        }
        plan.set(env, { env, ref, name, optional, existing: declared !== undefined });
        return true;
      }
      plan.set(env, { env, ref, name: allocate(env), optional, existing: false });
      return true;
    };

    // The webhook changes only these containers (default: every app container).
    const targets = w.annotations[ANN_CONTAINERS]
      ?.split(',')
      .map((t) => t.trim())
      .filter(Boolean);
    const isTarget = (c: ContainerInfo) => !c.init && (targets === undefined || targets.includes(c.name));

    // Pass 1: decide. Pass 2 (below) edits, once conflicts across containers are known.
    const envRemovals: Array<{ c: ContainerInfo; index: number; env: string }> = [];
    const envFromRemovals: Array<{ c: ContainerInfo; index: number; vars: string[] }> = [];
    for (const c of w.containers) {
      const where = `container ${c.name}${c.init ? ' (init)' : ''}`;
      const env = Array.isArray(c.container.env) ? c.container.env : [];
      env.forEach((e, index) => {
        if (!isRecord(e) || typeof e.name !== 'string') return;
        const ref =
          isRecord(e.valueFrom) && isRecord(e.valueFrom.secretKeyRef) ? e.valueFrom.secretKeyRef : undefined;
        if (ref && c.init) {
          note('warn', INIT_NOTE(e.name, where));
          return;
        }
        if (ref && !isTarget(c)) {
          note('warn', `${e.name} in ${where} left as is: the container is not listed in ${ANN_CONTAINERS}`);
          return;
        }
        if (ref) {
          const secret = typeof ref.name === 'string' ? ref.name : '';
          const key = typeof ref.key === 'string' ? ref.key : '';
          if (!secret || !key) {
            note('warn', `${e.name} in ${where}: secretKeyRef without name or key; left as is`);
            return;
          }
          if (want(e.name, refFor(secret, key), ref.optional === true, where))
            envRemovals.push({ c, index, env: e.name });
          return;
        }
        if (typeof e.value === 'string') {
          const lit = classifyLiteral(e.name, e.value);
          if (lit && lit.confidence !== 'low') {
            const n = secretNameFor(e.name);
            note(
              'warn',
              `${e.name} in ${where}: ${lit.reason} (${lit.confidence}); not migrated: put the value in a Secret or your backend, then add ${secretKey(SECRET_PREFIX, n)}: <ref> and ${secretKey(ENV_PREFIX, n)}: ${e.name}`,
            );
          }
        }
      });
      const envFrom = Array.isArray(c.container.envFrom) ? c.container.envFrom : [];
      envFrom.forEach((ef, index) => {
        if (!isRecord(ef) || !isRecord(ef.secretRef)) return;
        const secret = typeof ef.secretRef.name === 'string' ? ef.secretRef.name : '';
        const prefix = typeof ef.prefix === 'string' ? ef.prefix : '';
        if (c.init) {
          note('warn', INIT_NOTE(`envFrom Secret ${secret}`, where));
          return;
        }
        if (!isTarget(c)) {
          note(
            'warn',
            `envFrom Secret ${secret} in ${where} left as is: the container is not listed in ${ANN_CONTAINERS}`,
          );
          return;
        }
        const keys =
          secretKeys.get(secretId(w.namespace, secret)) ?? secretKeys.get(secretId(ns ?? 'default', secret));
        if (!keys) {
          note(
            'warn',
            `envFrom Secret ${secret} in ${where}: its keys are unknown, so it is left as is; add the Secret's manifest to the input (-f) or run with --cluster to read its key names`,
          );
          return;
        }
        const badKeys = keys.filter((k) => !ENV_NAME_RE.test(`${prefix}${k}`));
        if (badKeys.length > 0) {
          note(
            'warn',
            `envFrom Secret ${secret} in ${where}: keys ${badKeys.join(', ')} are not env var names; left as is`,
          );
          return;
        }
        const vars: string[] = [];
        for (const k of keys) {
          if (want(`${prefix}${k}`, refFor(secret, k), ef.secretRef.optional === true, where))
            vars.push(`${prefix}${k}`);
        }
        if (vars.length === keys.length) envFromRemovals.push({ c, index, vars });
        else
          note('warn', `envFrom Secret ${secret} in ${where}: not every key could be migrated; envFrom kept`);
      });
    }

    // The webhook removes VAR from every target container: a VAR there that is not from a Secret
    // (a literal, a ConfigMap, a field ref) would silently disappear, so such a VAR is not migrated.
    for (const c of w.containers) {
      if (!isTarget(c) || !Array.isArray(c.container.env)) continue;
      for (const e of c.container.env) {
        if (!isRecord(e) || typeof e.name !== 'string' || !plan.has(e.name) || conflicted.has(e.name))
          continue;
        const fromSecret = isRecord(e.valueFrom) && isRecord(e.valueFrom.secretKeyRef);
        if (fromSecret) continue;
        conflicted.add(e.name);
        note(
          'warn',
          `${e.name} in container ${c.name} is not from a Secret, and the webhook would remove it together with the secret one; left as is`,
        );
      }
    }

    // Drop removals for variables that turned out to conflict in a later container.
    const removeEnv = envRemovals.filter((r) => !conflicted.has(r.env));
    const removeEnvFrom = envFromRemovals.filter((r) => r.vars.every((v) => !conflicted.has(v)));
    for (const v of conflicted) plan.delete(v);
    // Keep only what is actually removed somewhere (or was already declared).
    const removedVars = new Set([...removeEnv.map((r) => r.env), ...removeEnvFrom.flatMap((r) => r.vars)]);
    for (const [v, p] of plan) if (!removedVars.has(v) && !p.existing) plan.delete(v);

    if (plan.size === 0) continue;

    // Pass 2: edit the document. Removals go from the highest index down so indexes stay valid.
    const byList = new Map<string, { path: DocPath; indexes: number[] }>();
    const queue = (path: DocPath, index: number) => {
      const k = JSON.stringify(path);
      const e = byList.get(k) ?? { path, indexes: [] };
      e.indexes.push(index);
      byList.set(k, e);
    };
    for (const r of removeEnv) queue([...r.c.path, 'env'], r.index);
    for (const r of removeEnvFrom) queue([...r.c.path, 'envFrom'], r.index);
    for (const { path, indexes } of byList.values()) {
      for (const i of [...new Set(indexes)].sort((a, b) => b - a)) doc.deleteIn([...path, i]);
      const left = doc.getIn(path, true);
      if (isSeq(left) && left.items.length === 0) doc.deleteIn(path);
      changedDocs.add(w.docIndex);
    }

    const annPath = [...w.templatePath, 'metadata', 'annotations'];
    const setAnn = (key: string, value: string) => {
      if (w.annotations[key] === value) return;
      // A Job's template often has no metadata: put it before `spec`, where people expect it.
      const tmpl = doc.getIn(w.templatePath, true);
      if (isMap(tmpl) && !tmpl.has('metadata')) tmpl.items.unshift(doc.createPair('metadata', {}));
      const parent = doc.getIn(annPath, true);
      if (parent !== undefined && parent !== null && !isMap(parent)) {
        throw new SkError(
          'SK_ERR_MANIFEST_INVALID',
          `${w.source}: ${label} metadata.annotations is not a map`,
          {
            where: w.source,
          },
        );
      }
      doc.setIn([...annPath, key], value);
      changedDocs.add(w.docIndex);
    };
    setAnn(ANN_INJECT, 'true');
    for (const p of plan.values()) {
      setAnn(secretKey(SECRET_PREFIX, p.name), p.ref);
      setAnn(secretKey(ENV_PREFIX, p.name), p.env);
      if (!p.existing) migrated.push({ workload: label, env: p.env, name: p.name, ref: p.ref });
      if (p.optional && !p.existing) {
        note('info', `${p.env} was optional; sidekey fails the pod's start while ${p.ref} is missing`);
      }
      if (p.ref.startsWith('k8s:')) {
        const secretName = parseRef(p.ref).locator;
        const rns = ns ?? 'default';
        if (!ns) usedDefaultNs = true;
        const k = `${rns}/${w.serviceAccountName}`;
        const need = rbac.get(k) ?? {
          namespace: rns,
          serviceAccount: w.serviceAccountName,
          secrets: new Set(),
        };
        need.secrets.add(secretName);
        rbac.set(k, need);
      }
    }
  }
  if (usedDefaultNs) {
    notes.push({
      level: 'info',
      workload: set.source,
      message: 'some manifests name no namespace; "default" was assumed for refs and RBAC (set -n)',
    });
  }

  const output = changedDocs.size === 0 ? set.text : serialise(set, changedDocs);
  return {
    output,
    changed: output !== set.text,
    migrated,
    notes,
    rbac: [...rbac.values()].map((r) => ({
      namespace: r.namespace,
      serviceAccount: r.serviceAccount,
      secrets: [...r.secrets].sort(),
    })),
  };
}

/** Indentation style of the input, so re-serialised documents look like the rest of the file. */
function styleOf(text: string): { indentSeq: boolean; flowCollectionPadding: boolean } {
  // `key:\n- item` (sequence at the key's indentation) is the kubectl style.
  const flat = /^([ \t]*)[^\s#-][^\n]*:[ \t]*\n\1- /m.test(text);
  const nested = /^([ \t]*)[^\s#-][^\n]*:[ \t]*\n\1[ \t]+- /m.test(text);
  return { indentSeq: !(flat && !nested), flowCollectionPadding: !/\{[^\s}]/.test(text) };
}

/** Unchanged documents verbatim, changed ones re-serialised (keeping their comments). */
function serialise(set: ManifestSet, changed: ReadonlySet<number>): string {
  if (set.json) {
    const values = set.docs.map((d) => d.toJS({ maxAliasCount: 100 }));
    return `${JSON.stringify(values.length === 1 ? values[0] : values, null, 2)}\n`;
  }
  const style = styleOf(set.text);
  let out = '';
  let pos = 0;
  set.docs.forEach((doc: Document, i) => {
    const end = doc.range?.[2] ?? set.text.length;
    const original = set.text.slice(pos, end);
    if (!changed.has(i)) {
      out += original;
    } else {
      // doc.toString() writes the `---` marker and the comments before the content itself.
      out += doc.toString({ lineWidth: 0, ...style });
    }
    pos = end;
  });
  out += set.text.slice(pos);
  return out;
}

/** The Role + RoleBinding (YAML, multi-document) each service account needs for its `k8s:` refs. */
export function renderRbac(needs: readonly RbacNeed[]): string {
  const docs: unknown[] = [];
  for (const n of needs) {
    const name = `sidekey-${n.serviceAccount}`;
    docs.push(
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name, namespace: n.namespace },
        rules: [
          {
            apiGroups: [''],
            resources: ['secrets'],
            resourceNames: [...n.secrets],
            verbs: ['get', 'watch', 'list'],
          },
        ],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name, namespace: n.namespace },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
        subjects: [{ kind: 'ServiceAccount', name: n.serviceAccount, namespace: n.namespace }],
      },
    );
  }
  return docs.map((d) => stringify(d, { lineWidth: 0 })).join('---\n');
}

/** Notes as lines for stderr: `warn: ns/Kind/name: message`. */
export function formatNotes(notes: readonly MigrateNote[]): string {
  return notes.map((n) => `${n.level}: ${n.workload}: ${n.message}\n`).join('');
}

/** A unified diff of the input and the migrated output (for `--dry-run`); empty when nothing changes. */
export function unifiedDiff(source: string, before: string, after: string): string {
  if (before === after) return '';
  return createTwoFilesPatch(`a/${source}`, `b/${source}`, before, after, undefined, undefined, {
    context: 3,
  });
}
