import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { outputFormat } from '../src/cli-output.js';
import { SkError } from '../src/errors.js';
import { isRecord } from '../src/is-record.js';
import { backendHints } from './backend-hints.js';
import { KUBE_VERSION_RE, kubeVersionUnknown, loadWebhookConfig, nativeSidecarsEnabled } from './config.js';
import { createPipelineContext } from './context.js';
import { documentItems } from './manifest-docs.js';
import { injectObject, objectName } from './workloads.js';

export interface InjectCliOptions {
  readonly file: string;
  readonly patch?: boolean;
  readonly config?: string;
  readonly kubeVersion?: string;
  readonly namespace?: string;
  /** `-o yaml` (default: multi-document YAML) or `json` (one object, or a v1 List of them). */
  readonly output?: string;
}

export interface InjectCliIo {
  readonly stdout: (s: string) => void;
  readonly stderr: (s: string) => void;
  readonly readStdin: () => string;
}

/**
 * `sidekey inject -f <file|-> [--patch]`: the webhook's pipeline, offline. Reads Pods and workloads
 * (YAML or JSON, multi-document, or a `List`), prints the mutated objects as YAML, or with `--patch`
 * one JSON patch per object per line. Objects that are not opted in are printed unchanged, with the
 * reason on stderr. Invalid annotations throw (exit 2) before anything is printed, so a pipe into
 * `kubectl apply` never applies half a file.
 */
export function runInject(o: InjectCliOptions, io: InjectCliIo): void {
  if (o.kubeVersion !== undefined && !KUBE_VERSION_RE.test(o.kubeVersion)) {
    // Unchecked, a typo would silently select classic sidecars for mode auto.
    throw new SkError(
      'SK_ERR_CLI_USAGE',
      `--kube-version: "${o.kubeVersion}" is not a version such as 1.30 or v1.31.2`,
      { where: '--kube-version' },
    );
  }
  const format = outputFormat(o.output, ['yaml', 'json'] as const, 'yaml');
  if (o.patch && o.output !== undefined) {
    throw new SkError('SK_ERR_CLI_USAGE', '-o and --patch exclude each other (patches are JSON lines)', {
      where: '-o',
    });
  }
  const config = loadWebhookConfig(o.config, {});
  const ctx = createPipelineContext(config, { nativeSidecars: nativeSidecarsEnabled(config, o.kubeVersion) });
  const source = o.file === '-' ? '<stdin>' : o.file;
  let text: string;
  try {
    text = o.file === '-' ? io.readStdin() : readFileSync(o.file, 'utf8');
  } catch (e) {
    throw new SkError(
      'SK_ERR_CLI_USAGE',
      `-f ${o.file}: cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
      {
        where: o.file,
      },
    );
  }
  const docs = YAML.parseAllDocuments(text);
  const out: string[] = [];
  const objects: unknown[] = [];
  const notes: string[] = [];
  if (kubeVersionUnknown(config, o.kubeVersion)) {
    // Said once per run: every supported Kubernetes release has native sidecars.
    notes.push(
      'sidekey inject: cluster version unknown (no --kube-version, no kubernetesVersion in the config): mode auto means native sidecars; pass --kube-version for a cluster older than 1.29',
    );
  }
  for (const [i, doc] of docs.entries()) {
    if (!(doc instanceof YAML.Document)) continue;
    for (const item of documentItems(doc, source)) {
      const r = injectObject(item, ctx, o.namespace);
      const name = isRecord(item) ? objectName(item) : `document ${i + 1}`;
      for (const w of r.warnings) notes.push(`sidekey inject: ${name}: warning: ${w}`);
      if (r.kind === 'inject')
        for (const w of backendHints(r.spec)) notes.push(`sidekey inject: ${name}: warning: ${w}`);
      if (r.kind === 'skip') {
        notes.push(`sidekey inject: ${name}: unchanged: ${r.reason}`);
        out.push(o.patch ? '[]' : YAML.stringify(item, { lineWidth: 0 }));
        objects.push(item);
      } else {
        out.push(o.patch ? JSON.stringify(r.patch) : YAML.stringify(r.object, { lineWidth: 0 }));
        objects.push(r.object);
      }
    }
  }
  for (const n of notes) io.stderr(`${n}\n`);
  if (format === 'json' && !o.patch) {
    const doc = objects.length === 1 ? objects[0] : { apiVersion: 'v1', kind: 'List', items: objects };
    io.stdout(`${JSON.stringify(doc, null, 2)}\n`);
    return;
  }
  io.stdout(o.patch ? out.map((l) => `${l}\n`).join('') : out.join('---\n'));
}
