import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SkError } from '../../src/errors.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { createNotifier, listProcesses, type NotifierOptions, pickTarget } from '../../src/notify.js';
import { type OnChange, parseOnChange } from '../../src/on-change.js';

let tmp: string;
const children: ChildProcess[] = [];
const servers: http.Server[] = [];

beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'sk-notify-'));
});
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  await fs.rm(tmp, { recursive: true, force: true });
});

function notifier(onChange: OnChange, extra: Partial<NotifierOptions> = {}) {
  const errors: SkError[] = [];
  const n = createNotifier(onChange, {
    debounceMs: 30,
    log: silentLogger,
    onError: (e) => void errors.push(e),
    ...extra,
  });
  return { n, errors };
}

/** A real process that counts the signals it gets and prints one line per signal. */
async function signalCatcher(title?: string): Promise<{ child: ChildProcess; lines: string[] }> {
  const script = `
    ${title ? `process.title = ${JSON.stringify(title)};` : ''}
    for (const s of ['SIGHUP', 'SIGUSR1']) process.on(s, () => process.stdout.write(s + '\\n'));
    process.stdout.write('ready\\n');
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const lines: string[] = [];
  let buf = '';
  child.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
  await waitFor(() => lines.includes('ready'));
  return { child, lines };
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function server(
  handler: (body: string, res: http.ServerResponse) => void,
): Promise<{ url: string; bodies: string[] }> {
  const bodies: string[] = [];
  const s = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      bodies.push(body);
      handler(body, res);
    });
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/-/reload?token=abc`, bodies };
}

describe('createNotifier', () => {
  it('debounces N changes into one notification carrying every file', async () => {
    const srv = await server((_b, res) => res.end('ok'));
    const { n, errors } = notifier(parseOnChange(`http:${srv.url}`, 'test'), { debounceMs: 80 });
    for (let i = 0; i < 20; i++) {
      n.changed([`f${i % 4}`]);
      await new Promise((r) => setTimeout(r, 5));
    }
    await waitFor(() => srv.bodies.length > 0);
    await new Promise((r) => setTimeout(r, 200));
    expect(srv.bodies).toHaveLength(1);
    expect(JSON.parse(srv.bodies[0]!).files).toEqual(['f0', 'f1', 'f2', 'f3']);
    expect(errors).toEqual([]);
    await n.close();
  });

  it('delivers a signal to the pid given (the child of sidekey run)', async () => {
    const { child, lines } = await signalCatcher();
    const { n, errors } = notifier(parseOnChange('signal:HUP', 'test'), { pid: () => child.pid });
    n.changed(['a', 'b']);
    await waitFor(() => lines.includes('SIGHUP'));
    expect(errors).toEqual([]);
    await n.close();
  });

  it('delivers a signal to a process found by name in /proc', async () => {
    const name = `skt-${randomBytes(4).toString('hex')}`;
    const { lines } = await signalCatcher(name);
    const { n, errors } = notifier(parseOnChange(`signal:USR1@${name}`, 'test'));
    n.changed(['a']);
    await n.flush();
    await waitFor(() => lines.includes('SIGUSR1'));
    expect(errors).toEqual([]);
    // a name nobody has is an SK_ERR_NOTIFY, not a crash
    const missing = notifier(parseOnChange('signal:HUP@no-such-proc-x1', 'test'));
    missing.n.changed(['a']);
    await missing.n.flush();
    expect(missing.errors.map((e) => e.code)).toEqual(['SK_ERR_NOTIFY']);
    expect(missing.errors[0]!.message).toContain('no-such-proc-x1');
  });

  it('without a name or pid, signals the lowest pid that is neither pause nor sidekey (shared pid namespace)', async () => {
    const { child, lines } = await signalCatcher();
    // A /proc as a pod with shareProcessNamespace shows it: pause is pid 1.
    const proc = path.join(tmp, 'proc');
    const fake = async (pid: number, comm: string) => {
      await fs.mkdir(path.join(proc, String(pid)), { recursive: true });
      await fs.writeFile(path.join(proc, String(pid), 'comm'), `${comm}\n`);
      await fs.writeFile(path.join(proc, String(pid), 'cmdline'), `/usr/bin/${comm}\0--flag\0`);
    };
    await fake(1, 'pause');
    await fake(process.pid, 'node');
    await fake(child.pid!, 'app');
    await fake(4_999_999, 'other'); // above pid_max: could never be signalled by mistake
    const { n, errors } = notifier(parseOnChange('signal:HUP', 'test'), { procRoot: proc });
    n.changed(['a']);
    await n.flush();
    await waitFor(() => lines.includes('SIGHUP'));
    expect(errors).toEqual([]);
  });

  it('pickTarget: the rules, including refusing to guess outside a shared pid namespace', async () => {
    const procs = [
      { pid: 1, comm: 'pause', argv0: '/pause' },
      { pid: 7, comm: 'sidekey', argv0: 'node' },
      { pid: 12, comm: 'python3', argv0: '/usr/bin/python3' },
      { pid: 30, comm: 'nginx', argv0: 'nginx: master process' },
      { pid: 31, comm: 'nginx', argv0: 'nginx: worker process' },
      { pid: 40, comm: 'a-very-long-pro', argv0: '/opt/bin/a-very-long-process-name' },
    ];
    expect(pickTarget(procs, undefined, 7)).toEqual({ pid: 12 });
    expect(pickTarget(procs, 'nginx', 7)).toEqual({ pid: 30 });
    expect(pickTarget(procs, 'a-very-long-process-name', 7)).toEqual({ pid: 40 });
    expect(pickTarget(procs, 'sidekey', 7)).toHaveProperty('reason');
    const noPause = [{ pid: 1, comm: 'systemd', argv0: '/sbin/init' }, ...procs.slice(1)];
    expect(pickTarget(noPause, undefined, 7)).toEqual({
      reason: expect.stringContaining('shareProcessNamespace'),
    });
    // listProcesses reads a real /proc too, and finds us
    const real = await listProcesses();
    expect(real.some((p) => p.pid === process.pid)).toBe(true);
  });

  it('POSTs to an http URL, retrying a 503', async () => {
    let calls = 0;
    const srv = await server((_b, res) => {
      calls++;
      res.statusCode = calls === 1 ? 503 : 200;
      res.end();
    });
    const { n, errors } = notifier(parseOnChange(`http:${srv.url}`, 'test'));
    n.changed(['db-password']);
    await n.flush();
    expect(calls).toBe(2);
    expect(JSON.parse(srv.bodies[1]!)).toMatchObject({ files: ['db-password'], at: expect.any(String) });
    expect(errors).toEqual([]);
  });

  it('sends user:password from the URL as basic auth, and never shows them', async () => {
    const auth: string[] = [];
    const s = http.createServer((req, res) => {
      auth.push(req.headers.authorization ?? '');
      res.statusCode = 500;
      res.end();
    });
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    const { n, errors } = notifier(
      parseOnChange(`http:http://app:s3cr%40t@127.0.0.1:${port}/reload`, 'test'),
      {
        retries: 0,
      },
    );
    n.changed(['a']);
    await n.flush();
    expect(auth).toEqual([`Basic ${Buffer.from('app:s3cr@t').toString('base64')}`]);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toBe(`http:http://127.0.0.1:${port}/reload: POST failed: HTTP 500`);
  });

  it('a password with a stray % is sent as typed, and never shown', async () => {
    const canary = 'SKCANARY-7f3c9e2a-do-not-print';
    const auth: string[] = [];
    const s = http.createServer((req, res) => {
      auth.push(req.headers.authorization ?? '');
      res.statusCode = 500;
      res.end();
    });
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    let logs = '';
    const sink = new PassThrough();
    sink.on('data', (c: Buffer) => {
      logs += c.toString();
    });
    const { n, errors } = notifier(
      parseOnChange(`http:http://app:${canary}%ZZ@127.0.0.1:${port}/reload`, 'test'),
      {
        retries: 0,
        log: createLogger({ destination: sink, level: 'debug' }),
      },
    );
    n.changed(['a']);
    await n.flush();
    // booleans: a failing assertion must not print the canary
    expect(auth[0] === `Basic ${Buffer.from(`app:${canary}%ZZ`).toString('base64')}`).toBe(true);
    expect(errors.map((e) => e.message)).toEqual([
      `http:http://127.0.0.1:${port}/reload: POST failed: HTTP 500`,
    ]);
    expect(logs.includes('SKCANARY')).toBe(false);
  });

  it('an http failure is an SK_ERR_NOTIFY without the query string, and is not retried on 404', async () => {
    const srv = await server((_b, res) => {
      res.statusCode = 404;
      res.end();
    });
    const { n, errors } = notifier(parseOnChange(`http:${srv.url}`, 'test'));
    n.changed(['a']);
    await n.flush();
    expect(srv.bodies).toHaveLength(1);
    expect(errors.map((e) => e.code)).toEqual(['SK_ERR_NOTIFY']);
    expect(errors[0]!.message).toContain('HTTP 404');
    expect(errors[0]!.message).not.toContain('token=abc');
    // a refused connection, after the retries
    const closed = notifier({ type: 'http', url: 'http://127.0.0.1:9/x' }, { retries: 1, timeoutMs: 500 });
    closed.n.changed(['a']);
    await closed.n.flush();
    expect(closed.errors.map((e) => e.code)).toEqual(['SK_ERR_NOTIFY']);
  });

  it('close cancels an HTTP notification in flight instead of waiting out its timeouts and retries', async () => {
    const hung: http.ServerResponse[] = [];
    const s = http.createServer((_req, res) => void hung.push(res)); // never answers
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    const { n, errors } = notifier(
      { type: 'http', url: `http://127.0.0.1:${port}/reload` },
      { debounceMs: 1 },
    );
    n.changed(['a']);
    await waitFor(() => hung.length > 0);
    const outcome = await Promise.race([
      n.close().then(() => 'closed'),
      new Promise((r) => setTimeout(() => r('still waiting after 3 s'), 3000).unref()),
    ]);
    for (const res of hung) res.destroy();
    expect(outcome).toBe('closed');
    expect(hung).toHaveLength(1); // no retry after close
    expect(errors.map((e) => e.message)).toEqual([
      `http:http://127.0.0.1:${port}/reload: POST failed: cancelled, sidekey is stopping`,
    ]);
  });

  it('runs an exec command without a shell, with the changed files in its environment', async () => {
    const out = path.join(tmp, 'out.txt');
    const script = path.join(tmp, 'hook.mjs');
    await fs.writeFile(
      script,
      `import fs from 'node:fs'; fs.writeFileSync(process.argv[2], JSON.stringify({ files: process.env.SIDEKEY_CHANGED_FILES, args: process.argv.slice(3) }));`,
    );
    const { n, errors } = notifier({
      type: 'exec',
      command: [process.execPath, script, out, '$HOME', ';ls'],
    });
    n.changed(['b', 'a']);
    await n.flush();
    expect(JSON.parse(await fs.readFile(out, 'utf8'))).toEqual({ files: 'a\nb', args: ['$HOME', ';ls'] });
    expect(errors).toEqual([]);
  });

  it('exec failures (exit code, missing command, timeout) are SK_ERR_NOTIFY', async () => {
    const fail = notifier({ type: 'exec', command: [process.execPath, '-e', 'process.exit(3)'] });
    fail.n.changed(['a']);
    await fail.n.flush();
    expect(fail.errors[0]?.message).toMatch(/exited with code 3/);
    const missing = notifier({ type: 'exec', command: [path.join(tmp, 'nope')] });
    missing.n.changed(['a']);
    await missing.n.flush();
    expect(missing.errors[0]?.message).toMatch(/cannot start: ENOENT/);
    const slow = notifier(
      { type: 'exec', command: [process.execPath, '-e', 'setTimeout(() => {}, 10000)'] },
      { timeoutMs: 200 },
    );
    slow.n.changed(['a']);
    await slow.n.flush();
    expect(slow.errors[0]?.message).toMatch(/timed out after 200 ms/);
    expect([fail, missing, slow].flatMap((x) => x.errors.map((e) => e.code))).toEqual([
      'SK_ERR_NOTIFY',
      'SK_ERR_NOTIFY',
      'SK_ERR_NOTIFY',
    ]);
  });

  it('changes during a running action are collected for one more run', async () => {
    let release: () => void = () => {};
    const srv = await server((_b, res) => {
      if (srv.bodies.length === 1) release = () => res.end();
      else res.end();
    });
    const { n } = notifier(parseOnChange(`http:${srv.url}`, 'test'), { debounceMs: 10 });
    n.changed(['a']);
    await waitFor(() => srv.bodies.length === 1);
    n.changed(['b']);
    n.changed(['c']);
    await new Promise((r) => setTimeout(r, 50));
    expect(srv.bodies).toHaveLength(1);
    release();
    await waitFor(() => srv.bodies.length === 2);
    expect(JSON.parse(srv.bodies[1]!).files).toEqual(['b', 'c']);
    await n.close();
  });

  it('close drops pending changes; none does nothing', async () => {
    const srv = await server((_b, res) => res.end());
    const { n } = notifier(parseOnChange(`http:${srv.url}`, 'test'), { debounceMs: 50 });
    n.changed(['a']);
    await n.close();
    await new Promise((r) => setTimeout(r, 120));
    expect(srv.bodies).toEqual([]);
    const none = notifier({ type: 'none' });
    none.n.changed(['a']);
    await none.n.flush();
    expect(none.errors).toEqual([]);
  });
});
