import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/log.js';
import { parseWebhookConfig } from '../../../webhook/config.js';
import { NativeSidecarWatch } from '../../../webhook/kube-version.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { lines, log: createLogger({ name: 't', level: 'debug', destination }) };
}

describe('NativeSidecarWatch', () => {
  it('follows the API server version: unknown → native (said once), 1.28 → classic, upgrade → native', async () => {
    const answers: Array<string | undefined> = [undefined, undefined, 'v1.28.9', 'v1.28.9', 'v1.30.2'];
    let reads = 0;
    const { lines, log } = capture();
    const changes: boolean[] = [];
    const w = new NativeSidecarWatch(
      parseWebhookConfig({}),
      async () => answers[reads++],
      log,
      (n) => changes.push(n),
    );
    expect(w.discovers).toBe(true);
    for (let i = 0; i < answers.length; i++) await w.refresh();
    expect(reads).toBe(5);
    expect(changes).toEqual([false, true]);
    expect(w.native).toBe(true);
    expect(w.version).toBe('v1.30.2');
    const unknown = lines.filter((l) => /version unknown/.test(String(l.msg)));
    expect(unknown).toHaveLength(1);
    expect(lines.filter((l) => l.msg === 'injection mode for auto changed')).toHaveLength(2);
  });

  it('a configured version or an explicit setting is never read from the server', async () => {
    let reads = 0;
    const read = async () => {
      reads++;
      return 'v1.20.0';
    };
    const { log } = capture();
    const a = new NativeSidecarWatch(parseWebhookConfig({ kubernetesVersion: '1.28' }), read, log, () => {});
    await a.refresh();
    expect(a.native).toBe(false);
    const b = new NativeSidecarWatch(parseWebhookConfig({ nativeSidecars: true }), read, log, () => {});
    await b.refresh();
    b.start(1);
    await new Promise((r) => setTimeout(r, 20));
    b.stop();
    expect(b.native).toBe(true);
    expect(reads).toBe(0);
  });

  it('re-reads on its interval', async () => {
    let reads = 0;
    const { log } = capture();
    const w = new NativeSidecarWatch(
      parseWebhookConfig({}),
      async () => {
        reads++;
        return 'v1.31.0';
      },
      log,
      () => {},
    );
    w.start(5);
    await expect.poll(() => reads, { timeout: 2000 }).toBeGreaterThanOrEqual(2);
    w.stop();
  });
});
