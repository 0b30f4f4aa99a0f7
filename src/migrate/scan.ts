import { ANN_INJECT, ANN_MOUNT_PATH, ANN_STATUS, ENV_PREFIX, PREFIX, SECRET_PREFIX } from '../annotations.js';
import { painter } from '../cli-output.js';
import { isRecord } from '../is-record.js';
import type { ContainerInfo, Workload } from './workloads.js';

/**
 * `sidekey scan`: find secrets that reach workloads through environment variables. A finding names
 * the workload, container, variable and the reason it was flagged; it never carries the value.
 */

export type Confidence = 'high' | 'medium' | 'low';
export const CONFIDENCES: readonly Confidence[] = ['high', 'medium', 'low'];

/** How the secret reaches the environment. */
export type FindingKind = 'secretKeyRef' | 'envFrom' | 'literal';
export const FINDING_KINDS: readonly FindingKind[] = ['secretKeyRef', 'envFrom', 'literal'];

export interface Finding {
  readonly source: string;
  readonly namespace: string | undefined;
  /** `Kind/name`. */
  readonly workload: string;
  readonly container: string;
  readonly init: boolean;
  readonly kind: FindingKind;
  /** The variable name; for envFrom the prefix followed by `*`. */
  readonly env: string;
  /** secretKeyRef / envFrom: the Secret's name. */
  readonly secret?: string;
  /** secretKeyRef: the key in the Secret. */
  readonly key?: string;
  readonly confidence: Confidence;
  /** Why this was flagged; names patterns, never the value. */
  readonly reason: string;
}

export interface WorkloadSummary {
  readonly source: string;
  readonly namespace: string | undefined;
  readonly workload: string;
  readonly migrated: boolean;
  readonly findings: number;
}

export interface ScanReport {
  readonly workloads: readonly WorkloadSummary[];
  readonly findings: readonly Finding[];
  readonly summary: {
    readonly workloadsScanned: number;
    readonly alreadyMigrated: number;
    readonly findings: number;
    readonly byKind: Readonly<Record<FindingKind, number>>;
    readonly byConfidence: Readonly<Record<Confidence, number>>;
  };
}

/** Default directory the webhook mounts secrets at; `*_FILE` vars pointing there mean "migrated". */
const DEFAULT_MOUNT = '/run/sidekey';

// --- literal classification ----------------------------------------------------------------------

/** Names that say "secret": suffix match on the upper-cased variable name. */
const SECRET_NAME_RE =
  /(^|_)(PASSWORD|PASSWD|PASS|PWD|SECRET|SECRETS|TOKEN|APIKEY|API_KEY|KEY|PRIVATE_KEY|ACCESS_KEY|CREDENTIAL|CREDENTIALS|AUTH|DSN)$/;

/** Well-known token formats; each pattern is specific enough to flag the value on its own. */
const TOKEN_FORMATS: ReadonlyArray<readonly [RegExp, string]> = [
  [/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/, 'a PEM private key'],
  [/\b(AKIA|ASIA)[0-9A-Z]{16}\b/, 'an AWS access key id (AKIA…/ASIA…)'],
  [/\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b/, 'a GitHub token (ghp_…)'],
  [/\bglpat-[A-Za-z0-9_-]{20,}\b/, 'a GitLab token (glpat-…)'],
  [/\bxox[abposr]-[A-Za-z0-9-]{10,}/, 'a Slack token (xox…)'],
  [/\b(sk|rk)_live_[A-Za-z0-9]{16,}\b/, 'a Stripe live key (sk_live_…)'],
  [/\bAIza[0-9A-Za-z_-]{35}\b/, 'a Google API key (AIza…)'],
  [/\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}/, 'a JWT (eyJ….eyJ….…)'],
];

/** A value that only references another variable (`$(DB_PASSWORD)`) is not a literal secret. */
const VAR_REF_RE = /^\$\([A-Za-z_][A-Za-z0-9_.-]*\)$/;

/** Shannon entropy in bits per character. */
export function shannonEntropy(s: string): number {
  if (s.length === 0) return 0;
  const counts = new Map<string, number>();
  for (const ch of s) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let h = 0;
  for (const n of counts.values()) {
    const p = n / s.length;
    h -= p * Math.log2(p);
  }
  return h;
}

/** Random-looking: long, no spaces, not a path/URL, several character classes and high entropy. */
export function looksRandom(v: string): boolean {
  if (v.length < 16 || /\s/.test(v) || v.startsWith('/') || /^[a-z][a-z0-9+.-]*:\/\//i.test(v)) return false;
  const classes = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((re) => re.test(v)).length;
  if (/^[0-9a-f]+$/i.test(v)) return v.length >= 32; // hex digests / keys
  // Lists of words (`new-checkout,dark-mode`) have two classes and moderate entropy; keys have more.
  return classes >= 3 && shannonEntropy(v) >= (v.length >= 24 ? 4.0 : 3.5);
}

/** Credentials in a URL: `scheme://user:password@host`, unless the password is a `$(VAR)` reference. */
function urlWithPassword(v: string): string | undefined {
  const m = /^([a-z][a-z0-9+.-]*):\/\/[^\s/@:]*:([^\s/@]+)@/i.exec(v.trim());
  if (!m?.[2] || VAR_REF_RE.test(m[2])) return undefined;
  return m[1]?.toLowerCase();
}

/**
 * Decide whether a literal env value is probably a secret. Returns the confidence and a reason that
 * mentions only the variable name and the kind of pattern matched, or undefined if it looks harmless.
 */
export function classifyLiteral(
  name: string,
  value: string,
): { confidence: Confidence; reason: string } | undefined {
  const v = value.trim();
  if (v === '' || VAR_REF_RE.test(v)) return undefined;
  for (const [re, what] of TOKEN_FORMATS) {
    if (re.test(v)) return { confidence: 'high', reason: `literal value is ${what}` };
  }
  const scheme = urlWithPassword(v);
  if (scheme) return { confidence: 'high', reason: `literal ${scheme}:// URL with a password in it` };
  const upper = name.toUpperCase();
  if (SECRET_NAME_RE.test(upper) && !upper.endsWith('_FILE')) {
    // Values that are clearly settings, not secrets: booleans, numbers, paths, plain URLs.
    if (
      /^(true|false|yes|no|on|off|\d+)$/i.test(v) ||
      v.startsWith('/') ||
      /^[a-z][a-z0-9+.-]*:\/\//i.test(v)
    ) {
      return undefined;
    }
    if (looksRandom(v)) {
      return {
        confidence: 'high',
        reason: 'literal value; name looks like a secret and the value is random-looking',
      };
    }
    return { confidence: 'medium', reason: 'literal value; name looks like a secret' };
  }
  if (looksRandom(v)) return { confidence: 'low', reason: 'literal value is random-looking (high entropy)' };
  return undefined;
}

// --- scanning --------------------------------------------------------------------------------------

/** Variables the pod's annotations already hand over to sidekey (`sidekey.io/env-<name>: VAR`). */
function migratedVars(annotations: Readonly<Record<string, string>>): Set<string> {
  const out = new Set<string>();
  for (const [k, v] of Object.entries(annotations)) if (k.startsWith(`${PREFIX}${ENV_PREFIX}`)) out.add(v);
  return out;
}

/** Whether the workload is already on sidekey: opted in with secrets, injected, or using `*_FILE` mounts. */
export function isMigrated(w: Workload): boolean {
  const a = w.annotations;
  if (a[ANN_STATUS] === 'injected') return true;
  if (a[ANN_INJECT] === 'true' && Object.keys(a).some((k) => k.startsWith(`${PREFIX}${SECRET_PREFIX}`)))
    return true;
  const mount = a[ANN_MOUNT_PATH] ?? DEFAULT_MOUNT;
  return w.containers.some((c) =>
    envList(c).some(
      (e) =>
        typeof e.name === 'string' &&
        e.name.endsWith('_FILE') &&
        typeof e.value === 'string' &&
        e.value.startsWith(`${mount}/`),
    ),
  );
}

function envList(c: ContainerInfo): Record<string, unknown>[] {
  return Array.isArray(c.container.env) ? c.container.env.filter(isRecord) : [];
}

function envFromList(c: ContainerInfo): Record<string, unknown>[] {
  return Array.isArray(c.container.envFrom) ? c.container.envFrom.filter(isRecord) : [];
}

/** Findings for one workload, in container order (init containers first, as the kubelet runs them). */
export function scanWorkload(w: Workload): Finding[] {
  const out: Finding[] = [];
  const handled = migratedVars(w.annotations);
  const base = { source: w.source, namespace: w.namespace, workload: `${w.kind}/${w.name}` };
  for (const c of w.containers) {
    const at = { ...base, container: c.name, init: c.init };
    for (const e of envList(c)) {
      const name = typeof e.name === 'string' ? e.name : '';
      if (!name || handled.has(name)) continue;
      const ref =
        isRecord(e.valueFrom) && isRecord(e.valueFrom.secretKeyRef) ? e.valueFrom.secretKeyRef : undefined;
      if (ref) {
        const secret = String(ref.name ?? '');
        const key = String(ref.key ?? '');
        out.push({
          ...at,
          kind: 'secretKeyRef',
          env: name,
          secret,
          key,
          confidence: 'high',
          reason: `from Secret ${secret} key ${key}${ref.optional === true ? ' (optional)' : ''}`,
        });
        continue;
      }
      if (typeof e.value === 'string') {
        const c2 = classifyLiteral(name, e.value);
        if (c2) out.push({ ...at, kind: 'literal', env: name, ...c2 });
      }
    }
    for (const ef of envFromList(c)) {
      if (!isRecord(ef.secretRef)) continue;
      const secret = String(ef.secretRef.name ?? '');
      const prefix = typeof ef.prefix === 'string' ? ef.prefix : '';
      out.push({
        ...at,
        kind: 'envFrom',
        env: `${prefix}*`,
        secret,
        confidence: 'high',
        reason: `every key of Secret ${secret} as env vars${prefix ? ` (prefix ${prefix})` : ''}`,
      });
    }
  }
  return out;
}

/** Scan workloads and summarise. */
export function scanWorkloads(workloads: readonly Workload[]): ScanReport {
  const findings: Finding[] = [];
  const summaries: WorkloadSummary[] = [];
  for (const w of workloads) {
    const f = scanWorkload(w);
    findings.push(...f);
    summaries.push({
      source: w.source,
      namespace: w.namespace,
      workload: `${w.kind}/${w.name}`,
      migrated: isMigrated(w),
      findings: f.length,
    });
  }
  const byKind = Object.fromEntries(FINDING_KINDS.map((k) => [k, 0])) as Record<FindingKind, number>;
  const byConfidence = Object.fromEntries(CONFIDENCES.map((k) => [k, 0])) as Record<Confidence, number>;
  for (const f of findings) {
    byKind[f.kind] += 1;
    byConfidence[f.confidence] += 1;
  }
  return {
    workloads: summaries,
    findings,
    summary: {
      workloadsScanned: workloads.length,
      alreadyMigrated: summaries.filter((s) => s.migrated).length,
      findings: findings.length,
      byKind,
      byConfidence,
    },
  };
}

/** Whether any finding is at `level` or more severe (for `--fail-on`). */
export function failsAt(report: ScanReport, level: Confidence): boolean {
  const limit = CONFIDENCES.indexOf(level);
  return report.findings.some((f) => CONFIDENCES.indexOf(f.confidence) <= limit);
}

// --- output ----------------------------------------------------------------------------------------

/** A plain-text table for people, followed by the summary line. */
export function formatTable(report: ScanReport, color = false): string {
  const header = ['NAMESPACE', 'WORKLOAD', 'CONTAINER', 'ENV', 'KIND', 'CONFIDENCE', 'REASON'];
  const rows = report.findings.map((f) => [
    f.namespace ?? '-',
    f.workload,
    f.init ? `${f.container} (init)` : f.container,
    f.env,
    f.kind,
    f.confidence,
    f.reason,
  ]);
  const lines: string[] = [];
  if (rows.length === 0) {
    lines.push('No env-var secrets found.');
  } else {
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const paint = painter(color);
    const tint = { high: 'red', medium: 'yellow', low: 'dim' } as const;
    const conf = header.indexOf('CONFIDENCE');
    // Padding first, colour after: escape codes must not count towards the column widths.
    const fmt = (r: string[], style?: (i: number, padded: string) => string) =>
      r
        .map((cell, i) => {
          const padded = i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0);
          return style ? style(i, padded) : padded;
        })
        .join('  ')
        .trimEnd();
    lines.push(
      color ? paint('bold', fmt(header)) : fmt(header),
      ...rows.map((r) =>
        fmt(r, (i, padded) => {
          const t = tint[r[conf] as keyof typeof tint];
          return i === conf && t ? padded.replace(r[conf]!, paint(t, r[conf]!)) : padded;
        }),
      ),
    );
  }
  const s = report.summary;
  lines.push(
    '',
    `Workloads scanned: ${s.workloadsScanned} (already migrated: ${s.alreadyMigrated})`,
    `Findings: ${s.findings} (${FINDING_KINDS.map((k) => `${k} ${s.byKind[k]}`).join(', ')}; ${CONFIDENCES.map((c) => `${c} ${s.byConfidence[c]}`).join(', ')})`,
  );
  const migrated = report.workloads.filter((w) => w.migrated);
  if (migrated.length > 0) {
    lines.push(
      `Already migrated: ${migrated.map((w) => (w.namespace ? `${w.namespace}/${w.workload}` : w.workload)).join(', ')}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** JSON for tools: `{ summary, workloads, findings }`. */
export function formatJson(report: ScanReport): string {
  return `${JSON.stringify({ summary: report.summary, workloads: report.workloads, findings: report.findings }, null, 2)}\n`;
}
