import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { AGENT_V8_FLAGS } from '../../../sidecar/v8-flags.js';

// The agent's backends use Node's fetch, which compiles WebAssembly (undici's HTTP parser). A V8 flag
// that implies jitless makes that abort the process; this runs a real fetch under the agent's flags.
const PROBE = `
const v8 = require('node:v8');
const http = require('node:http');
for (const f of JSON.parse(process.argv[1])) v8.setFlagsFromString(f);
const server = http.createServer((req, res) => res.end('ok')).listen(0, '127.0.0.1', async () => {
  const r = await fetch('http://127.0.0.1:' + server.address().port + '/');
  process.stdout.write(await r.text());
  server.close();
});
`;

describe('agent V8 flags', () => {
  it('keep fetch working (no jitless mode)', () => {
    const r = spawnSync(process.execPath, ['-e', PROBE, JSON.stringify(AGENT_V8_FLAGS)], {
      encoding: 'utf8',
      timeout: 15_000,
    });
    expect(r.signal).toBeNull();
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('ok');
  });

  it('the probe does detect a flag that breaks fetch', () => {
    // --jitless breaks it on every supported Node (--lite-mode, which implied it, no longer does on 24).
    const r = spawnSync(process.execPath, ['-e', PROBE, JSON.stringify(['--jitless'])], {
      encoding: 'utf8',
      timeout: 15_000,
    });
    expect(r.status === 0 && r.stdout === 'ok').toBe(false);
  });
});
