import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SkError } from '../../../src/errors.js';
import { silentLogger } from '../../../src/log.js';
import { k8sProvider } from '../../../src/providers/k8s/index.js';
import { parseRef } from '../../../src/refs.js';

const CANARY = 'SKCANARY-7f3c9e2a-do-not-print';

/** A kubeconfig whose YAML is broken on the line after a token (js-yaml quotes nearby lines). */
const BROKEN_KUBECONFIG = `apiVersion: v1
kind: Config
clusters:
- cluster:
    server: https://127.0.0.1:6443
  name: c
users:
- name: u
  user:
    token: ${CANARY}
   bad: [indent
contexts: []
`;

let tmp: string;
const saved = { KUBECONFIG: process.env.KUBECONFIG, HOST: process.env.KUBERNETES_SERVICE_HOST };

beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'sk-k8s-unit-'));
  await fs.writeFile(path.join(tmp, 'config'), BROKEN_KUBECONFIG);
  process.env.KUBECONFIG = path.join(tmp, 'config');
  delete process.env.KUBERNETES_SERVICE_HOST;
});
afterEach(async () => {
  if (saved.KUBECONFIG === undefined) delete process.env.KUBECONFIG;
  else process.env.KUBECONFIG = saved.KUBECONFIG;
  if (saved.HOST !== undefined) process.env.KUBERNETES_SERVICE_HOST = saved.HOST;
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('k8s provider connection errors', () => {
  it('a kubeconfig that does not parse gives SK_ERR_BACKEND_CONFIG without quoting the file', async () => {
    const p = k8sProvider.create({});
    const ctx = { signal: new AbortController().signal, log: silentLogger };
    const err = await p.fetch(parseRef('k8s:db#password'), ctx).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SkError);
    expect(err).toMatchObject({ code: 'SK_ERR_BACKEND_CONFIG' });
    const text = `${String(err)} ${JSON.stringify(err)}`;
    expect(text).toContain('bad indentation');
    // js-yaml cuts the quoted line, so look for any part of the token.
    expect(text).not.toContain('SKCANARY');
    expect(text).not.toContain('token:');
  });
});
