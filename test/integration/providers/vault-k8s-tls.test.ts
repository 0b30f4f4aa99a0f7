import 'reflect-metadata';
import { generateKeyPairSync, webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectKey } from '../../../src/providers/select-key.ts';
import { VaultProvider } from '../../../src/providers/vault/index.ts';
import { parseRef } from '../../../src/refs.ts';
import { CANARY } from '../../helpers/cli.ts';
import { skErr } from '../../helpers/provider.ts';
import { type OpenBao, startOpenBao } from '../servers/openbao.ts';
import { jwtWith, testCtx } from './vault-fixture.ts';

const ctx = testCtx();
const fast = { retries: 1, minTimeoutMs: 20, maxTimeoutMs: 50 };

/**
 * Kubernetes auth: a real OpenBao whose kubernetes auth method reviews the pod's token through the
 * Kubernetes TokenReview API — served here by an emulator of that documented API
 * (POST /apis/authentication.k8s.io/v1/tokenreviews), since the integration tier has no API server.
 */
describe('vault kubernetes auth (real OpenBao, k8s TokenReview API emulator)', () => {
  let bao: OpenBao;
  let reviewer: http.Server;
  let dir: string;
  const reviews: Array<{ token: string; audiences: unknown }> = [];
  let authenticated = true;

  beforeAll(async () => {
    reviewer = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        const tr = JSON.parse(body) as { spec: { token: string; audiences?: string[] } };
        reviews.push({ token: tr.spec.token, audiences: tr.spec.audiences });
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenReview',
            status: authenticated
              ? {
                  authenticated: true,
                  audiences: tr.spec.audiences,
                  user: {
                    username: 'system:serviceaccount:shop:app',
                    uid: 'uid-app',
                    groups: ['system:serviceaccounts'],
                  },
                }
              : { authenticated: false, error: 'token expired' },
          }),
        );
      });
    });
    await new Promise<void>((r) => reviewer.listen(0, '127.0.0.1', () => r()));
    const port = (reviewer.address() as AddressInfo).port;
    // OpenBao insists on a CA for the API server even over plain HTTP: any CA will do.
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
    const ca = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=sidekey test kubernetes CA',
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
      keys,
      signingAlgorithm: alg,
      extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
    });
    bao = await startOpenBao();
    await bao.api('POST', 'secret/data/shop/db', { data: { password: CANARY } });
    await bao.api('PUT', 'sys/policies/acl/shop', {
      policy: 'path "secret/data/shop/*" { capabilities = ["read"] }',
    });
    await bao.api('POST', 'sys/auth/kubernetes', { type: 'kubernetes' });
    await bao.api('POST', 'auth/kubernetes/config', {
      kubernetes_host: `http://127.0.0.1:${port}`,
      kubernetes_ca_cert: ca.toString('pem'),
      disable_local_ca_jwt: true,
    });
    await bao.api('POST', 'auth/kubernetes/role/shop', {
      bound_service_account_names: ['app'],
      bound_service_account_namespaces: ['shop'],
      token_policies: ['shop'],
      audience: 'vault',
    });
    dir = mkdtempSync(path.join(os.tmpdir(), 'sidekey-vault-k8s-'));
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const now = Math.floor(Date.now() / 1000);
    // A projected service-account token as the kubelet writes it (signature checked by TokenReview).
    writeFileSync(
      path.join(dir, 'token'),
      jwtWith(
        {
          iss: 'https://kubernetes.default.svc',
          sub: 'system:serviceaccount:shop:app',
          aud: ['vault'],
          iat: now,
          nbf: now,
          exp: now + 3600,
          'kubernetes.io': { namespace: 'shop', serviceaccount: { name: 'app', uid: 'uid-app' } },
        },
        privateKey,
      ),
    );
  });
  afterAll(async () => {
    await bao?.stop();
    reviewer?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('logs in with the projected token (one TokenReview for all secrets) and reads', async () => {
    const p = new VaultProvider(
      { addr: bao.addr, authMethod: 'kubernetes', role: 'shop', jwtFile: path.join(dir, 'token') },
      { retry: fast },
    );
    const ref = parseRef('vault:secret/shop/db#password');
    const results = await Promise.all([1, 2, 3].map(() => p.fetch(ref, ctx)));
    for (const r of results) {
      const v = selectKey(r.value, ref);
      expect(v.kind === 'bytes' && v.bytes.toString()).toBe(CANARY);
    }
    expect(reviews).toHaveLength(1);
    expect(reviews[0]!.audiences).toEqual(['vault']);
    expect(p.stats.logins).toBe(1);
    await p.close(ctx);
  });

  it('a token the API server rejects is SK_ERR_BACKEND_AUTH naming role and mount', async () => {
    authenticated = false;
    try {
      const p = new VaultProvider(
        { addr: bao.addr, role: 'shop', authPath: 'kubernetes', jwtFile: path.join(dir, 'token') },
        { retry: fast },
      );
      const e = await skErr(p.fetch(parseRef('vault:secret/shop/db'), ctx));
      expect(e.code).toBe('SK_ERR_BACKEND_AUTH');
      expect(e.message).toContain('vault kubernetes login as role "shop" at auth/kubernetes');
      expect(e.message).not.toMatch(/eyJ/);
    } finally {
      authenticated = true;
    }
  });

  it('a missing token file is SK_ERR_BACKEND_AUTH naming the setting', async () => {
    const p = new VaultProvider(
      { addr: bao.addr, role: 'shop', jwtFile: path.join(dir, 'nope') },
      { retry: fast },
    );
    const e = await skErr(p.fetch(parseRef('vault:secret/shop/db'), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_AUTH');
    expect(e.message).toContain('backends.vault.jwtFile');
    expect(e.message).toContain('ENOENT');
  });
});

describe('vault over TLS with a custom CA and server name (real OpenBao -dev-tls)', () => {
  let bao: OpenBao;
  beforeAll(async () => {
    bao = await startOpenBao({ tls: true });
    await bao.api('POST', 'secret/data/app/tls', { data: { v: CANARY } });
  });
  afterAll(async () => {
    await bao?.stop();
  });
  const token = { authMethod: 'token' as const };
  const env = () => ({ VAULT_TOKEN: bao.rootToken });

  it('trusts the CA given in caCert', async () => {
    const p = new VaultProvider(
      { addr: bao.addr, caCert: bao.caFile, ...token },
      { env: env(), retry: fast },
    );
    expect((await p.fetch(parseRef('vault:secret/app/tls'), ctx)).version).toBe('kv2:1');
  });

  it('checks the certificate against tlsServerName', async () => {
    const ok = new VaultProvider(
      { addr: bao.addr, caCert: bao.caFile, tlsServerName: 'localhost', ...token },
      { env: env(), retry: fast },
    );
    expect((await ok.fetch(parseRef('vault:secret/app/tls'), ctx)).version).toBe('kv2:1');
    const bad = new VaultProvider(
      { addr: bao.addr, caCert: bao.caFile, tlsServerName: 'vault.other.example', ...token },
      { env: env(), retry: fast },
    );
    const e = await skErr(bad.fetch(parseRef('vault:secret/app/tls'), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_UNAVAILABLE');
    expect(e.message).toMatch(/TLS failed \(ERR_TLS_CERT_ALTNAME_INVALID\)/);
  });

  it('refuses the server without the CA, and names an unreadable caCert', async () => {
    const p = new VaultProvider({ addr: bao.addr, ...token }, { env: env(), retry: fast });
    const e = await skErr(p.fetch(parseRef('vault:secret/app/tls'), ctx));
    expect(e.code).toBe('SK_ERR_BACKEND_UNAVAILABLE');
    expect(e.message).toMatch(/TLS failed/);
    const q = new VaultProvider(
      { addr: bao.addr, caCert: '/nonexistent/ca.pem', ...token },
      { env: env(), retry: fast },
    );
    const e2 = await skErr(q.fetch(parseRef('vault:secret/app/tls'), ctx));
    expect(e2.code).toBe('SK_ERR_BACKEND_CONFIG');
    expect(e2.message).toContain('backends.vault.caCert');
  });
});

describe('vault namespaces (real OpenBao)', () => {
  let bao: OpenBao;
  beforeAll(async () => {
    bao = await startOpenBao();
    await bao.api('POST', 'sys/namespaces/team-a', {});
  });
  afterAll(async () => {
    await bao?.stop();
  });

  it('sends X-Vault-Namespace: the same path reads the namespace’s secret', async () => {
    // Mount and write inside the namespace (the header selects it).
    const inNs = async (method: string, p: string, body?: unknown) => {
      const res = await fetch(`${bao.addr}/v1/${p}`, {
        method,
        headers: {
          'X-Vault-Token': bao.rootToken,
          'X-Vault-Namespace': 'team-a',
          'content-type': 'application/json',
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${await res.text()}`);
    };
    await inNs('POST', 'sys/mounts/kv', { type: 'kv', options: { version: '2' } });
    await inNs('POST', 'kv/data/app', { data: { who: 'team-a' } });
    const env = { VAULT_TOKEN: bao.rootToken };
    const p = new VaultProvider(
      { addr: bao.addr, authMethod: 'token', namespace: 'team-a' },
      { env, retry: fast },
    );
    const r = await p.fetch(parseRef('vault:kv/app#who'), ctx);
    expect(r.value).toEqual({ kind: 'map', data: { who: 'team-a' } });
    const root = new VaultProvider({ addr: bao.addr, authMethod: 'token' }, { env, retry: fast });
    expect((await skErr(root.fetch(parseRef('vault:kv/app'), ctx))).code).toBe('SK_ERR_SOURCE_NOT_FOUND');
  });
});
