import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { SkError } from '../../../src/errors.js';
import {
  kubeVersionUnknown,
  loadWebhookConfig,
  nativeSidecarsEnabled,
  parseWebhookConfig,
} from '../../../webhook/config.js';

describe('webhook config', () => {
  it('an empty document gives frozen defaults and adds the own namespace to the exclusions', () => {
    const c = parseWebhookConfig(null, { ownNamespace: 'sidekey-system' });
    expect(c.agent.image).toMatch(/sidekey/);
    expect(c.agent.resources).toEqual({
      requests: { cpu: '10m', memory: '32Mi' },
      limits: { memory: '64Mi' },
    });
    expect(c.agent.mode).toBe('auto');
    expect(c.agent.mountPath).toBe('/run/sidekey');
    expect(c.agent.tmpfsSize).toBe('4Mi');
    expect(c.agent.refresh).toBe('5m');
    expect(c.agent.metrics).toEqual({ port: 0, scrapeAnnotations: true });
    expect(c.onInvalidAnnotations).toBe('deny');
    expect(c.excluded).toEqual(['kube-system', 'kube-public', 'sidekey-system']);
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.agent.resources.requests)).toBe(true);
  });

  it('agent.metrics: a port (0 = off) and scrape annotations; a bad port names the field', () => {
    expect(parseWebhookConfig({ agent: { metrics: { port: 9102 } } }).agent.metrics).toEqual({
      port: 9102,
      scrapeAnnotations: true,
    });
    expect(() => parseWebhookConfig({ agent: { metrics: { port: 70000 } } })).toThrow(
      /SK_ERR_WEBHOOK_CONFIG|agent\.metrics\.port/,
    );
    expect(() => parseWebhookConfig({ agent: { metrics: { path: '/m' } } })).toThrow(
      /unknown field\(s\) path/,
    );
  });

  it('reads YAML and names the bad field', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'skcfg-'));
    const f = path.join(dir, 'c.yaml');
    writeFileSync(
      f,
      'agent:\n  image: reg/sidekey:1\n  resources:\n    limits: {cpu: 200m}\nbackends:\n  vault: {addr: "https://vault:8200", role: app}\n',
    );
    const c = loadWebhookConfig(f, { POD_NAMESPACE: 'sk' });
    expect(c.agent.image).toBe('reg/sidekey:1');
    expect(c.agent.resources.limits).toEqual({ cpu: '200m' });
    expect(c.agent.resources.requests).toEqual({ cpu: '10m', memory: '32Mi' });
    expect(c.backends.vault?.role).toBe('app');
    writeFileSync(f, 'agent:\n  tmpfsSize: huge\n');
    const e = (() => {
      try {
        loadWebhookConfig(f, {});
      } catch (x) {
        return x as SkError;
      }
    })();
    expect(e?.code).toBe('SK_ERR_WEBHOOK_CONFIG');
    expect(e?.message).toContain('agent.tmpfsSize');
    writeFileSync(f, 'bogus: 1\n');
    expect(() => loadWebhookConfig(f, {})).toThrow(/unknown field\(s\) bogus/);
  });

  it('reads the document the Helm chart renders (header, agent defaults, nulls for unset values)', () => {
    const c = parseWebhookConfig({
      apiVersion: 'sidekey.io/v1',
      kind: 'WebhookConfig',
      agent: {
        image: 'ghcr.io/sidekey/sidekey:0.1.0',
        imagePullPolicy: 'IfNotPresent',
        mode: 'auto',
        refresh: '5m',
        tmpfsSize: '4Mi',
        mountPath: '/run/sidekey',
        runAsUser: 65532,
        resources: { requests: { cpu: '5m', memory: '32Mi' }, limits: { memory: '96Mi' } },
        onChange: null,
      },
      backends: { vault: { addr: 'https://vault:8200', role: 'app' } },
    });
    expect(c.agent.resources.limits).toEqual({ memory: '96Mi' });
    expect(c.agent.onChange).toBe('none');
    expect(() => parseWebhookConfig({ kind: 'SecretSpec' })).toThrow(/kind/);
  });

  it('native sidecars: explicit, or from the version (>= 1.29); an unknown version means native', () => {
    expect(nativeSidecarsEnabled(parseWebhookConfig({ nativeSidecars: true }))).toBe(true);
    expect(nativeSidecarsEnabled(parseWebhookConfig({ nativeSidecars: false }), 'v1.31.0')).toBe(false);
    // Every supported release has native sidecars: only a cluster known to be older gets classic ones.
    expect(nativeSidecarsEnabled(parseWebhookConfig({}))).toBe(true);
    expect(kubeVersionUnknown(parseWebhookConfig({}))).toBe(true);
    expect(kubeVersionUnknown(parseWebhookConfig({}), 'v1.28.3')).toBe(false);
    expect(kubeVersionUnknown(parseWebhookConfig({ nativeSidecars: true }))).toBe(false);
    expect(nativeSidecarsEnabled(parseWebhookConfig({}), 'v1.28.3')).toBe(false);
    expect(nativeSidecarsEnabled(parseWebhookConfig({}), 'not-a-version')).toBe(true);
    expect(nativeSidecarsEnabled(parseWebhookConfig({}), 'v1.29.0')).toBe(true);
    expect(nativeSidecarsEnabled(parseWebhookConfig({ kubernetesVersion: '1.28' }))).toBe(false);
    expect(nativeSidecarsEnabled(parseWebhookConfig({ kubernetesVersion: 'v1.33.1' }), 'v1.20')).toBe(true);
  });
});
