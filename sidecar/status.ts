import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { SkError } from '../src/errors.js';
import { STATUS_FILE_NAME } from '../src/paths.js';
import type { StatusDocument } from '../src/writer.js';
import { DEFAULT_OUTPUT_DIR, probeOutputDir } from './probe.js';

/**
 * `sidekey status [--dir <dir>] [-o table|json|yaml]`: what the agent's status file says, for
 * `kubectl exec <pod> -c sidekey-agent -- sidekey status`. It reads `<dir>/.sidekey-status.json`
 * (names, versions, times and SK_ERR codes, never a value) and prints it; nothing else is touched.
 *
 * The directory: `--dir`, else the spec's `output.dir` (`-c` file or `SIDEKEY_SPEC`, as the agent
 * next to it reads it), else `/run/sidekey`.
 */

export const STATUS_OUTPUTS = ['table', 'json', 'yaml'] as const;
export type StatusOutput = (typeof STATUS_OUTPUTS)[number];

export interface StatusOptions {
  dir?: string | undefined;
  config?: string | undefined;
  output?: string | undefined;
}

/** Where to look: `--dir`, else the spec's output dir, else the in-cluster default. */
export async function statusDir(opts: StatusOptions, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (opts.dir !== undefined) return path.resolve(opts.dir);
  if (opts.config === undefined && !env.SIDEKEY_SPEC) return DEFAULT_OUTPUT_DIR;
  try {
    return await probeOutputDir({ config: opts.config }, env);
  } catch (e) {
    throw new SkError(
      'SK_ERR_SPEC_PARSE',
      `status: cannot read output.dir from ${opts.config ?? 'SIDEKEY_SPEC'} (${(e as Error).message.split('\n')[0]}); pass --dir`,
      { where: opts.config ?? 'SIDEKEY_SPEC' },
    );
  }
}

/** Read and check the status file of `dir`. */
export async function readStatus(dir: string): Promise<StatusDocument> {
  const file = path.join(dir, STATUS_FILE_NAME);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new SkError(
        'SK_ERR_SOURCE_NOT_FOUND',
        `${file} does not exist: the agent has not completed a write yet, or ${dir} is not its output directory (--dir)`,
        { where: file },
      );
    throw new SkError('SK_ERR_SOURCE_UNREADABLE', `${file}: cannot read (${code ?? 'error'})`, {
      where: file,
    });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new SkError('SK_ERR_SOURCE_UNREADABLE', `${file}: not JSON`, { where: file });
  }
  const d = doc as Partial<StatusDocument> | null;
  if (d?.apiVersion !== 'sidekey.io/v1' || typeof d.secrets !== 'object' || d.secrets === null)
    throw new SkError('SK_ERR_SOURCE_UNREADABLE', `${file}: not a sidekey.io/v1 status document`, {
      where: file,
    });
  return d as StatusDocument;
}

/** A short age: `42s`, `3m12s`, `2h5m`, `3d4h`; `-` when unknown. */
export function formatAge(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-';
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${s % 60 ? `${s % 60}s` : ''}`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${m % 60 ? `${m % 60}m` : ''}`;
  const d = Math.floor(h / 24);
  return `${d}d${h % 24 ? `${h % 24}h` : ''}`;
}

/**
 * The table: one row per secret — name, file, version, age of the last successful refresh, time left
 * on its lease (a column only when a secret has one), how long a backend call for it has been running
 * (WAITING, a column only when one is: a stuck backend shows before its deadline), and the last error's
 * code (with `stale` once past maxStale). A header line says whether the set is ready.
 */
export function formatStatusTable(doc: StatusDocument, dir: string, now: number = Date.now()): string {
  const age = (iso: string | undefined) => (iso ? formatAge(now - Date.parse(iso)) : '-');
  const secrets = Object.entries(doc.secrets);
  // Leased (dynamic) secrets add a column: time left on the lease.
  const leases = secrets.some(([, s]) => s.lease);
  const lease = (s: (typeof secrets)[number][1]) => {
    if (!s.lease) return '-';
    const left = Date.parse(s.lease.expiresAt) - now;
    return left <= 0 ? 'expired' : formatAge(left);
  };
  const waiting = secrets.some(([, s]) => s.inFlight);
  const rows = [
    [
      'SECRET',
      'FILE',
      'VERSION',
      'AGE',
      ...(leases ? ['LEASE'] : []),
      ...(waiting ? ['WAITING'] : []),
      'LAST ERROR',
    ],
  ];
  for (const [name, s] of secrets) {
    const err = [s.lastError?.code, s.stale ? 'stale' : undefined].filter(Boolean).join(', ') || '-';
    rows.push([
      name,
      s.file,
      s.version ?? '-',
      age(s.fetchedAt),
      ...(leases ? [lease(s)] : []),
      ...(waiting ? [age(s.inFlight?.since)] : []),
      err,
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
  const head = `${dir}: ${doc.ready ? 'ready' : 'not ready'}, ${secrets.length} secret(s), status written ${age(doc.updatedAt)} ago`;
  return `${head}\n${lines.join('\n')}\n`;
}

/** Run `sidekey status`; resolves with the exit code (0: the status was read and printed). */
export async function runStatus(opts: StatusOptions): Promise<number> {
  const output = (opts.output ?? 'table') as StatusOutput;
  if (!STATUS_OUTPUTS.includes(output))
    throw new SkError('SK_ERR_CLI_USAGE', `-o ${opts.output}: must be one of ${STATUS_OUTPUTS.join(', ')}`, {
      where: '-o',
    });
  const dir = await statusDir(opts);
  const doc = await readStatus(dir);
  let text: string;
  if (output === 'json') text = `${JSON.stringify(doc, null, 2)}\n`;
  else if (output === 'yaml') text = (await import('yaml')).default.stringify(doc);
  else text = formatStatusTable(doc, dir);
  process.stdout.write(text);
  return 0;
}
