import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { V1Container, V1EnvVar, V1Pod, V1Volume } from '@kubernetes/client-node';
import type { Kube } from './kube.js';
import { type Proc, startProc } from './procs.js';

const repo = resolve(import.meta.dirname, '../../..');
const cliBundle = join(repo, 'bin', 'sidekey.js');

/** The injected agent container of a stored pod, as the pod runner will run it. */
export interface AgentRun {
  /** The container taken from the stored pod. */
  container: V1Container;
  /** Whether it is an init container (native sidecar or init-only mode) or a regular one. */
  init: boolean;
  /** Temp dir standing in for each of the container's mount paths. */
  mounts: Map<string, string>;
  /** Local dir for a path inside the container (a mount path or below one). */
  local(containerPath: string): string;
  /** The environment given to the process (after path rewriting). */
  env: Record<string, string>;
  /** The `sidekey` arguments (after `agent`). */
  args: string[];
  proc: Proc;
  /** Runs the container's startupProbe exec command as the kubelet would; returns its exit code. */
  startupProbe(): number;
}

/** Finds the injected sidekey agent container (the one handed SIDEKEY_SPEC). */
export function agentContainer(p: V1Pod): { container: V1Container; init: boolean } {
  for (const [list, init] of [
    [p.spec?.initContainers ?? [], true],
    [p.spec?.containers ?? [], false],
  ] as const) {
    for (const c of list) {
      if ((c.env ?? []).some((e) => e.name === 'SIDEKEY_SPEC')) return { container: c, init };
    }
  }
  throw new Error(`pod ${p.metadata?.name}: no container with SIDEKEY_SPEC (was it injected?)`);
}

/** Rewrites container paths to local ones in every string of a JSON value. */
function rewriteDeep(v: unknown, rw: (s: string) => string): unknown {
  if (typeof v === 'string') return rw(v);
  if (Array.isArray(v)) return v.map((x) => rewriteDeep(x, rw));
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, rewriteDeep(x, rw)]));
  }
  return v;
}

async function fillVolume(k: Kube, p: V1Pod, vol: V1Volume, dir: string): Promise<void> {
  const ns = p.metadata?.namespace ?? 'default';
  const write = (rel: string, content: string | Buffer): void => {
    const file = join(dir, rel);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content, { mode: 0o600 });
  };
  const fieldValue = (fieldPath: string): string => {
    const m = p.metadata ?? {};
    const table: Record<string, string | undefined> = {
      'metadata.name': m.name,
      'metadata.namespace': ns,
      'metadata.uid': m.uid,
      'spec.serviceAccountName': p.spec?.serviceAccountName ?? 'default',
    };
    const ann = /^metadata\.annotations\['(.+)'\]$/.exec(fieldPath);
    if (ann) return m.annotations?.[ann[1] as string] ?? '';
    const lab = /^metadata\.labels\['(.+)'\]$/.exec(fieldPath);
    if (lab) return m.labels?.[lab[1] as string] ?? '';
    return table[fieldPath] ?? '';
  };
  const token = async (
    audience: string | undefined,
    expirationSeconds: number | undefined,
  ): Promise<string> => {
    const tr = await k.core.createNamespacedServiceAccountToken({
      name: p.spec?.serviceAccountName ?? 'default',
      namespace: ns,
      body: {
        spec: {
          audiences: audience ? [audience] : [],
          expirationSeconds: expirationSeconds ?? 3600,
          boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: p.metadata?.name, uid: p.metadata?.uid },
        },
      },
    });
    const t = tr.status?.token;
    if (!t) throw new Error('TokenRequest returned no token');
    return t;
  };
  if (vol.projected) {
    for (const src of vol.projected.sources ?? []) {
      if (src.serviceAccountToken) {
        const s = src.serviceAccountToken;
        write(s.path, await token(s.audience, s.expirationSeconds));
      } else if (src.configMap) {
        // kube-root-ca.crt is published by the controller-manager, absent here: it is this CA.
        const data =
          src.configMap.name === 'kube-root-ca.crt'
            ? { 'ca.crt': k.info.caPem }
            : ((await k.core.readNamespacedConfigMap({ name: src.configMap.name as string, namespace: ns }))
                .data ?? {});
        for (const it of src.configMap.items ?? Object.keys(data).map((key) => ({ key, path: key }))) {
          write(it.path, data[it.key] ?? '');
        }
      } else if (src.downwardAPI) {
        for (const it of src.downwardAPI.items ?? []) {
          if (it.fieldRef) write(it.path, fieldValue(it.fieldRef.fieldPath));
        }
      } else if (src.secret) {
        const s = await k.core.readNamespacedSecret({ name: src.secret.name as string, namespace: ns });
        for (const [key, b64] of Object.entries(s.data ?? {})) write(key, Buffer.from(b64, 'base64'));
      }
    }
  } else if (vol.secret) {
    const s = await k.core.readNamespacedSecret({ name: vol.secret.secretName as string, namespace: ns });
    for (const [key, b64] of Object.entries(s.data ?? {})) write(key, Buffer.from(b64, 'base64'));
  } else if (vol.configMap) {
    const c = await k.core.readNamespacedConfigMap({ name: vol.configMap.name as string, namespace: ns });
    for (const [key, v] of Object.entries(c.data ?? {})) write(key, v);
  }
  // emptyDir (tmpfs or not) and anything else: an empty directory.
}

/**
 * Runs the injected agent container of a stored pod as a local process, as a kubelet would start it:
 * its args and env (SIDEKEY_SPEC included), each volume mount mapped to a temp dir (projected
 * service-account tokens requested from the API server with the pod's audience and bound to the pod),
 * and every container path in the env/args rewritten to its local dir.
 */
export async function runAgent(
  k: Kube,
  stored: V1Pod,
  opts: { extraEnv?: Record<string, string>; logFile?: string } = {},
): Promise<AgentRun> {
  const { container, init } = agentContainer(stored);
  // Under the run's dir (logs kept); the global teardown removes the volumes, which hold secrets.
  mkdirSync(join(k.info.dir, 'pods'), { recursive: true });
  const root = mkdtempSync(
    join(k.info.dir, 'pods', `${stored.metadata?.namespace}-${stored.metadata?.name}-`),
  );
  const mounts = new Map<string, string>();
  const volumes = new Map((stored.spec?.volumes ?? []).map((v) => [v.name, v]));
  const filled = new Set<string>();
  for (const m of container.volumeMounts ?? []) {
    const dir = join(root, 'volumes', m.name, m.subPath ?? '');
    mkdirSync(dir, { recursive: true });
    const vol = volumes.get(m.name);
    if (!vol) throw new Error(`container ${container.name} mounts unknown volume ${m.name}`);
    // A volume mounted twice (subPaths) is one directory, filled once.
    if (!filled.has(m.name)) await fillVolume(k, stored, vol, join(root, 'volumes', m.name));
    filled.add(m.name);
    mounts.set(m.mountPath, dir);
  }
  const byLength = [...mounts.keys()].sort((a, b) => b.length - a.length);
  const local = (s: string): string => {
    for (const mp of byLength) {
      if (s === mp || s.startsWith(`${mp.replace(/\/$/, '')}/`))
        return (mounts.get(mp) as string) + s.slice(mp.length);
    }
    return s;
  };
  const rewrite = (s: string): string => {
    // A value may also carry a path inside a larger string (e.g. VAR=/path); rewrite every occurrence.
    let out = local(s);
    if (out !== s) return out;
    for (const mp of byLength) {
      // Only whole path components after a separator (`VAR=/path`, `a:/path`, `--x /path`).
      const at = new RegExp(`(^|[=:, ])${mp.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=/|$|[:, ])`, 'g');
      out = out.replace(at, (_m, pre: string) => pre + (mounts.get(mp) as string));
    }
    return out;
  };
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: root,
    KUBERNETES_SERVICE_HOST: '127.0.0.1',
    KUBERNETES_SERVICE_PORT: String(k.info.port),
    KUBERNETES_SERVICE_PORT_HTTPS: String(k.info.port),
  };
  for (const e of container.env ?? []) env[e.name] = await envValue(k, stored, e);
  if (env.SIDEKEY_SPEC) env.SIDEKEY_SPEC = JSON.stringify(rewriteDeep(JSON.parse(env.SIDEKEY_SPEC), rewrite));
  for (const [name, v] of Object.entries(env)) if (name !== 'SIDEKEY_SPEC') env[name] = rewrite(v);
  Object.assign(env, opts.extraEnv ?? {});
  const argv = [...(container.command ?? []), ...(container.args ?? [])].map(rewrite);
  const at = argv.indexOf('agent');
  if (at < 0)
    throw new Error(`container ${container.name}: no \`agent\` subcommand in ${JSON.stringify(argv)}`);
  const args = argv.slice(at + 1);
  const proc = startProc(
    process.execPath,
    [cliBundle, 'agent', ...args],
    opts.logFile ?? join(root, 'agent.log'),
    {
      env,
      cwd: root,
    },
  );
  const startupProbe = (): number => {
    const cmd = (container.startupProbe?.exec?.command ?? []).map(rewrite);
    const i = cmd.indexOf('agent');
    if (i < 0) throw new Error(`container ${container.name}: no exec startupProbe running \`agent\``);
    const r = spawnSync(process.execPath, [cliBundle, ...cmd.slice(i)], { env, cwd: root, timeout: 30_000 });
    return r.status ?? -1;
  };
  return { container, init, mounts, local, env, args, proc, startupProbe };
}

async function envValue(k: Kube, p: V1Pod, e: V1EnvVar): Promise<string> {
  if (e.value !== undefined) return e.value;
  const ns = p.metadata?.namespace ?? 'default';
  const f = e.valueFrom?.fieldRef?.fieldPath;
  if (f === 'metadata.name') return p.metadata?.name ?? '';
  if (f === 'metadata.namespace') return ns;
  if (f === 'metadata.uid') return p.metadata?.uid ?? '';
  if (f === 'spec.serviceAccountName') return p.spec?.serviceAccountName ?? 'default';
  if (f === 'status.podIP' || f === 'status.hostIP') return '127.0.0.1';
  const s = e.valueFrom?.secretKeyRef;
  if (s) {
    const sec = await k.core.readNamespacedSecret({ name: s.name as string, namespace: ns });
    return Buffer.from(sec.data?.[s.key] ?? '', 'base64').toString();
  }
  return '';
}
