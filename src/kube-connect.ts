import type * as K8s from '@kubernetes/client-node';
import { firstLine, SkError } from './errors.js';

/**
 * The CLI's connection to the Kubernetes API (`scan`, `migrate --cluster`, `check-webhook`): the
 * current kubeconfig context or the in-cluster config, and errors that name the API server.
 */
export interface KubeConnection {
  k8s: typeof K8s;
  kc: K8s.KubeConfig;
  /** The context's namespace, else `default`. */
  namespace: string;
  /** The API server's URL, for error messages. */
  server: string;
}

/** What client-node falls back to when it finds no configuration at all. */
const FALLBACK_SERVER = 'http://localhost:8080';

export async function connect(): Promise<KubeConnection> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  try {
    kc.loadFromDefault();
  } catch (e) {
    throw new SkError('SK_ERR_BACKEND_CONFIG', `kubeconfig: ${firstLine(e)}`, {
      where: 'kubeconfig',
    });
  }
  const cluster = kc.getCurrentCluster();
  if (
    !cluster ||
    (cluster.server === FALLBACK_SERVER && cluster.name === 'cluster' && !kc.getCurrentUser()?.token)
  ) {
    throw new SkError(
      'SK_ERR_BACKEND_CONFIG',
      'no kubeconfig found: set KUBECONFIG, create ~/.kube/config (e.g. with your cloud CLI), or run in a pod with a service account',
      { where: 'kubeconfig' },
    );
  }
  const namespace = kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  return { k8s, kc, namespace, server: cluster.server };
}

/** The system error code (ECONNREFUSED, ENOTFOUND, CERT_HAS_EXPIRED …) of a failed request, if any. */
function networkCode(e: unknown): string | undefined {
  for (let c: unknown = e, i = 0; c && i < 4; c = (c as { cause?: unknown }).cause, i++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** An SkError for a failed API call: the HTTP status, or the server that could not be reached. */
export function apiError(e: unknown, call: string, conn: Pick<KubeConnection, 'k8s' | 'server'>): SkError {
  if (e instanceof conn.k8s.ApiException) {
    const code =
      e.code === 401
        ? 'SK_ERR_BACKEND_AUTH'
        : e.code === 403
          ? 'SK_ERR_BACKEND_DENIED'
          : e.code === 404
            ? 'SK_ERR_SOURCE_NOT_FOUND'
            : e.code >= 500
              ? 'SK_ERR_BACKEND_UNAVAILABLE'
              : 'SK_ERR_BACKEND_RESPONSE';
    return new SkError(code, `${call}: HTTP ${e.code} from ${conn.server}`, { where: call });
  }
  if (process.env.SIDEKEY_DEBUG) console.error(e);
  const why = networkCode(e) ?? firstLine(e);
  return new SkError('SK_ERR_BACKEND_UNAVAILABLE', `${call}: cannot reach ${conn.server} (${why})`, {
    where: call,
  });
}
