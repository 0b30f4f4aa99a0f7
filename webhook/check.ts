import { ANN_STATUS, STATUS_INJECTED } from '../src/annotations.js';
import { SkError } from '../src/errors.js';
import { apiError, connect } from '../src/kube-connect.js';

/**
 * `sidekey check-webhook`: is the webhook answering the API server? Creates an opted-in pod with
 * `dryRun=All` (admission runs, nothing is stored) and checks that what comes back carries the agent.
 * The chart's `helm test` hook runs it. The pod's only secret is `file:/dev/null`: nothing is read.
 */
export interface CheckWebhookOptions {
  namespace?: string;
  timeout?: string;
}

export interface CheckResult {
  namespace: string;
  server: string;
  injected: boolean;
  /** The agent container the webhook added, and whether it is a native sidecar. */
  agent?: { name: string; image?: string; nativeSidecar: boolean };
}

const AGENT_ENV = 'SIDEKEY_SPEC';

function seconds(t: string | undefined): number {
  if (t === undefined) return 10;
  const m = /^(\d+)(s?)$/.exec(t);
  if (!m || Number(m[1]) < 1) {
    throw new SkError('SK_ERR_CLI_USAGE', `--timeout ${t}: use whole seconds, e.g. 10s`, {
      where: '--timeout',
    });
  }
  return Number(m[1]);
}

/** The Status message of a refused request (the webhook's denial or the API server's call error). */
function statusMessage(e: unknown): string | undefined {
  const body = (e as { body?: unknown }).body;
  try {
    const status = typeof body === 'string' ? JSON.parse(body) : body;
    const msg = (status as { message?: unknown })?.message;
    return typeof msg === 'string' ? msg.split('\n')[0] : undefined;
  } catch {
    return undefined;
  }
}

export async function checkWebhook(opts: CheckWebhookOptions): Promise<CheckResult> {
  const timeout = seconds(opts.timeout);
  const conn = await connect();
  const namespace = opts.namespace ?? conn.namespace;
  const core = conn.kc.makeApiClient(conn.k8s.CoreV1Api);
  const body = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'sidekey-check-',
      annotations: { 'sidekey.io/inject': 'true', 'sidekey.io/secret-check': 'file:/dev/null' },
      labels: { 'app.kubernetes.io/name': 'sidekey-check' },
    },
    // Meets the restricted Pod Security Standard, so that validation after the webhook passes in any
    // namespace and a failure is about the webhook.
    spec: {
      securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: 'app',
          image: 'registry.k8s.io/pause:3.10',
          securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
        },
      ],
    },
  };
  const call = `dry-run create pods in namespace ${namespace}`;
  let timer: NodeJS.Timeout | undefined;
  let created: Awaited<ReturnType<typeof core.createNamespacedPod>>;
  try {
    created = await Promise.race([
      core.createNamespacedPod({ namespace, body, dryRun: 'All' }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new SkError(
                'SK_ERR_WEBHOOK_CHECK',
                `${call}: no answer from ${conn.server} within ${timeout}s`,
                {
                  where: call,
                },
              ),
            ),
          timeout * 1000,
        );
      }),
    ]);
  } catch (e) {
    if (e instanceof SkError) throw e;
    const msg = e instanceof conn.k8s.ApiException ? statusMessage(e) : undefined;
    if (msg) {
      throw new SkError('SK_ERR_WEBHOOK_CHECK', `${call}: HTTP ${(e as { code: number }).code}: ${msg}`, {
        where: call,
      });
    }
    throw apiError(e, call, conn);
  } finally {
    clearTimeout(timer);
  }
  const containers = [
    ...(created.spec?.initContainers ?? []).map((c) => ({ c, init: true })),
    ...(created.spec?.containers ?? []).map((c) => ({ c, init: false })),
  ];
  const agent = containers.find(({ c }) => (c.env ?? []).some((e) => e.name === AGENT_ENV));
  const injected = created.metadata?.annotations?.[ANN_STATUS] === STATUS_INJECTED && agent !== undefined;
  return {
    namespace,
    server: conn.server,
    injected,
    ...(agent
      ? {
          agent: {
            name: agent.c.name,
            ...(agent.c.image ? { image: agent.c.image } : {}),
            nativeSidecar: agent.init && agent.c.restartPolicy === 'Always',
          },
        }
      : {}),
  };
}

/** The command: prints the result (`-o table|json|yaml`); exit 0 only when the pod came back injected. */
export async function runCheckWebhook(
  opts: CheckWebhookOptions & { output?: string },
  io: { stdout(s: string): void } = { stdout: (s) => void process.stdout.write(s) },
): Promise<number> {
  const { outputFormat, structured } = await import('../src/cli-output.js');
  const format = outputFormat(opts.output, ['table', 'json', 'yaml'] as const, 'table');
  const r = await checkWebhook(opts);
  if (format !== 'table') io.stdout(await structured(r, format));
  else if (r.injected) {
    io.stdout(
      `ok: the webhook injected a dry-run pod in namespace ${r.namespace} (agent ${r.agent?.name}${r.agent?.nativeSidecar ? ', native sidecar' : ''}, image ${r.agent?.image ?? '?'})\n`,
    );
  }
  if (!r.injected) {
    throw new SkError(
      'SK_ERR_WEBHOOK_CHECK',
      `the dry-run pod in namespace ${r.namespace} was admitted without the agent: the webhook was not called (namespace or object selector, failurePolicy Ignore with the webhook down)`,
      { where: 'check-webhook' },
    );
  }
  return 0;
}
