import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import jsonpatch from 'fast-json-patch';
import { afterEach, describe, expect, it } from 'vitest';
import { parseWebhookConfig } from '../../../webhook/config.js';
import { createPipelineContext } from '../../../webhook/context.js';
import { diffPatch } from '../../../webhook/diff.js';
import type { Pod } from '../../../webhook/k8s.js';
import { LIMITS } from '../../../webhook/limits.js';
import { mutatePod } from '../../../webhook/pipeline.js';
import { buildApp } from '../../../webhook/server.js';
import { admissionReview, LARGEST, type LargePodShape, largePod } from '../../helpers/large-pod.js';
import { testContext, testRegistry } from './helpers.js';

const classic = () => testContext({ nativeSidecars: false }, { nativeSidecars: false });
const run = (shape: LargePodShape) =>
  mutatePod({ operation: 'CREATE', namespace: 'shop', pod: largePod(shape) as Pod }, classic());

/** Every op addresses one list item or a field below one, never a whole list the pod already had. */
function wholeListOps(before: unknown, patch: ReturnType<typeof diffPatch>): string[] {
  return patch
    .filter((op) => op.op !== 'remove' && Array.isArray((op as { value?: unknown }).value))
    .map((op) => op.path)
    .filter((p) => {
      const have = jsonpatch.getValueByPointer(before, p) as unknown;
      return Array.isArray(have);
    });
}

describe('the patch follows the change, not the pod', () => {
  const container = (name: string, env: Array<{ name: string; value: string }>) => ({
    name,
    image: 'app:1',
    env,
  });
  const settings = Array.from({ length: 50 }, (_, i) => ({ name: `SETTING_${i}`, value: 'x'.repeat(100) }));

  it('a *_FILE variable the pod already had in the middle of its env: one remove, one add', () => {
    const pod = {
      metadata: { annotations: {} },
      spec: {
        containers: [
          container('app', [
            ...settings.slice(0, 25),
            { name: 'DB_FILE', value: '/old' },
            ...settings.slice(25),
          ]),
        ],
      },
    };
    const after = structuredClone(pod);
    const env = after.spec.containers[0]!.env;
    env.splice(25, 1);
    env.push({ name: 'DB_FILE', value: '/run/sidekey/db' });
    const patch = diffPatch(pod, after);
    expect(wholeListOps(pod, patch)).toEqual([]);
    expect(patch).toHaveLength(2);
    expect(jsonpatch.applyPatch(structuredClone(pod), patch as never).newDocument).toEqual(after);
  });

  it('a pod whose container has 2000 env entries and already a DB_FILE: a few ops, at once', () => {
    // rfc6902's edit-distance search took 35 s for 1000 entries here, and ran out of memory for 2000.
    const env = Array.from({ length: 2000 }, (_, i) => ({ name: `SETTING_${i}`, value: 'x'.repeat(50) }));
    env[1000] = { name: 'DB_FILE', value: '/old' };
    const pod = {
      metadata: {
        annotations: {
          'sidekey.io/inject': 'true',
          'sidekey.io/secret-db': 'file:/etc/db',
          'sidekey.io/env-db': 'DB',
        },
      },
      spec: { containers: [container('app', env)] },
    };
    const o = mutatePod({ operation: 'CREATE', namespace: 'shop', pod: pod as Pod }, classic());
    expect(o.kind).toBe('inject');
    if (o.kind !== 'inject') return;
    const envOps = o.patch.filter((op) => op.path.startsWith('/spec/containers/0/env'));
    expect(envOps).toEqual([
      { op: 'remove', path: '/spec/containers/0/env/1000' },
      {
        op: 'add',
        path: '/spec/containers/0/env/1999',
        value: { name: 'DB_FILE', value: '/run/sidekey/db' },
      },
    ]);
  });

  it('repeated names are matched by occurrence; big unnamed lists are replaced, not searched', () => {
    const env = Array.from({ length: 2000 }, (_, i) => ({ name: `S_${i % 1000}`, value: String(i) }));
    env.splice(500, 0, { name: 'DB_FILE', value: '/old' });
    const before = { spec: { containers: [container('app', env)] } };
    const after = structuredClone(before);
    after.spec.containers[0]!.env.splice(500, 1);
    after.spec.containers[0]!.env.push({ name: 'DB_FILE', value: '/new' });
    const patch = diffPatch(before, after);
    expect(patch).toEqual([
      { op: 'remove', path: '/spec/containers/0/env/500' },
      { op: 'add', path: '/spec/containers/0/env/2000', value: { name: 'DB_FILE', value: '/new' } },
    ]);
    const args = { spec: { args: Array.from({ length: 1000 }, (_, i) => `--flag-${i}`) } };
    const moved = { spec: { args: [...args.spec.args.slice(1), args.spec.args[0]!] } };
    expect(diffPatch(args, moved)).toEqual([{ op: 'replace', path: '/spec/args', value: moved.spec.args }]);
  });

  it('an init container put first before the pod’s own large ones: one add, nothing copied', () => {
    const pod = {
      spec: {
        initContainers: [container('migrate', settings), container('warm', settings)],
        containers: [container('app', settings)],
      },
    };
    const after = structuredClone(pod);
    after.spec.initContainers.unshift(container('sidekey-init', [{ name: 'SIDEKEY_SPEC', value: '{}' }]));
    const patch = diffPatch(pod, after);
    expect(patch).toEqual([
      { op: 'add', path: '/spec/initContainers/0', value: after.spec.initContainers[0] },
    ]);
  });

  it('named lists reordered and edited: item-level ops that apply, never the list', () => {
    const pod = { spec: { containers: ['a', 'b', 'c', 'd', 'e'].map((n) => container(n, settings)) } };
    const after = structuredClone(pod);
    const [a] = after.spec.containers.splice(0, 1);
    after.spec.containers.push(a!); // a moved last
    after.spec.containers.splice(2, 1); // d removed
    after.spec.containers.splice(1, 0, container('new', [])); // inserted in the middle
    after.spec.containers[0]!.image = 'app:2';
    const patch = diffPatch(pod, after);
    expect(wholeListOps(pod, patch)).toEqual([]);
    expect(JSON.stringify(patch).length).toBeLessThan(JSON.stringify(pod).length / 2);
    expect(jsonpatch.applyPatch(structuredClone(pod), patch as never).newDocument).toEqual(after);
  });

  it('the largest accepted pod: a patch of item-level ops, each app container edited in place', () => {
    const pod = largePod(LARGEST);
    const o = mutatePod({ operation: 'CREATE', namespace: 'shop', pod: pod as Pod }, classic());
    expect(o.kind).toBe('inject');
    if (o.kind !== 'inject') return;
    expect(wholeListOps(pod, o.patch)).toEqual([]);
    expect(jsonpatch.applyPatch(structuredClone(pod), o.patch as never).newDocument).toEqual(
      JSON.parse(JSON.stringify(o.pod)),
    );
  });
});

describe('limits (docs/webhook.md)', () => {
  it('the largest accepted pod is injected with a patch under the limit', () => {
    const o = run(LARGEST);
    expect(o.kind).toBe('inject');
    if (o.kind !== 'inject') return;
    const bytes = Buffer.byteLength(o.patchJson);
    console.log(
      `largest accepted pod: ${JSON.stringify(largePod(LARGEST)).length} bytes, patch ${bytes} bytes`,
    );
    expect(bytes).toBeLessThanOrEqual(LIMITS.patchBytes);
    expect(o.patch.length).toBeGreaterThan(LIMITS.envEntries);
  });

  it.each([
    ['containers', { ...LARGEST, initContainers: 1 }, 'spec.containers', '65 containers'],
    ['secrets', { ...LARGEST, secrets: 257 }, 'sidekey.io/secret-*', '257 secrets'],
    ['*_FILE entries', { ...LARGEST, envSecrets: 33 }, 'sidekey.io/env-*', '2112 *_FILE env entries'],
    ['patch bytes', { ...LARGEST, refPad: 1600 }, 'metadata.annotations', 'the patch would be'],
  ])('one size up in %s is denied with SK_ERR_POD_TOO_LARGE', (_what, shape, where, text) => {
    const o = run(shape);
    expect(o.kind).toBe('invalid');
    if (o.kind !== 'invalid') return;
    expect(o.error.code).toBe('SK_ERR_POD_TOO_LARGE');
    expect(o.error.where).toBe(where);
    expect(o.error.message).toContain(text);
  });

  it('a pod far above the limits is denied before the work: 200 containers × 500 env secrets', () => {
    const o = run({ containers: 200, secrets: 500, envSecrets: 500 });
    expect(o.kind === 'invalid' && o.error.code).toBe('SK_ERR_POD_TOO_LARGE');
  });
});

describe('the server: concurrency bound and its own errors in metrics', () => {
  let apps: Array<{ close(): Promise<unknown> }> = [];
  afterEach(async () => {
    await Promise.all(apps.map((a) => a.close()));
    apps = [];
  });
  function app(config: Record<string, unknown>, queueTimeoutMs = 5000) {
    const c = parseWebhookConfig(config);
    const a = buildApp(c, {
      ctx: createPipelineContext(c, { nativeSidecars: true, registry: testRegistry() }),
      queueTimeoutMs,
    });
    apps.push(a);
    return a;
  }
  const metric = async (a: ReturnType<typeof app>, name: string) =>
    (await a.inject({ method: 'GET', url: '/metrics' })).body.split('\n').filter((l) => l.startsWith(name));

  it('a review beyond maxConcurrentReviews waits, and is refused 503 SK_ERR_WEBHOOK_BUSY after the wait', async () => {
    const a = app({ maxConcurrentReviews: 1 }, 200);
    // A request whose body never ends holds the one turn.
    const body = new Readable({ read() {} });
    body.push('{"apiVersion":');
    const held = a.inject({
      method: 'POST',
      url: '/mutate',
      headers: { 'content-type': 'application/json' },
      payload: body,
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(await metric(a, 'sidekey_webhook_reviews_in_flight')).toEqual([
      'sidekey_webhook_reviews_in_flight 1',
    ]);
    const r = await a.inject({
      method: 'POST',
      url: '/mutate',
      payload: admissionReview(largePod({ containers: 1, secrets: 1, envSecrets: 0 })),
    });
    expect(r.statusCode).toBe(503);
    expect(r.json()).toMatchObject({ code: 'SK_ERR_WEBHOOK_BUSY' });
    expect(await metric(a, 'sidekey_webhook_request_errors_total{status="503",reason="busy"}')).toEqual([
      'sidekey_webhook_request_errors_total{status="503",reason="busy"} 1',
    ]);
    // Once the held request ends, the turn is free again.
    body.push('"x"}');
    body.push(null);
    expect((await held).statusCode).toBe(400);
    const ok = await a.inject({
      method: 'POST',
      url: '/mutate',
      payload: admissionReview(largePod({ containers: 1, secrets: 1, envSecrets: 0 })),
    });
    expect(ok.statusCode).toBe(200);
    expect(await metric(a, 'sidekey_webhook_reviews_in_flight')).toEqual([
      'sidekey_webhook_reviews_in_flight 0',
    ]);
  });

  it('a client that goes away while waiting does not keep a turn (real sockets)', async () => {
    const a = app({ maxConcurrentReviews: 1 }, 5000);
    await a.listen({ port: 0, host: '127.0.0.1' });
    const { port } = a.server.address() as AddressInfo;
    const open = (body?: string) => {
      const req = http.request({
        host: '127.0.0.1',
        port,
        path: '/mutate',
        method: 'POST',
        headers: { 'content-type': 'application/json' },
      });
      req.on('error', () => {});
      const answer = new Promise<number>((resolve) =>
        req.on('response', (r) => {
          r.resume();
          resolve(r.statusCode ?? 0);
        }),
      );
      if (body !== undefined) req.end(body);
      return { req, answer };
    };
    const inFlight = async () => (await metric(a, 'sidekey_webhook_reviews_in_flight'))[0];
    const holder = open(); // headers sent, body never ends: holds the one turn
    holder.req.write('{"apiVersion":');
    await waitUntil(async () => (await inFlight()) === 'sidekey_webhook_reviews_in_flight 1');
    const leaver = open(
      JSON.stringify(admissionReview(largePod({ containers: 1, secrets: 1, envSecrets: 0 }))),
    );
    await new Promise((r) => setTimeout(r, 100));
    leaver.req.destroy(); // gone while waiting for a turn
    holder.req.end('"x"}');
    expect(await holder.answer).toBe(400);
    const next = open(
      JSON.stringify(admissionReview(largePod({ containers: 1, secrets: 1, envSecrets: 0 }))),
    );
    expect(await next.answer).toBe(200);
    await waitUntil(async () => (await inFlight()) === 'sidekey_webhook_reviews_in_flight 0');
  });

  it("fastify's own 400, 413 and 415 answers are counted", async () => {
    const a = app({});
    const bad = await a.inject({
      method: 'POST',
      url: '/mutate',
      headers: { 'content-type': 'application/json' },
      payload: '{"no',
    });
    expect(bad.statusCode).toBe(400);
    const big = await a.inject({
      method: 'POST',
      url: '/mutate',
      headers: { 'content-type': 'application/json' },
      payload: `"${'x'.repeat(5 * 1024 * 1024)}"`,
    });
    expect(big.statusCode).toBe(413);
    const type = await a.inject({
      method: 'POST',
      url: '/mutate',
      headers: { 'content-type': 'application/xml' },
      payload: 'hi',
    });
    expect(type.statusCode).toBe(415);
    const notReview = await a.inject({ method: 'POST', url: '/mutate', payload: { kind: 'Pod' } });
    expect(notReview.statusCode).toBe(400);
    expect((await metric(a, 'sidekey_webhook_request_errors_total{')).sort()).toEqual([
      'sidekey_webhook_request_errors_total{status="400",reason="bad-json"} 1',
      'sidekey_webhook_request_errors_total{status="400",reason="not-a-review"} 1',
      'sidekey_webhook_request_errors_total{status="413",reason="body-too-large"} 1',
      'sidekey_webhook_request_errors_total{status="415",reason="bad-content-type"} 1',
    ]);
  });
});

async function waitUntil(ok: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 10));
  }
}
