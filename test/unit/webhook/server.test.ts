import jsonpatch from 'fast-json-patch';
import { afterEach, describe, expect, it } from 'vitest';
import { parseWebhookConfig } from '../../../webhook/config.js';
import { createPipelineContext } from '../../../webhook/context.js';
import type { Pod } from '../../../webhook/k8s.js';
import { buildApp } from '../../../webhook/server.js';
import { testContext, testRegistry } from './helpers.js';

const pod = (annotations: Record<string, string>): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { generateName: 'web-', annotations },
  spec: { containers: [{ name: 'app', image: 'app:1' }] },
});

const review = (object: unknown, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    requestKind: { group: '', version: 'v1', kind: 'Pod' },
    namespace: 'shop',
    operation: 'CREATE',
    userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
    object,
    dryRun: false,
    ...extra,
  },
});

const OPTED = { 'sidekey.io/inject': 'true', 'sidekey.io/secret-db': 'vault:secret/data/shop/db#password' };

let apps: Array<{ close(): Promise<unknown> }> = [];
afterEach(async () => {
  await Promise.all(apps.map((a) => a.close()));
  apps = [];
});

function app(config: Record<string, unknown> = {}) {
  const c = parseWebhookConfig(config);
  const a = buildApp(c, {
    ctx: createPipelineContext(c, { nativeSidecars: true, registry: testRegistry() }),
  });
  apps.push(a);
  return a;
}

async function metric(a: ReturnType<typeof app>, name: string): Promise<string[]> {
  const r = await a.inject({ method: 'GET', url: '/metrics' });
  return r.body.split('\n').filter((l) => l.startsWith(name));
}

describe('POST /mutate (app.inject)', () => {
  it('answers an opted-in pod with the uid and a base64 JSONPatch that applies', async () => {
    const a = app();
    const input = pod(OPTED);
    const r = await a.inject({ method: 'POST', url: '/mutate', payload: review(input) });
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body.apiVersion).toBe('admission.k8s.io/v1');
    expect(body.kind).toBe('AdmissionReview');
    expect(body.response.uid).toBe('705ab4f5-6393-11e8-b7cc-42010a800002');
    expect(body.response.allowed).toBe(true);
    expect(body.response.patchType).toBe('JSONPatch');
    const patch = JSON.parse(Buffer.from(body.response.patch, 'base64').toString('utf8'));
    const out = jsonpatch.applyPatch(structuredClone(input), patch, true, false).newDocument as Pod;
    expect(out.metadata?.annotations?.['sidekey.io/status']).toBe('injected');
    expect(out.spec?.initContainers?.[0]?.name).toBe('sidekey-agent');
    expect(await metric(a, 'sidekey_webhook_injections_total{')).toEqual([
      'sidekey_webhook_injections_total{namespace="shop",mode="native"} 1',
    ]);
  });

  it('leaves other pods, UPDATEs and other kinds alone (allowed, no patch) and counts skips by reason', async () => {
    const a = app();
    const r1 = (await a.inject({ method: 'POST', url: '/mutate', payload: review(pod({})) })).json();
    const r2 = (
      await a.inject({ method: 'POST', url: '/mutate', payload: review(pod(OPTED), { operation: 'UPDATE' }) })
    ).json();
    const r3 = (
      await a.inject({
        method: 'POST',
        url: '/mutate',
        payload: review(
          { kind: 'Deployment' },
          { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } },
        ),
      })
    ).json();
    for (const r of [r1, r2, r3]) {
      expect(r.response.allowed).toBe(true);
      expect(r.response.patch).toBeUndefined();
    }
    const lines = await metric(a, 'sidekey_webhook_skips_total{');
    expect(lines).toContain('sidekey_webhook_skips_total{reason="not-opted-in"} 1');
    expect(lines).toContain('sidekey_webhook_skips_total{reason="not-create"} 1');
    expect(lines).toContain('sidekey_webhook_skips_total{reason="not-a-pod"} 1');
  });

  it('denies invalid annotations naming the annotation and the code', async () => {
    const a = app();
    const r = (
      await a.inject({
        method: 'POST',
        url: '/mutate',
        payload: review(pod({ ...OPTED, 'sidekey.io/mode-db': '9' })),
      })
    ).json();
    expect(r.response.allowed).toBe(false);
    expect(r.response.status.code).toBe(400);
    expect(r.response.status.message).toContain('SK_ERR_MODE_INVALID');
    expect(r.response.status.message).toContain('sidekey.io/mode-db');
    expect(await metric(a, 'sidekey_webhook_denials_total{')).toEqual([
      'sidekey_webhook_denials_total{code="SK_ERR_MODE_INVALID"} 1',
    ]);
  });

  it('skips an opted-in Windows pod with the reason as an admission warning', async () => {
    const a = app();
    const windows = {
      ...pod(OPTED),
      spec: { os: { name: 'windows' }, containers: [{ name: 'app', image: 'app:1' }] },
    };
    const r = (await a.inject({ method: 'POST', url: '/mutate', payload: review(windows) })).json();
    expect(r.response.allowed).toBe(true);
    expect(r.response.patch).toBeUndefined();
    expect(r.response.warnings).toEqual([expect.stringContaining('Windows pods are skipped')]);
    expect(await metric(a, 'sidekey_webhook_skips_total{')).toContain(
      'sidekey_webhook_skips_total{reason="windows"} 1',
    );
    // Pods that did not opt in get no warning.
    const plain = (await a.inject({ method: 'POST', url: '/mutate', payload: review(pod({})) })).json();
    expect(plain.response.warnings).toBeUndefined();
  });

  it('an inject value that means yes is skipped with an admission warning and its own skip reason', async () => {
    const a = app();
    const r = (
      await a.inject({
        method: 'POST',
        url: '/mutate',
        payload: review(pod({ ...OPTED, 'sidekey.io/inject': 'True' })),
      })
    ).json();
    expect(r.response.allowed).toBe(true);
    expect(r.response.patch).toBeUndefined();
    expect(r.response.warnings).toEqual([
      'sidekey: not injected: sidekey.io/inject is set, but not to "true" (only the exact lowercase string "true" opts in); write sidekey.io/inject: "true"',
    ]);
    expect(await metric(a, 'sidekey_webhook_skips_total{')).toContain(
      'sidekey_webhook_skips_total{reason="opt-in-value"} 1',
    );
  });

  it('an injected Job pod on a cluster without native sidecars carries the init-only warning', async () => {
    const c = parseWebhookConfig({});
    const a = buildApp(c, {
      ctx: createPipelineContext(c, { nativeSidecars: false, registry: testRegistry() }),
    });
    apps.push(a);
    const job = {
      ...pod(OPTED),
      spec: { restartPolicy: 'OnFailure', containers: [{ name: 'app', image: 'app:1' }] },
    };
    const r = (await a.inject({ method: 'POST', url: '/mutate', payload: review(job) })).json();
    expect(r.response.patchType).toBe('JSONPatch');
    expect(r.response.warnings).toHaveLength(1);
    expect(r.response.warnings[0]).toMatch(/^sidekey: the pod runs to completion .*init container/);
  });

  it('admits invalid pods uninjected, with a warning, under allow-without-injection', async () => {
    const a = app({ onInvalidAnnotations: 'allow-without-injection' });
    const r = (
      await a.inject({
        method: 'POST',
        url: '/mutate',
        payload: review(pod({ ...OPTED, 'sidekey.io/typo': 'x' })),
      })
    ).json();
    expect(r.response.allowed).toBe(true);
    expect(r.response.patch).toBeUndefined();
    expect(r.response.warnings[0]).toContain('SK_ERR_ANNOTATION_UNKNOWN');
    expect(r.response.warnings[0]).toContain('sidekey.io/typo');
    expect(await metric(a, 'sidekey_webhook_invalid_allowed_total{')).toEqual([
      'sidekey_webhook_invalid_allowed_total{code="SK_ERR_ANNOTATION_UNKNOWN"} 1',
    ]);
  });

  it('answers dryRun requests the same way but counts nothing', async () => {
    const a = app();
    const wet = (await a.inject({ method: 'POST', url: '/mutate', payload: review(pod(OPTED)) })).json();
    const dry = (
      await a.inject({ method: 'POST', url: '/mutate', payload: review(pod(OPTED), { dryRun: true }) })
    ).json();
    expect(dry.response.patch).toBe(wet.response.patch);
    expect(await metric(a, 'sidekey_webhook_injections_total{')).toEqual([
      'sidekey_webhook_injections_total{namespace="shop",mode="native"} 1',
    ]);
  });

  it('skips the excluded namespaces', async () => {
    const a = app();
    const r = (
      await a.inject({
        method: 'POST',
        url: '/mutate',
        payload: review(pod(OPTED), { namespace: 'kube-system' }),
      })
    ).json();
    expect(r.response.patch).toBeUndefined();
    expect(await metric(a, 'sidekey_webhook_skips_total{')).toEqual([
      'sidekey_webhook_skips_total{reason="excluded-namespace"} 1',
    ]);
  });

  it('refuses what is not an AdmissionReview v1 with 400', async () => {
    const a = app();
    const r = await a.inject({
      method: 'POST',
      url: '/mutate',
      payload: { apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview' },
    });
    expect(r.statusCode).toBe(400);
    // A body that is not JSON: V8's parse error would quote it; the answer must not.
    const r2 = await a.inject({
      method: 'POST',
      url: '/mutate',
      payload: '{"password": SKCANARY-7f3c9e2a-do-not-print',
      headers: { 'content-type': 'application/json' },
    });
    expect(r2.statusCode).toBe(400);
    expect(r2.body).not.toContain('SKCANARY');
    expect(r2.json().code).toBe('SK_ERR_MANIFEST_INVALID');
  });
});

describe('health and metrics', () => {
  it('serves /healthz, /readyz and /metrics with the request histogram', async () => {
    const a = app();
    expect((await a.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    expect((await a.inject({ method: 'GET', url: '/readyz' })).json()).toEqual({ status: 'ready' });
    await a.inject({ method: 'POST', url: '/mutate', payload: review(pod({})) });
    const m = await a.inject({ method: 'GET', url: '/metrics' });
    expect(m.headers['content-type']).toContain('text/plain');
    expect(m.body).toContain('sidekey_webhook_request_duration_seconds_bucket{le="0.005",outcome="skip"} 1');
  });
});

// keep the shared helper imported for type checks of contexts built elsewhere
void testContext;

describe('webhook logs', () => {
  it("carry pino's level as a string, through fastify's use of the logger too", async () => {
    const { Writable } = await import('node:stream');
    const { createLogger } = await import('../../../src/log.js');
    let text = '';
    const sink = new Writable({
      write(c: Buffer, _e, cb) {
        text += c.toString();
        cb();
      },
    });
    const c = parseWebhookConfig({});
    const a = buildApp(c, {
      ctx: createPipelineContext(c, { nativeSidecars: true, registry: testRegistry() }),
      logger: createLogger({ destination: sink, level: 'debug', name: 'sidekey-webhook' }),
    });
    apps.push(a);
    await a.inject({ method: 'POST', url: '/mutate', payload: review(pod(OPTED)) });
    await a.inject({
      method: 'POST',
      url: '/mutate',
      payload: review(pod({ 'sidekey.io/inject': 'true', 'sidekey.io/secert-db': 'x' })),
    });
    const lines = text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { level: unknown });
    expect(lines.length).toBeGreaterThan(1);
    for (const l of lines) expect(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).toContain(l.level);
  });
});
