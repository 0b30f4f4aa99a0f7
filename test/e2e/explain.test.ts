import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { createNamespace, kube, pod, rawRequest, uniqueName } from './harness/kube.js';
import { installSidekey, type SidekeyInstall } from './harness/sidekey.js';

// `sidekey explain <kind>/<name>` against a real kube-apiserver with sidekey installed from the chart:
// the live object, its namespace and the cluster's MutatingWebhookConfiguration are read with the
// kubeconfig; admission warnings for an opt-in value that is not "true" come back from the API server.

describe('sidekey explain, live', () => {
  const k = kube();
  let sk: SidekeyInstall;
  let ns: string;

  beforeAll(async () => {
    sk = await installSidekey(k, { release: 'sidekey' });
    ns = await createNamespace(k, uniqueName('explain'));
  });
  afterAll(async () => {
    await sk?.uninstall();
  });

  const explain = (target: string) =>
    runCli(['explain', target, '-n', ns], { env: { KUBECONFIG: k.info.kubeconfig } });

  it('an injected pod: injected, with what its agent fetches', async () => {
    await k.core.createNamespacedPod({
      namespace: ns,
      body: pod('ok', { 'sidekey.io/inject': 'true', 'sidekey.io/secret-db': 'k8s:app-db#password' }),
    });
    const r = await explain('pod/ok');
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Pod/ok \\(namespace ${ns}\\): injected, native sidecar$`, 'm'));
    expect(r.stdout).toContain('db: k8s: (sidekey.io/secret-db) → /run/sidekey/db');
    expect(r.stdout).toContain('note: injected when it was created');
  });

  it('"yes" is refused with an admission warning, and explain says why and that the pod must be recreated', async () => {
    const body = pod('typo', { 'sidekey.io/inject': 'yes', 'sidekey.io/secret-db': 'k8s:app-db#password' });
    const created = await rawRequest(k, 'POST', `/api/v1/namespaces/${ns}/pods`, body);
    expect(created.status).toBe(201);
    expect(created.warnings.join('\n')).toContain(
      // The Warning header escapes the quotes.
      'sidekey: not injected: sidekey.io/inject is set, but not to',
    );
    const r = await explain('pod/typo');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('why: UPDATE: this pod exists already');
    expect(r.stdout).toContain('why: sidekey.io/inject is set, but not to "true"');
  });

  it('a Deployment with its annotations on its own metadata', async () => {
    await k.objects.create({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name: 'outside',
        namespace: ns,
        annotations: { 'sidekey.io/inject': 'true', 'sidekey.io/secret-db': 'k8s:app-db#password' },
      },
      spec: {
        selector: { matchLabels: { app: 'outside' } },
        template: {
          metadata: { labels: { app: 'outside' } },
          spec: { containers: [{ name: 'app', image: 'registry.example/app:1.0' }] },
        },
      },
    });
    const r = await explain('deploy/outside');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /why: annotation placement: sidekey\.io\/inject, sidekey\.io\/secret-db are on the Deployment's own metadata/,
    );
    expect(r.stdout).toContain('why: matchCondition sidekey-opted-in is false');
  });

  it('a missing object: SK_ERR_SOURCE_NOT_FOUND naming it, exit 1', async () => {
    const r = await explain('job/nope');
    expect(r.stderr).toMatch(new RegExp(`SK_ERR_SOURCE_NOT_FOUND: get Job ${ns}/nope: HTTP 404`));
  });
});
