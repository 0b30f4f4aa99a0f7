import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import jsonpatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import type { WebhookConfigInput } from '../../../webhook/config.js';
import type { Pod } from '../../../webhook/k8s.js';
import { mutatePod } from '../../../webhook/pipeline.js';
import { testContext } from './helpers.js';

/**
 * Golden tests: each `golden/<case>.yaml` holds a pod (and optionally webhook config, cluster
 * capabilities, namespace, operation); `golden/<case>.expected.yaml` holds the outcome, the patch and
 * the resulting pod. The patch is applied with a second, independent JSON-patch library
 * (fast-json-patch) and must yield exactly the expected pod. `UPDATE_GOLDEN=1` rewrites the expected
 * files (review the diff before committing).
 */
const dir = path.join(import.meta.dirname, 'golden');
const cases = readdirSync(dir)
  .filter((f) => f.endsWith('.yaml') && !f.endsWith('.expected.yaml'))
  .map((f) => f.slice(0, -'.yaml'.length))
  .sort();

interface CaseInput {
  description: string;
  config?: WebhookConfigInput;
  nativeSidecars?: boolean;
  namespace?: string;
  operation?: string;
  pod: Pod;
}

describe('golden pods', () => {
  it('has the representative cases', () => {
    for (const c of [
      'no-volumes',
      'existing-volumes',
      'existing-init-containers',
      'several-containers',
      'env-replacement',
      'security-context',
      'signal-mode',
      'init-only',
      'native-sidecar',
      'classic-sidecar',
      'job-classic-init-only',
      'job-exit-file',
      'job-native',
      'openshift',
      'no-uid-readable',
      'no-uid-explicit-mode',
      'skip-opt-in-value',
      'invalid-several',
    ]) {
      expect(cases).toContain(c);
    }
  });

  it.each(cases)('%s', (name) => {
    const input = YAML.parse(readFileSync(path.join(dir, `${name}.yaml`), 'utf8')) as CaseInput;
    const ctx = testContext(input.config, { nativeSidecars: input.nativeSidecars ?? true });
    const before = structuredClone(input.pod);
    const outcome = mutatePod(
      { operation: input.operation ?? 'CREATE', namespace: input.namespace ?? 'shop', pod: input.pod },
      ctx,
    );
    expect(input.pod, 'the pipeline must not mutate its input').toEqual(before);
    let actual: Record<string, unknown>;
    if (outcome.kind === 'inject') {
      const applied = jsonpatch.applyPatch(
        structuredClone(input.pod),
        jsonpatch.deepClone(outcome.patch),
        true,
        false,
      ).newDocument;
      expect(applied).toEqual(outcome.pod);
      const paths = outcome.patch.filter((o) => o.op === 'add').map((o) => o.path);
      for (const p of ['/spec/volumes', '/spec/initContainers', '/metadata/annotations']) {
        expect(paths.filter((x) => x === p).length, `two adds of ${p}`).toBeLessThanOrEqual(1);
      }
      // A literal secret the pod carried in env (the canary) is removed, never copied into the patch.
      expect(JSON.stringify(outcome.patch)).not.toContain('SKCANARY-7f3c9e2a-do-not-print');
      expect(JSON.stringify(applied)).not.toContain('SKCANARY-7f3c9e2a-do-not-print');
      actual = { outcome: 'inject', mode: outcome.mode, patch: outcome.patch, pod: applied };
      // Admission warnings are part of the answer (kubectl prints them); recorded when there are any.
      if (outcome.warnings.length > 0) actual = { ...actual, warnings: outcome.warnings };
    } else if (outcome.kind === 'skip') {
      actual = { outcome: 'skip', reason: outcome.reason };
    } else {
      actual = {
        outcome: 'invalid',
        code: outcome.error.code,
        where: outcome.error.where,
        message: outcome.error.message,
      };
    }
    const file = path.join(dir, `${name}.expected.yaml`);
    if (process.env.UPDATE_GOLDEN === '1') {
      writeFileSync(file, YAML.stringify(actual, { lineWidth: 0 }));
    }
    const expected = YAML.parse(readFileSync(file, 'utf8'));
    expect(actual).toEqual(expected);
  });
});
