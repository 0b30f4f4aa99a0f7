import { describe, expect, it } from 'vitest';
import type { Pod } from '../../../webhook/k8s.js';
import { mutatePod } from '../../../webhook/pipeline.js';
import { testContext } from './helpers.js';

/** A malformed pod is the manifest's mistake, named by field; never a crash quoting JavaScript. */
describe('pods of the wrong shape', () => {
  const ann = { 'sidekey.io/inject': 'true', 'sidekey.io/secret-db': 'file:/etc/app/db' };
  const run = (spec: unknown) =>
    mutatePod(
      { operation: 'CREATE', namespace: 'shop', pod: { metadata: { annotations: ann }, spec } as Pod },
      testContext(),
    );

  it.each([
    [{ containers: [null] }, 'spec.containers[0]'],
    [{ containers: [5] }, 'spec.containers[0]'],
    [{ containers: [{}] }, 'spec.containers[0].name'],
    [{ containers: [{ name: 'a' }], initContainers: [null] }, 'spec.initContainers[0]'],
    [{ containers: [{ name: 'a', env: [null] }] }, 'spec.containers[0].env[0]'],
    [{ containers: [{ name: 'a', env: 'A=1' }] }, 'spec.containers[0].env'],
    [
      { containers: [{ name: 'a', volumeMounts: [{ name: 'v' }] }] },
      'spec.containers[0].volumeMounts[0].mountPath',
    ],
    [{ containers: [{ name: 'a' }], volumes: [null] }, 'spec.volumes[0]'],
  ])('%j is denied with SK_ERR_MANIFEST_INVALID naming %s', (spec, where) => {
    const o = run(spec);
    expect(o.kind).toBe('invalid');
    if (o.kind !== 'invalid') return;
    expect(o.error.code).toBe('SK_ERR_MANIFEST_INVALID');
    expect(o.error.where).toBe(where);
    expect(o.error.message).not.toMatch(/Cannot read|undefined|null \(reading/);
  });
});
