import { describe, expect, it } from 'vitest';
import { explainObject, selectorMatches, sidekeyWebhook } from '../../../webhook/explain.js';
import { testContext } from './helpers.js';

describe('selectorMatches', () => {
  const labels = { app: 'shop', tier: 'web' };
  it('matchLabels and every matchExpressions operator', () => {
    expect(selectorMatches(undefined, labels)).toBe(true);
    expect(selectorMatches({ matchLabels: { app: 'shop' } }, labels)).toBe(true);
    expect(selectorMatches({ matchLabels: { app: 'other' } }, labels)).toBe(false);
    const expr = (operator: string, key: string, values?: string[]) =>
      selectorMatches({ matchExpressions: [{ key, operator, values }] }, labels);
    expect(expr('In', 'tier', ['web', 'api'])).toBe(true);
    expect(expr('In', 'tier', ['api'])).toBe(false);
    expect(expr('In', 'missing', ['x'])).toBe(false);
    expect(expr('NotIn', 'tier', ['api'])).toBe(true);
    expect(expr('NotIn', 'tier', ['web'])).toBe(false);
    expect(expr('NotIn', 'missing', ['x'])).toBe(true);
    expect(expr('Exists', 'app')).toBe(true);
    expect(expr('Exists', 'missing')).toBe(false);
    expect(expr('DoesNotExist', 'missing')).toBe(true);
    expect(expr('DoesNotExist', 'app')).toBe(false);
    expect(expr('Gt', 'app', ['1'])).toBe(false);
  });
});

describe('explainObject', () => {
  const mwc = {
    kind: 'MutatingWebhookConfiguration',
    webhooks: [
      { name: 'other.example.com' },
      {
        name: 'inject.sidekey.io',
        matchConditions: [{ name: 'broken', expression: 'object.metadata.nope.deeper == 1' }],
      },
    ],
  };

  it('picks the inject.sidekey.io webhook, and says so when a condition cannot be evaluated', () => {
    const w = sidekeyWebhook(mwc);
    expect(w?.name).toBe('inject.sidekey.io');
    expect(sidekeyWebhook({ kind: 'Service' })).toBeUndefined();
    const e = explainObject(
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: 'p',
          namespace: 'shop',
          annotations: { 'sidekey.io/inject': 'true', 'sidekey.io/secret-db': 'k8s:db#password' },
        },
        spec: { containers: [{ name: 'app' }] },
      },
      { ctx: testContext(), namespaces: new Map(), webhook: w, defaultNamespace: undefined },
    )!;
    expect(e.injected).toBe(true);
    expect(e.notes.join('\n')).toMatch(/matchCondition broken: cannot be evaluated here/);
    expect(e.notes.join('\n')).toContain('namespace shop: its labels are not known');
    expect(e.identity).toEqual([
      `k8s: the API server as service account "default" (token with the API server's default audience)`,
    ]);
  });

  it('kinds without pods are not explained', () => {
    expect(
      explainObject(
        { kind: 'ConfigMap', metadata: { name: 'x' } },
        {
          ctx: testContext(),
          namespaces: new Map(),
          webhook: undefined,
          defaultNamespace: 'shop',
        },
      ),
    ).toBeUndefined();
  });
});
