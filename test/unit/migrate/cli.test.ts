import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runScan } from '../../../src/migrate/cli.js';

let tmp: string;
beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'sk-scan-cli-'));
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const POD = `apiVersion: v1
kind: Pod
metadata: { name: app, namespace: shop }
spec:
  containers:
    - name: app
      image: app
      env:
        - name: DB_PASSWORD
          valueFrom: { secretKeyRef: { name: db, key: password } }
`;

describe('sidekey scan -f <dir>', () => {
  it('skips a file that cannot be read (a dangling symlink) with an SK_ERR_MANIFEST_INVALID warning', async () => {
    await fs.writeFile(path.join(tmp, 'a.yaml'), POD);
    await fs.symlink(path.join(tmp, 'gone.yaml'), path.join(tmp, 'b.yaml'));
    let stdout = '';
    let stderr = '';
    const code = await runScan(
      { file: tmp, output: 'json' },
      {
        stdout: (s) => {
          stdout += s;
        },
        stderr: (s) => {
          stderr += s;
        },
        readStdin: () => '',
      },
    );
    expect(code).toBe(0);
    expect(stderr).toBe(
      `warn: SK_ERR_MANIFEST_INVALID: ${path.join(tmp, 'b.yaml')}: cannot read it (ENOENT); skipped\n`,
    );
    expect(JSON.parse(stdout).summary.workloadsScanned).toBe(1);
  });
});
