import { describe, expect, it } from 'vitest';
import type { Pod } from '../../../webhook/k8s.js';
import { mutatePod } from '../../../webhook/pipeline.js';
import { testContext } from './helpers.js';

/**
 * A denial quotes nothing a user may have pasted a secret into (issue 14): the value below stands for
 * a password typed into the wrong place. Each case was denied quoting it before.
 */
const PASTED = 'Pa55w0rd-pasted';

describe('denials never quote a pasted value', () => {
  it.each([
    ['a provider name', { 'sidekey.io/secret-db': `${PASTED.toLowerCase()}:x` }, 'SK_ERR_PROVIDER_UNKNOWN'],
    [
      'vault ?version=',
      { 'sidekey.io/secret-db': `vault:secret/data/db?version=${PASTED}` },
      'SK_ERR_REF_SYNTAX',
    ],
    [
      'a vault option key',
      { 'sidekey.io/secret-db': `vault:secret/data/db?${PASTED}=1` },
      'SK_ERR_REF_SYNTAX',
    ],
    ['aws ?version=', { 'sidekey.io/secret-db': `aws:db?version=${PASTED}` }, 'SK_ERR_REF_SYNTAX'],
    ['aws ?stage=', { 'sidekey.io/secret-db': `aws:db?stage=${PASTED}!` }, 'SK_ERR_REF_SYNTAX'],
    ['an aws option key', { 'sidekey.io/secret-db': `aws:db?${PASTED}=1` }, 'SK_ERR_REF_SYNTAX'],
    ['file ?parse=', { 'sidekey.io/secret-db': `file:/x?parse=${PASTED}` }, 'SK_ERR_REF_SYNTAX'],
    ['a file option key', { 'sidekey.io/secret-db': `file:/x?${PASTED}=1` }, 'SK_ERR_REF_SYNTAX'],
    ['a k8s option key', { 'sidekey.io/secret-db': `k8s:db?${PASTED}=1` }, 'SK_ERR_REF_SYNTAX'],
    [
      'a gcp option key',
      { 'sidekey.io/secret-db': `gcp:projects/p/secrets/db?${PASTED}=1` },
      'SK_ERR_REF_SYNTAX',
    ],
    ['an azure option key', { 'sidekey.io/secret-db': `azure:myvault/db?${PASTED}=1` }, 'SK_ERR_REF_SYNTAX'],
    [
      'a repeated option key',
      { 'sidekey.io/secret-db': `vault:a?${PASTED}=1&${PASTED}=2` },
      'SK_ERR_REF_SYNTAX',
    ],
    [
      'vault-addr with user:password@ and no scheme',
      {
        'sidekey.io/secret-db': 'vault:secret/data/db',
        'sidekey.io/vault-addr': `//admin:${PASTED}@vault:8200`,
      },
      'SK_ERR_ANNOTATION_INVALID',
    ],
    [
      'vault-addr with user:password@',
      {
        'sidekey.io/secret-db': 'vault:secret/data/db',
        'sidekey.io/vault-addr': `https://admin:${PASTED}@vault`,
      },
      'SK_ERR_ANNOTATION_INVALID',
    ],
    [
      'a setting that is not one of its values',
      { 'sidekey.io/secret-db': 'vault:secret/data/db', 'sidekey.io/vault-auth-method': PASTED },
      'SK_ERR_ANNOTATION_INVALID',
    ],
  ])('%s', (_what, annotations, code) => {
    const pod = {
      metadata: { annotations: { 'sidekey.io/inject': 'true', ...annotations } },
      spec: { containers: [{ name: 'app', image: 'app:1' }] },
    } as Pod;
    const o = mutatePod({ operation: 'CREATE', namespace: 'shop', pod }, testContext());
    expect(o.kind).toBe('invalid');
    if (o.kind !== 'invalid') return;
    expect(o.error.code).toBe(code);
    expect(o.error.message.toLowerCase()).not.toContain(PASTED.toLowerCase());
    expect(o.error.where).toMatch(/^sidekey\.io\//);
  });
});
