import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listClusterWorkloads } from '../../../src/migrate/cluster.js';

/** A kubeconfig whose YAML is broken on the line after a token (js-yaml quotes nearby lines). */
const BROKEN_KUBECONFIG = `apiVersion: v1
kind: Config
users:
- name: u
  user:
    token: SKCANARY-7f3c9e2a-do-not-print
   bad: [indent
`;

let tmp: string;
const saved = process.env.KUBECONFIG;

beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'sk-cluster-unit-'));
  await fs.writeFile(path.join(tmp, 'config'), BROKEN_KUBECONFIG);
  process.env.KUBECONFIG = path.join(tmp, 'config');
});
afterEach(async () => {
  if (saved === undefined) delete process.env.KUBECONFIG;
  else process.env.KUBECONFIG = saved;
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('sidekey scan --cluster connection errors', () => {
  it('a kubeconfig that does not parse is named without quoting its tokens', async () => {
    const err = await listClusterWorkloads({}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'SK_ERR_BACKEND_CONFIG' });
    const text = String(err);
    expect(text).toContain('kubeconfig: bad indentation');
    expect(text).not.toContain('SKCANARY');
  });
});
