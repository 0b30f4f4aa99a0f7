import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { outputFormat, structured } from '../cli-output.js';
import { SkError } from '../errors.js';
import { isRecord } from '../is-record.js';
import type { ListProgress } from './cluster.js';
import { formatNotes, migrateManifests, renderRbac, unifiedDiff } from './migrate.js';
import { CONFIDENCES, type Confidence, failsAt, formatJson, formatTable, scanWorkloads } from './scan.js';
import { findWorkloads, type ManifestSet, parseManifests, secretId, type Workload } from './workloads.js';

/**
 * The `sidekey scan` / `sidekey migrate` commands: reading inputs (files, directories, stdin, the
 * cluster), printing, exit codes. The logic lives in scan.ts / migrate.ts.
 */

/** Exit code of `scan --fail-on` when a finding is at or above the level (distinct from errors). */
export const EXIT_FINDINGS = 3;

export interface CliIo {
  stdout(s: string): void;
  stderr(s: string): void;
  readStdin(): string;
  /** stderr is a terminal: a progress line is shown while the cluster is listed. */
  stderrIsTTY?: boolean;
  /** Colour the table (stdout is a terminal and NO_COLOR is unset). */
  color?: boolean;
}

const MANIFEST_EXT = /\.(ya?ml|json)$/i;

/** Files to read for `-f`: a file, `-` (stdin), or every *.yaml/*.yml/*.json under a directory, sorted. */
function inputFiles(f: string): string[] {
  if (f === '-') return ['-'];
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(f);
  } catch {
    throw new SkError('SK_ERR_CLI_USAGE', `-f ${f}: no such file or directory`, { where: '-f' });
  }
  if (!st.isDirectory()) return [f];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (MANIFEST_EXT.test(e.name)) out.push(p);
    }
  };
  walk(f);
  return out;
}

function readInput(file: string, io: CliIo): ManifestSet {
  const source = file === '-' ? 'stdin' : file;
  let text: string;
  try {
    text = file === '-' ? io.readStdin() : readFileSync(file, 'utf8');
  } catch (e) {
    // e.g. a dangling symlink found in a directory: skipped there like any unreadable manifest
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new SkError('SK_ERR_MANIFEST_INVALID', `${source}: cannot read it (${code})`, { where: source });
  }
  return parseManifests(text, source);
}

export interface ScanOptions {
  file?: string;
  namespace?: string;
  allNamespaces?: boolean;
  output?: string;
  failOn?: string;
  /** Objects per list request (`--chunk-size`, default 500). */
  chunkSize?: string;
}

/** `sidekey scan`; returns the exit code. */
export async function runScan(opts: ScanOptions, io: CliIo): Promise<number> {
  const output = outputFormat(opts.output, ['table', 'json', 'yaml'] as const, 'table');
  if (opts.failOn !== undefined && !(CONFIDENCES as readonly string[]).includes(opts.failOn)) {
    throw new SkError('SK_ERR_CLI_USAGE', `--fail-on ${opts.failOn}: use high, medium or low`, {
      where: '--fail-on',
    });
  }
  const pageSize = opts.chunkSize === undefined ? undefined : Number(opts.chunkSize);
  if (pageSize !== undefined && !(Number.isInteger(pageSize) && pageSize > 0)) {
    throw new SkError('SK_ERR_CLI_USAGE', `--chunk-size ${opts.chunkSize}: use a whole number above 0`, {
      where: '--chunk-size',
    });
  }
  if (opts.namespace && opts.allNamespaces) {
    throw new SkError('SK_ERR_CLI_USAGE', '-n and -A exclude each other', { where: '-n' });
  }
  let workloads: Workload[];
  if (opts.file !== undefined) {
    const files = inputFiles(opts.file);
    const many = files.length > 1 || files[0] !== opts.file;
    workloads = files.flatMap((f) => {
      try {
        return findWorkloads(readInput(f, io));
      } catch (e) {
        // In a directory, one unreadable file (a Helm template, say) must not hide the others.
        if (!many || !(e instanceof SkError) || e.code !== 'SK_ERR_MANIFEST_INVALID') throw e;
        io.stderr(`warn: ${e.code}: ${e.message}; skipped\n`);
        return [];
      }
    });
  } else {
    const { listClusterWorkloads } = await import('./cluster.js');
    const progress = io.stderrIsTTY ? progressLine(io) : undefined;
    try {
      workloads = findWorkloads(
        await listClusterWorkloads({
          namespace: opts.namespace,
          all: opts.allNamespaces,
          pageSize,
          progress: progress?.update,
        }),
      );
    } finally {
      progress?.clear();
    }
  }
  const report = scanWorkloads(workloads);
  io.stdout(
    output === 'table'
      ? formatTable(report, io.color)
      : output === 'json'
        ? formatJson(report)
        : await structured(JSON.parse(formatJson(report)), 'yaml'),
  );
  if (opts.failOn && failsAt(report, opts.failOn as Confidence)) {
    io.stderr(`scan: findings at or above "${opts.failOn}" (--fail-on)\n`);
    return EXIT_FINDINGS;
  }
  return 0;
}

/** One line on the terminal, rewritten in place (`\r`, erase line), cleared when listing ends. */
function progressLine(io: CliIo): { update: ListProgress; clear(): void } {
  let total = 0;
  let shown = false;
  return {
    update: ({ kind, listed, done }) => {
      if (done) total += listed;
      io.stderr(
        `\r\x1b[2Kscan: listing ${kind.toLowerCase()}s… ${listed} (${total + (done ? 0 : listed)} objects)`,
      );
      shown = true;
    },
    clear: () => {
      if (shown) io.stderr('\r\x1b[2K');
    },
  };
}

export interface MigrateCliOptions {
  file: string;
  to?: string;
  dryRun?: boolean;
  output?: string;
  namespace?: string;
  cluster?: boolean;
  rbacOut?: string;
}

/** `sidekey migrate`; returns the exit code. */
export async function runMigrate(opts: MigrateCliOptions, io: CliIo): Promise<number> {
  if (opts.file !== '-' && statSync(opts.file, { throwIfNoEntry: false })?.isDirectory()) {
    throw new SkError('SK_ERR_CLI_USAGE', `-f ${opts.file}: give one file (or -), not a directory`, {
      where: '-f',
    });
  }
  const [file] = inputFiles(opts.file);
  const set = readInput(file ?? opts.file, io);
  let secretKeys: Map<string, string[]> | undefined;
  if (opts.cluster) {
    const { readSecretKeys } = await import('./cluster.js');
    secretKeys = await readSecretKeys(envFromSecrets(set, opts.namespace), io.stderr);
  }
  const r = migrateManifests(set, { to: opts.to, namespace: opts.namespace, secretKeys });

  if (opts.dryRun) {
    io.stdout(unifiedDiff(set.source, set.text, r.output));
  } else if (opts.output) {
    writeFileSync(opts.output, r.output);
  } else {
    io.stdout(r.output);
  }
  io.stderr(formatNotes(r.notes));
  io.stderr(
    `migrate: ${r.migrated.length} env var(s) moved to sidekey annotations${opts.dryRun ? ' (dry run, nothing written)' : ''}\n`,
  );
  if (r.rbac.length > 0) {
    const rbac = renderRbac(r.rbac);
    if (opts.rbacOut) {
      writeFileSync(opts.rbacOut, rbac);
      io.stderr(`migrate: RBAC for the k8s: refs written to ${opts.rbacOut}\n`);
    } else {
      io.stderr(
        `# RBAC the service accounts need for their k8s: refs (save with --rbac-out, then kubectl apply -f):\n${rbac}`,
      );
    }
  }
  return 0;
}

/** `namespace/name` of every Secret used through envFrom whose keys the input does not show. */
function envFromSecrets(
  set: ManifestSet,
  defaultNs: string | undefined,
): Array<{ namespace: string; name: string }> {
  const out = new Map<string, { namespace: string; name: string }>();
  for (const w of findWorkloads(set)) {
    for (const c of w.containers) {
      const list = Array.isArray(c.container.envFrom) ? c.container.envFrom : [];
      for (const ef of list) {
        if (!isRecord(ef) || !isRecord(ef.secretRef) || typeof ef.secretRef.name !== 'string') continue;
        const namespace = w.namespace ?? defaultNs ?? 'default';
        out.set(secretId(namespace, ef.secretRef.name), { namespace, name: ef.secretRef.name });
      }
    }
  }
  return [...out.values()];
}
