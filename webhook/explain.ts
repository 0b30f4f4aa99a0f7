import { evaluate } from '@marcbachmann/cel-js';
import { ANN_INJECT, isInjected, secretKey } from '../src/annotations.js';
import { isRecord } from '../src/is-record.js';
import { POD_TEMPLATE_PATHS } from '../src/migrate/workloads.js';
import type { IdentityContext } from '../src/providers/backend.js';
import { BACKENDS } from '../src/providers/builtin.js';
import { parseRef } from '../src/refs.js';
import type { SpecInput } from '../src/spec.js';
import { backendHints } from './backend-hints.js';
import type { Container, Pod } from './k8s.js';
import { mutatePod, type PipelineContext } from './pipeline.js';
import { SKIP_TEXT } from './should-inject.js';
import { TOKEN_DIR } from './validate.js';
import { misplacedAnnotations, objectName } from './workloads.js';

/**
 * `sidekey explain`: would the webhook inject this object's pods, and if not, exactly why; if so, what
 * the agent will fetch, with which identity and audience, and what is missing. Pure: the caller
 * gathers what the API server would consult (the namespace's labels, the MutatingWebhookConfiguration's
 * selectors and matchConditions) from a manifest set or a live cluster.
 *
 * Every reason that applies is listed, in the order the API server and the webhook check them (the
 * first one is what stops the pod), so fixing one does not reveal the next only on the next try.
 */

/** Label selector (metav1.LabelSelector). */
export interface LabelSelector {
  readonly matchLabels?: Readonly<Record<string, string>>;
  readonly matchExpressions?: ReadonlyArray<{
    readonly key: string;
    readonly operator: string;
    readonly values?: readonly string[];
  }>;
}

/** The parts of one MutatingWebhookConfiguration webhook entry that decide whether a pod is sent. */
export interface WebhookEntry {
  readonly name: string;
  readonly namespaceSelector?: LabelSelector;
  readonly objectSelector?: LabelSelector;
  readonly matchConditions?: ReadonlyArray<{ readonly name: string; readonly expression: string }>;
}

export interface ExplainEnv {
  readonly ctx: PipelineContext;
  /** Labels of known namespaces (from Namespace objects or the cluster). */
  readonly namespaces: ReadonlyMap<string, Readonly<Record<string, string>>>;
  /** sidekey's webhook entries (undefined: not known, the API server's filters are not checked). */
  readonly webhook: WebhookEntry | undefined;
  /** Namespace of objects that name none. */
  readonly defaultNamespace: string | undefined;
  /** The object is a live one: a Pod that exists was created before (any change now is an UPDATE). */
  readonly live?: boolean;
}

export interface SecretLine {
  readonly name: string;
  readonly provider: string;
  readonly annotation: string;
  readonly file: string;
}

export interface Explanation {
  readonly object: string;
  readonly namespace: string | undefined;
  readonly injected: boolean;
  /** Why not (empty when injected). */
  readonly reasons: string[];
  readonly mode?: string;
  readonly serviceAccount?: string;
  readonly secrets?: SecretLine[];
  readonly identity?: string[];
  readonly warnings: string[];
  /** Checks that could not be made (no webhook configuration known, unknown namespace labels). */
  readonly notes: string[];
}

/** matchLabels + matchExpressions (In, NotIn, Exists, DoesNotExist) against a label set. */
export function selectorMatches(
  sel: LabelSelector | undefined,
  labels: Readonly<Record<string, string>>,
): boolean {
  if (!sel) return true;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const v = labels[e.key];
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(v!)) return false;
        break;
      case 'NotIn':
        if (has && values.includes(v!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

function describeSelector(sel: LabelSelector): string {
  const parts = [
    ...Object.entries(sel.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`),
    ...(sel.matchExpressions ?? []).map((e) =>
      e.operator === 'Exists' || e.operator === 'DoesNotExist'
        ? `${e.operator === 'DoesNotExist' ? '!' : ''}${e.key}`
        : `${e.key} ${e.operator.toLowerCase() === 'in' ? 'in' : 'notin'} (${(e.values ?? []).join(', ')})`,
    ),
  ];
  return parts.join(', ');
}

/** The sidekey webhook entry of a MutatingWebhookConfiguration (`inject.sidekey.io`), if it has one. */
export function sidekeyWebhook(obj: unknown): WebhookEntry | undefined {
  if (!isRecord(obj) || obj.kind !== 'MutatingWebhookConfiguration' || !Array.isArray(obj.webhooks))
    return undefined;
  const w = obj.webhooks.find(
    (x) => isRecord(x) && typeof x.name === 'string' && x.name.endsWith('sidekey.io'),
  );
  return isRecord(w) ? (w as unknown as WebhookEntry) : undefined;
}

/** Explain one object of a manifest (a Pod or a workload); undefined for kinds without pods. */
export function explainObject(obj: Record<string, unknown>, env: ExplainEnv): Explanation | undefined {
  const kind = typeof obj.kind === 'string' ? obj.kind : '';
  const tplPath = POD_TEMPLATE_PATHS[kind];
  if (!tplPath) return undefined;
  let tpl: unknown = obj;
  for (const k of tplPath) tpl = isRecord(tpl) ? tpl[k] : undefined;
  const name = objectName(obj);
  const meta = isRecord(obj.metadata) ? obj.metadata : {};
  const namespace = (typeof meta.namespace === 'string' ? meta.namespace : undefined) ?? env.defaultNamespace;
  const reasons: string[] = [];
  const warnings: string[] = [];
  const notes: string[] = [];
  if (!isRecord(tpl)) {
    return {
      object: name,
      namespace,
      injected: false,
      reasons: [`${tplPath.join('.')} is missing`],
      warnings,
      notes,
    };
  }
  const pod = tpl as Pod;
  const ann = pod.metadata?.annotations ?? {};

  // Where the annotations are: a workload's own metadata is never seen by the webhook.
  const misplaced = misplacedAnnotations(obj, tplPath);
  if (misplaced && ann[ANN_INJECT] === undefined) reasons.push(`annotation placement: ${misplaced}`);
  else if (misplaced) warnings.push(misplaced);

  // UPDATE: a pod that exists already is never mutated again; a workload's new pods are CREATEs.
  const exists =
    kind === 'Pod' && (env.live || meta.uid !== undefined || meta.creationTimestamp !== undefined);

  // A pod that exists and carries the webhook's mark was injected when it was created.
  if (exists && isInjected(ann)) {
    const agent = agentOf(pod);
    const specEnv = agent?.env?.find((e) => e.name === 'SIDEKEY_SPEC')?.value;
    let spec: SpecInput | undefined;
    try {
      spec = specEnv ? (JSON.parse(specEnv) as SpecInput) : undefined;
    } catch {
      spec = undefined;
    }
    const mode =
      agent?.restartPolicy === 'Always'
        ? 'native'
        : pod.spec?.containers.some((c) => c.name === 'sidekey-agent')
          ? 'sidecar'
          : 'init-only';
    return {
      object: name,
      namespace,
      injected: true,
      reasons,
      mode,
      serviceAccount: pod.spec?.serviceAccountName ?? 'default',
      ...(spec?.secrets ? { secrets: secretLines(spec), identity: identityLines(spec, pod, agent) } : {}),
      warnings,
      notes: [...notes, 'injected when it was created (sidekey.io/status: injected)'],
    };
  }

  // What the API server checks before it calls the webhook.
  const w = env.webhook;
  if (!w && env.live) {
    reasons.push(
      'no MutatingWebhookConfiguration in this cluster has an inject.sidekey.io webhook: sidekey is not installed (docs/install.md)',
    );
  } else if (!w) {
    notes.push(
      "the webhook's namespaceSelector, objectSelector and matchConditions were not checked: no MutatingWebhookConfiguration with an inject.sidekey.io webhook in the input",
    );
  } else {
    if (namespace === undefined) {
      notes.push('namespaceSelector not checked: the object names no namespace (use -n)');
    } else {
      const labels = env.namespaces.get(namespace) ?? { 'kubernetes.io/metadata.name': namespace };
      if (!env.namespaces.has(namespace)) {
        notes.push(
          `namespace ${namespace}: its labels are not known (no Namespace object), only its name was checked`,
        );
      }
      if (!selectorMatches(w.namespaceSelector, labels)) {
        reasons.push(
          `namespaceSelector: namespace ${namespace} does not match (${describeSelector(w.namespaceSelector!)}); the API server never sends its pods to the webhook`,
        );
      }
    }
    if (!selectorMatches(w.objectSelector, pod.metadata?.labels ?? {})) {
      reasons.push(
        `objectSelector: the pod's labels do not match (${describeSelector(w.objectSelector!)}); the API server never sends it to the webhook`,
      );
    }
    for (const mc of w.matchConditions ?? []) {
      let ok: unknown;
      try {
        ok = evaluate(mc.expression, {
          object: pod,
          oldObject: null,
          request: {
            operation: exists ? 'UPDATE' : 'CREATE',
            namespace: namespace ?? '',
            kind: { kind: 'Pod' },
          },
        });
      } catch (e) {
        notes.push(
          `matchCondition ${mc.name}: cannot be evaluated here (${(e as Error).message.split('\n')[0]})`,
        );
        continue;
      }
      if (ok !== true)
        reasons.push(`matchCondition ${mc.name} is false: the API server never sends the pod to the webhook`);
    }
  }

  const outcome = mutatePod(
    { operation: exists ? 'UPDATE' : 'CREATE', namespace, pod, workloadKind: kind },
    env.ctx,
  );
  if (outcome.kind === 'skip') {
    if (outcome.reason === 'not-create') {
      reasons.push(
        'UPDATE: this pod exists already, and the webhook only mutates a pod when it is created; delete it (or `kubectl rollout restart` its workload) so a new one is created',
      );
      // What the webhook would do to a new one: the rest of the checks, as a CREATE.
      const again = mutatePod({ operation: 'CREATE', namespace, pod, workloadKind: kind }, env.ctx);
      if (again.kind === 'skip' && !(misplaced && again.reason === 'not-opted-in'))
        reasons.push(SKIP_TEXT[again.reason]);
      else if (again.kind === 'invalid') reasons.push(`${again.error.code}: ${again.error.message}`);
    } else if (!(misplaced && outcome.reason === 'not-opted-in')) {
      reasons.push(SKIP_TEXT[outcome.reason]);
    }
    return { object: name, namespace, injected: false, reasons, warnings, notes };
  }
  if (outcome.kind === 'invalid') {
    reasons.push(`the webhook denies the pod: ${outcome.error.code}: ${outcome.error.message}`);
    return { object: name, namespace, injected: false, reasons, warnings, notes };
  }
  warnings.push(...outcome.warnings, ...backendHints(outcome.spec));
  const agent = agentOf(outcome.pod);
  return {
    object: name,
    namespace,
    injected: reasons.length === 0,
    reasons,
    mode: outcome.mode,
    serviceAccount: pod.spec?.serviceAccountName ?? 'default',
    secrets: secretLines(outcome.spec),
    identity: identityLines(outcome.spec, outcome.pod, agent),
    warnings,
    notes,
  };
}

function agentOf(pod: Pod): Container | undefined {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find(
    (c) => c.name === 'sidekey-agent' || c.name === 'sidekey-init',
  );
}

/** The secrets: name, provider, the annotation declaring it and the file. Never the locator. */
function secretLines(spec: SpecInput): SecretLine[] {
  const dir = spec.output?.dir ?? '/run/sidekey';
  return Object.entries(spec.secrets).map(([name, s]) => ({
    name,
    provider: parseRef(s.ref).provider,
    annotation: secretKey('secret-', name),
    file: `${dir}/${s.file ?? name}`,
  }));
}

/** Which identity each backend gets: from its descriptor's describeIdentity, else its title. */
function identityLines(spec: SpecInput, pod: Pod, agent: Container | undefined): string[] {
  const providers = new Set(Object.values(spec.secrets).map((s) => parseRef(s.ref).provider));
  const sources = tokenSources(pod);
  const ctx: IdentityContext = {
    serviceAccount: pod.spec?.serviceAccountName ?? 'default',
    tokenDir: TOKEN_DIR,
    agentEnv: Object.fromEntries(
      (agent?.env ?? []).flatMap((e) => (e.value !== undefined ? [[e.name, e.value]] : [])),
    ),
    tokenAudience: (file) => {
      const p = file?.startsWith(`${TOKEN_DIR}/`) ? file.slice(TOKEN_DIR.length + 1) : undefined;
      if (p === undefined || !sources.has(p)) return undefined;
      const a = sources.get(p);
      return a === undefined ? "the API server's default audience" : `audience "${a}"`;
    },
  };
  const settings = (spec.backends ?? {}) as Record<string, unknown>;
  return BACKENDS.filter((d) => providers.has(d.name)).map(
    (d) => `${d.name}: ${d.describeIdentity?.(settings[d.name] as never, ctx) ?? d.title}`,
  );
}

/** Token file name → audience (undefined: the API server's), from the projected volume. */
function tokenSources(pod: Pod): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  const v = pod.spec?.volumes?.find((x) => x.name === 'sidekey-token');
  const sources = isRecord(v?.projected) && Array.isArray(v.projected.sources) ? v.projected.sources : [];
  for (const s of sources) {
    if (isRecord(s) && isRecord(s.serviceAccountToken)) {
      const t = s.serviceAccountToken;
      out.set(String(t.path), typeof t.audience === 'string' ? t.audience : undefined);
    }
  }
  return out;
}

/** The human text of one explanation. */
export function formatExplanation(e: Explanation): string {
  const lines: string[] = [];
  const ns = e.namespace ? ` (namespace ${e.namespace})` : '';
  if (e.injected) {
    lines.push(
      `${e.object}${ns}: injected, ${e.mode === 'native' ? 'native sidecar' : e.mode === 'sidecar' ? 'init container + classic sidecar' : 'init-only (fetched once, no rotation)'}`,
    );
  } else {
    lines.push(`${e.object}${ns}: NOT injected`);
    for (const r of e.reasons) lines.push(`  why: ${r}`);
  }
  if (e.secrets && e.secrets.length > 0) {
    lines.push(`  ${e.injected ? 'the agent fetches' : 'once fixed, the agent would fetch'}:`);
    for (const s of e.secrets) lines.push(`    ${s.name}: ${s.provider}: (${s.annotation}) → ${s.file}`);
  }
  for (const i of e.identity ?? []) lines.push(`  identity: ${i}`);
  for (const w of e.warnings) lines.push(`  warning: ${w}`);
  for (const n of e.notes) lines.push(`  note: ${n}`);
  return lines.join('\n');
}
