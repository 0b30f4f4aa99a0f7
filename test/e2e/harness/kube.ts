import { request as httpsRequest } from 'node:https';
import {
  AdmissionregistrationV1Api,
  ApiException,
  AuthenticationV1Api,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  RbacAuthorizationV1Api,
  type V1Pod,
} from '@kubernetes/client-node';
import { inject } from 'vitest';
import type { ClusterInfo } from './cluster.js';

/** Typed clients for the harness's API server, as the admin user. */
export interface Kube {
  info: ClusterInfo;
  kc: KubeConfig;
  core: CoreV1Api;
  admission: AdmissionregistrationV1Api;
  rbac: RbacAuthorizationV1Api;
  authn: AuthenticationV1Api;
  objects: KubernetesObjectApi;
}

/** Clients for the cluster started by test/e2e/global-setup.ts. */
export function kube(info: ClusterInfo = inject('cluster')): Kube {
  const kc = new KubeConfig();
  kc.loadFromFile(info.kubeconfig);
  return {
    info,
    kc,
    core: kc.makeApiClient(CoreV1Api),
    admission: kc.makeApiClient(AdmissionregistrationV1Api),
    rbac: kc.makeApiClient(RbacAuthorizationV1Api),
    authn: kc.makeApiClient(AuthenticationV1Api),
    objects: KubernetesObjectApi.makeApiClient(kc),
  };
}

let seq = 0;
/** A fresh namespace name (namespaces are never deleted: no controller-manager would finish that). */
export function uniqueName(prefix: string): string {
  seq += 1;
  return `${prefix}-${process.pid.toString(36)}-${Date.now().toString(36)}-${seq}`.slice(0, 63);
}

/**
 * Creates a namespace and its `default` ServiceAccount (the ServiceAccount admission plugin rejects
 * pods whose service account does not exist, and no controller-manager creates it here).
 */
export async function createNamespace(
  k: Kube,
  name: string,
  labels: Record<string, string> = {},
): Promise<string> {
  await k.core.createNamespace({ body: { metadata: { name, labels } } });
  await k.core.createNamespacedServiceAccount({ namespace: name, body: { metadata: { name: 'default' } } });
  return name;
}

/** The API server's answer to a failed call: HTTP status and its Status message. */
export interface ApiError {
  code: number;
  message: string;
  body: string;
}

/** Runs `fn`, expecting it to fail with an API error; returns that error (throws if it succeeded). */
export async function apiError(fn: () => Promise<unknown>): Promise<ApiError> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof ApiException) {
      const body = typeof e.body === 'string' ? e.body : JSON.stringify(e.body);
      let message = body;
      try {
        message = (JSON.parse(body) as { message?: string }).message ?? body;
      } catch {
        // not a Status object: keep the raw body
      }
      return { code: e.code, message, body };
    }
    throw e;
  }
  throw new Error('expected the API server to reject the call, but it succeeded');
}

/** A minimal pod (Pending forever here: there is no scheduler or kubelet). */
export function pod(
  name: string,
  annotations: Record<string, string> = {},
  extra: Partial<V1Pod['spec']> = {},
): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, annotations },
    spec: {
      containers: [
        {
          name: 'app',
          image: 'registry.example/app:1.0',
          securityContext: {
            allowPrivilegeEscalation: false,
            runAsNonRoot: true,
            runAsUser: 1000,
            capabilities: { drop: ['ALL'] },
            seccompProfile: { type: 'RuntimeDefault' },
          },
        },
      ],
      ...extra,
    },
  };
}

/** A raw API answer, with the `Warning` headers that kubectl prints (admission warnings land there). */
export interface RawAnswer {
  status: number;
  json: Record<string, unknown>;
  warnings: string[];
}

/** Calls the API server directly as the admin user (client-node does not expose warning headers). */
export function rawRequest(k: Kube, method: string, path: string, body?: unknown): Promise<RawAnswer> {
  const user = k.kc.getCurrentUser();
  const b64 = (s: string | undefined): string => Buffer.from(s ?? '', 'base64').toString();
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolvePromise, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: k.info.port,
        method,
        path,
        ca: k.info.caPem,
        cert: b64(user?.certData),
        key: b64(user?.keyData),
        headers: payload ? { 'content-type': 'application/json' } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          const raw = res.headers.warning;
          const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
          let json: Record<string, unknown> = {};
          try {
            json = JSON.parse(text) as Record<string, unknown>;
          } catch {
            json = { raw: text };
          }
          resolvePromise({ status: res.statusCode ?? 0, json, warnings: list });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
