import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Certificate, Issuer } from '@kubernetes-models/cert-manager/cert-manager.io/v1';
import { PodMonitor, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { parseWebhookConfig } from '../../webhook/config.js';

/**
 * The Helm chart, rendered by the real helm (installed by scripts/tools/integration.d/40-helm.sh) and
 * validated offline: built-in kinds against the Kubernetes OpenAPI schemas shipped by
 * kubernetes-validate (--strict: unknown fields are errors), cert-manager and prometheus-operator
 * resources against the schemas of their kubernetes-models packages, and the webhook's config file
 * against webhook/config.ts itself.
 */

const TOOLS = process.env.SIDEKEY_TOOLS ?? path.join(os.homedir(), '.cache', 'sidekey-tools');
const HELM = path.join(TOOLS, 'bin', 'helm');
const KUBE_VALIDATE = path.join(TOOLS, 'bin', 'kubernetes-validate');
const REPO = path.resolve(import.meta.dirname, '../..');
const CHART = path.join(REPO, 'charts', 'sidekey');
const FIXTURES = path.join(REPO, 'test', 'fixtures', 'chart-values');
const NS = 'sidekey-system';
const RELEASE = 'sk';
/** The oldest Kubernetes the chart supports (matchConditions) and a current one. */
const KUBE_VERSIONS = ['1.28.0', '1.37.0'];

// biome-ignore lint/suspicious/noExplicitAny: assertions walk arbitrary Kubernetes objects
type K8sObject = Record<string, any>;

let tmp: string;

function helm(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(HELM, args, { encoding: 'utf8', cwd: REPO });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function render(valuesFile: string, kubeVersion = '1.37.0'): K8sObject[] {
  const r = helm(['template', RELEASE, CHART, '-n', NS, '--kube-version', kubeVersion, '-f', valuesFile]);
  if (r.code !== 0) throw new Error(`helm template -f ${path.basename(valuesFile)} failed:\n${r.stderr}`);
  return YAML.parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => !!o?.kind);
}

const CRD_MODELS: Record<string, new (o: K8sObject) => { validate(): void }> = {
  'cert-manager.io/v1/Certificate': Certificate as never,
  'cert-manager.io/v1/Issuer': Issuer as never,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor as never,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor as never,
};

/** Validate every object offline; returns the per-object verdicts for assertions. */
function validate(objects: K8sObject[], kubeVersion: string): void {
  const builtIn = objects.filter((o) => !CRD_MODELS[`${o.apiVersion}/${o.kind}`]);
  const file = path.join(tmp, `objects-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, builtIn.map((o) => YAML.stringify(o)).join('---\n'));
  const r = spawnSync(KUBE_VALIDATE, ['--strict', '-k', kubeVersion, file], { encoding: 'utf8' });
  const out = `${r.stdout}${r.stderr}`;
  if (r.status !== 0) throw new Error(`kubernetes-validate rejected the chart output:\n${out}`);
  for (const o of builtIn) {
    expect(out, `${o.kind}/${o.metadata.name} validated`).toContain(
      `passed for resource ${o.kind.toLowerCase()}/${o.metadata.name}`,
    );
  }
  for (const o of objects.filter((x) => CRD_MODELS[`${x.apiVersion}/${x.kind}`])) {
    const Model = CRD_MODELS[`${o.apiVersion}/${o.kind}`]!;
    expect(() => new Model(o).validate(), `${o.kind}/${o.metadata.name}`).not.toThrow();
  }
}

function one(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  expect(found, `exactly one ${kind}${name ? ` ${name}` : ''}`).toHaveLength(1);
  return found[0]!;
}

function kinds(objects: K8sObject[]): string[] {
  return objects.map((o) => o.kind).sort();
}

function webhookOf(objects: K8sObject[]): K8sObject {
  const mwc = one(objects, 'MutatingWebhookConfiguration');
  expect(mwc.webhooks).toHaveLength(1);
  return mwc.webhooks[0];
}

function configOf(objects: K8sObject[]) {
  const cm = one(objects, 'ConfigMap');
  return parseWebhookConfig(YAML.parse(cm.data['config.yaml']), { source: 'chart ConfigMap' });
}

beforeAll(() => {
  for (const tool of [HELM, KUBE_VALIDATE]) {
    if (!existsSync(tool)) throw new Error(`${tool} is missing: run scripts/tools/ensure.sh integration`);
  }
  tmp = mkdtempSync(path.join(os.tmpdir(), 'sk-chart-'));
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const fixtures = readdirSync(FIXTURES)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

describe('helm chart charts/sidekey', () => {
  it('passes helm lint --strict with the defaults and with every values fixture', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(6);
    const plain = helm(['lint', '--strict', CHART]);
    expect(plain.code, plain.stdout + plain.stderr).toBe(0);
    for (const f of fixtures) {
      const r = helm(['lint', '--strict', CHART, '-n', NS, '-f', path.join(FIXTURES, f)]);
      expect(r.code, `${f}: ${r.stdout}${r.stderr}`).toBe(0);
      expect(r.stdout).toContain('0 chart(s) failed');
    }
  });

  it('the validator is strict: it rejects an unknown field in a rendered object', () => {
    const objects = render(path.join(FIXTURES, 'defaults.yaml'));
    const deploy = structuredClone(one(objects, 'Deployment'));
    deploy.spec.template.spec.containers[0].imagePullPolcy = 'Always';
    expect(() => validate([deploy], '1.37.0')).toThrow(/imagePullPolcy/);
    const cert = { apiVersion: 'cert-manager.io/v1', kind: 'Certificate', metadata: { name: 'x' }, spec: {} };
    expect(() => validate([cert], '1.37.0')).toThrow();
  });

  for (const f of fixtures) {
    for (const kv of KUBE_VERSIONS) {
      it(`renders ${f} for Kubernetes ${kv}: every object valid against the schemas`, () => {
        const objects = render(path.join(FIXTURES, f), kv);
        expect(objects.length).toBeGreaterThan(1);
        validate(objects, kv);
        // The webhook accepts the config file the chart writes (webhook/config.ts, strict).
        expect(() => configOf(objects)).not.toThrow();
        for (const o of objects) {
          expect(o.metadata.labels?.['app.kubernetes.io/instance'], `${o.kind} labels`).toBe(RELEASE);
        }
      });
    }
  }

  it('defaults: 2 replicas, PDB, anti-affinity, probes, restricted security context, self-managed TLS', () => {
    const objects = render(path.join(FIXTURES, 'defaults.yaml'));
    expect(kinds(objects)).toEqual(
      [
        'ClusterRole',
        'ClusterRoleBinding',
        'ConfigMap',
        'Deployment',
        'Lease',
        'MutatingWebhookConfiguration',
        'PodDisruptionBudget',
        'Role',
        'RoleBinding',
        'Secret',
        'Service',
        'ServiceAccount',
      ].sort(),
    );
    const deploy = one(objects, 'Deployment');
    expect(deploy.spec.replicas).toBe(2);
    expect(deploy.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
    const pod = deploy.spec.template.spec;
    expect(
      pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm
        .topologyKey,
    ).toBe('kubernetes.io/hostname');
    expect(pod.priorityClassName).toBeUndefined();
    expect(one(objects, 'PodDisruptionBudget').spec).toMatchObject({ maxUnavailable: 1 });

    // Restricted Pod Security Standard.
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65532,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod.hostNetwork ?? false).toBe(false);
    expect(pod.volumes.every((v: K8sObject) => !v.hostPath)).toBe(true);
    const c = pod.containers[0];
    expect(c.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      privileged: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(c.readinessProbe.httpGet).toMatchObject({ path: '/readyz', scheme: 'HTTPS', port: 'https' });
    expect(c.livenessProbe.httpGet).toMatchObject({ path: '/healthz', scheme: 'HTTPS', port: 'https' });
    expect(c.resources.requests).toEqual({ cpu: '20m', memory: '64Mi' });
    expect(c.resources.limits.memory).toBe('192Mi');
    // Keeps serving while its endpoint is removed, so a rollout does not refuse admission calls.
    // The image has no shell and no `sleep` binary: node, which it has, waits.
    expect(c.lifecycle.preStop.exec.command).toEqual(['node', '-e', 'setTimeout(() => {}, 5000)']);
    // The webhook runs with the flags H3's CLI and the TLS manager define.
    expect(c.args).toEqual(
      expect.arrayContaining([
        'webhook',
        '--config=/etc/sidekey/config.yaml',
        '--tls-self-managed',
        `--tls-secret=${RELEASE}-sidekey-tls`,
        `--webhook-config=${RELEASE}-sidekey-${NS}`,
        `--service=${RELEASE}-sidekey`,
        `--namespace=${NS}`,
      ]),
    );
    // Every pod of the webhook carries the label its own objectSelector excludes.
    expect(deploy.spec.template.metadata.labels['sidekey.io/webhook']).toBeDefined();

    const cfg = configOf(objects);
    expect(cfg.agent.image).toBe(c.image);
    expect(cfg.excludedNamespaces).toEqual(expect.arrayContaining(['kube-system', NS]));
  });

  it('defaults: the webhook only sees CREATE of opted-in pods outside kube-system and its own namespace', () => {
    const objects = render(path.join(FIXTURES, 'defaults.yaml'));
    const w = webhookOf(objects);
    expect(w).toMatchObject({
      name: 'inject.sidekey.io',
      admissionReviewVersions: ['v1'],
      sideEffects: 'None',
      failurePolicy: 'Fail',
      timeoutSeconds: 5,
      clientConfig: { service: { name: `${RELEASE}-sidekey`, namespace: NS, path: '/mutate', port: 443 } },
    });
    expect(w.clientConfig.caBundle).toBeUndefined(); // patched at run time by the TLS manager
    expect(w.rules).toEqual([
      {
        operations: ['CREATE'],
        apiGroups: [''],
        apiVersions: ['v1'],
        resources: ['pods'],
        scope: 'Namespaced',
      },
    ]);
    expect(w.namespaceSelector.matchExpressions[0]).toEqual({
      key: 'kubernetes.io/metadata.name',
      operator: 'NotIn',
      values: ['kube-system', NS, 'kube-public'],
    });
    expect(w.objectSelector.matchExpressions).toEqual([
      { key: 'sidekey.io/webhook', operator: 'DoesNotExist' },
    ]);
    expect(w.matchConditions.map((m: K8sObject) => m.name)).toEqual([
      'sidekey-opted-in',
      'sidekey-not-yet-injected',
    ]);
    expect(w.matchConditions[0].expression).toContain("'sidekey.io/inject' in object.metadata.annotations");

    const svc = one(objects, 'Service');
    expect(svc.spec.selector).toEqual(one(objects, 'Deployment').spec.selector.matchLabels);
  });

  it('RBAC is least privilege: named objects only, no create/list/watch/delete, no wildcards', () => {
    const objects = render(path.join(FIXTURES, 'self-managed.yaml'));
    const role = one(objects, 'Role');
    const clusterRole = one(objects, 'ClusterRole');
    const allowed = new Set(['get', 'update', 'patch']);
    for (const rule of [...role.rules, ...clusterRole.rules]) {
      expect(rule.resourceNames?.length, JSON.stringify(rule)).toBe(1);
      for (const v of rule.verbs) expect(allowed.has(v), `verb ${v}`).toBe(true);
      for (const f of [...rule.apiGroups, ...rule.resources, ...rule.verbs]) expect(f).not.toContain('*');
    }
    expect(role.rules).toEqual([
      {
        apiGroups: [''],
        resources: ['secrets'],
        resourceNames: ['sidekey-webhook-tls'],
        verbs: ['get', 'update'],
      },
      {
        apiGroups: ['coordination.k8s.io'],
        resources: ['leases'],
        resourceNames: [`${RELEASE}-sidekey-tls-writer`],
        verbs: ['get', 'update'],
      },
    ]);
    expect(clusterRole.rules).toEqual([
      {
        apiGroups: ['admissionregistration.k8s.io'],
        resources: ['mutatingwebhookconfigurations'],
        resourceNames: [one(objects, 'MutatingWebhookConfiguration').metadata.name],
        verbs: ['get', 'patch'],
      },
    ]);
    // The chart pre-creates the two objects so that no "create" verb is needed, and never sets data.
    const secret = one(objects, 'Secret', 'sidekey-webhook-tls');
    expect(secret.data).toBeUndefined();
    expect(one(objects, 'Lease').metadata.name).toBe(`${RELEASE}-sidekey-tls-writer`);
    const roleBinding = one(objects, 'RoleBinding');
    expect(roleBinding.subjects).toEqual([
      { kind: 'ServiceAccount', name: 'sidekey-webhook', namespace: NS },
    ]);
    expect(one(objects, 'Deployment').spec.template.spec.serviceAccountName).toBe('sidekey-webhook');
    expect(one(objects, 'Deployment').spec.template.spec.containers[0].args).toEqual(
      expect.arrayContaining([
        '--tls-cert-validity=720h',
        '--tls-renew-at=0.5',
        '--tls-secret=sidekey-webhook-tls',
      ]),
    );
  });

  it('cert-manager: CA chain + serving Certificate, CA injected by annotation, no RBAC needed', () => {
    const objects = render(path.join(FIXTURES, 'cert-manager.yaml'));
    const mwc = one(objects, 'MutatingWebhookConfiguration');
    const serving = one(objects, 'Certificate', `${RELEASE}-sidekey-serving`);
    expect(mwc.metadata.annotations['cert-manager.io/inject-ca-from']).toBe(`${NS}/${serving.metadata.name}`);
    expect(serving.spec.dnsNames).toContain(`${RELEASE}-sidekey.${NS}.svc`);
    expect(serving.spec.issuerRef).toEqual({
      name: `${RELEASE}-sidekey-ca`,
      kind: 'Issuer',
      group: 'cert-manager.io',
    });
    expect(one(objects, 'Certificate', `${RELEASE}-sidekey-ca`).spec.isCA).toBe(true);
    expect(objects.filter((o) => o.kind === 'Issuer')).toHaveLength(2);
    expect(kinds(objects)).not.toContain('Role');
    expect(kinds(objects)).not.toContain('ClusterRole');
    expect(kinds(objects)).not.toContain('Lease');
    const pod = one(objects, 'Deployment').spec.template.spec;
    expect(pod.volumes.find((v: K8sObject) => v.name === 'tls').secret.secretName).toBe(
      serving.spec.secretName,
    );
    expect(pod.containers[0].args).not.toContain('--tls-self-managed');

    const withIssuer = render(path.join(FIXTURES, 'cert-manager-issuer.yaml'));
    expect(kinds(withIssuer)).not.toContain('Issuer');
    expect(one(withIssuer, 'Certificate').spec).toMatchObject({
      secretName: 'sidekey-serving-cert',
      issuerRef: { name: 'platform-ca', kind: 'ClusterIssuer' },
    });
  });

  it('HA: replicas, hard anti-affinity, priority class, PDB minAvailable, ServiceMonitor, NetworkPolicy, agent defaults', () => {
    const objects = render(path.join(FIXTURES, 'ha.yaml'));
    const deploy = one(objects, 'Deployment');
    expect(deploy.spec.replicas).toBe(3);
    const pod = deploy.spec.template.spec;
    expect(pod.priorityClassName).toBe('system-cluster-critical');
    expect(pod.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey).toBe(
      'kubernetes.io/hostname',
    );
    expect(pod.topologySpreadConstraints[0].topologyKey).toBe('topology.kubernetes.io/zone');
    expect(one(objects, 'PodDisruptionBudget').spec).toEqual({
      minAvailable: 2,
      selector: deploy.spec.selector,
    });
    const sm = one(objects, 'ServiceMonitor');
    expect(sm.metadata.labels.release).toBe('prometheus');
    expect(sm.spec.endpoints[0]).toMatchObject({ port: 'https', path: '/metrics', scheme: 'https' });
    const np = one(objects, 'NetworkPolicy');
    expect(np.spec.ingress[0].ports).toEqual([{ port: 'https', protocol: 'TCP' }]);
    expect(np.spec.podSelector.matchLabels).toEqual(deploy.spec.selector.matchLabels);

    const cfg = configOf(objects);
    expect(cfg).toMatchObject({
      agent: {
        image: 'registry.example.com/sidekey:0.1.0',
        mode: 'native',
        refresh: '1m',
        onChange: 'signal:HUP',
      },
      nativeSidecars: true,
      backends: {
        vault: {
          addr: 'https://vault.vault.svc:8200',
          role: 'sidekey',
          authPath: 'kubernetes',
          authMethod: 'kubernetes',
        },
        aws: { region: 'eu-west-1' },
      },
    });
    // Empty settings are left out, so the webhook's own defaults apply.
    expect(Object.keys(cfg.backends.vault ?? {})).not.toContain('namespace');
  });

  it("agent metrics: the listener's port and scrape annotations reach the webhook config; a PodMonitor scrapes sidekey-metrics", () => {
    const objects = render(path.join(FIXTURES, 'agent-metrics.yaml'));
    validate(objects, '1.37.0');
    expect(configOf(objects).agent.metrics).toEqual({ port: 9102, scrapeAnnotations: false });
    const pm = one(objects, 'PodMonitor');
    expect(pm.metadata.labels.release).toBe('prometheus');
    expect(pm.spec.namespaceSelector).toEqual({ matchNames: ['shop', 'payments'] });
    expect(pm.spec.podMetricsEndpoints).toEqual([
      { port: 'sidekey-metrics', path: '/metrics', scheme: 'http', interval: '15s' },
    ]);
    // Defaults: listener off, no PodMonitor.
    const defaults = render(path.join(FIXTURES, 'defaults.yaml'));
    expect(configOf(defaults).agent.metrics).toEqual({ port: 0, scrapeAnnotations: true });
    expect(kinds(defaults)).not.toContain('PodMonitor');
    // Without a namespace selector: every namespace.
    const anyNs = path.join(tmp, 'pm-any.yaml');
    writeFileSync(anyNs, 'metrics:\n  podMonitor:\n    enabled: true\n');
    const pmAny = one(render(anyNs), 'PodMonitor');
    expect(pmAny.spec.namespaceSelector).toEqual({ any: true });
    expect(pmAny.spec.selector).toEqual({});
  });

  it('custom selectors: failurePolicy Ignore, opt-in namespaces, pod labels, extra CEL condition', () => {
    const objects = render(path.join(FIXTURES, 'custom-selectors.yaml'));
    const w = webhookOf(objects);
    expect(w.failurePolicy).toBe('Ignore');
    expect(w.timeoutSeconds).toBe(3);
    expect(w.namespaceSelector).toEqual({
      matchLabels: { 'sidekey.io/enabled': 'true' },
      matchExpressions: [
        {
          key: 'kubernetes.io/metadata.name',
          operator: 'NotIn',
          values: ['kube-system', NS, 'monitoring', 'kube-public'],
        },
        { key: 'environment', operator: 'In', values: ['staging', 'production'] },
      ],
    });
    expect(w.objectSelector).toEqual({
      matchLabels: { 'sidekey.io/allowed': 'true' },
      matchExpressions: [{ key: 'sidekey.io/webhook', operator: 'DoesNotExist' }],
    });
    expect(w.matchConditions.map((m: K8sObject) => m.name)).toEqual([
      'sidekey-opted-in',
      'sidekey-not-yet-injected',
      'not-a-job',
    ]);
    const cfg = configOf(objects);
    expect(cfg.onInvalidAnnotations).toBe('allow-without-injection');
    expect(cfg.excludedNamespaces).toEqual(['kube-system', NS, 'monitoring', 'kube-public']);
  });

  it('url mode: the API server calls the URL with the given caBundle; nothing runs in the cluster', () => {
    const objects = render(path.join(FIXTURES, 'url-mode.yaml'));
    expect(kinds(objects)).toEqual(['ConfigMap', 'MutatingWebhookConfiguration']);
    const w = webhookOf(objects);
    expect(w.clientConfig.url).toBe('https://127.0.0.1:8443/mutate');
    expect(w.clientConfig.service).toBeUndefined();
    expect(Buffer.from(w.clientConfig.caBundle, 'base64').toString()).toContain(
      '-----BEGIN CERTIFICATE-----',
    );
  });

  it('matchConditions can be turned off (clusters with the feature gate off)', () => {
    const file = path.join(tmp, 'no-conditions.yaml');
    writeFileSync(file, 'webhook:\n  matchConditions:\n    enabled: false\n');
    const w = webhookOf(render(file));
    expect(w.matchConditions).toBeUndefined();
  });

  const invalid = readdirSync(path.join(FIXTURES, 'invalid')).sort();
  const expectedErrors: Record<string, RegExp> = {
    'failure-policy.yaml': /at '\/webhook\/failurePolicy': value must be one of 'Fail', 'Ignore'/,
    'timeout.yaml': /at '\/webhook\/timeoutSeconds': maximum/,
    'tls-mode.yaml': /at '\/tls\/mode': value must be one of/,
    'unknown-key.yaml': /additional properties 'replicas' not allowed/,
    'url-cert-manager.yaml': /at '\/tls\/mode': value must be one of 'self-managed', 'secret'/,
  };
  it('rejects every bad values file with the schema (or template) error naming the field', () => {
    expect(invalid.sort()).toEqual(Object.keys(expectedErrors).sort());
    for (const f of invalid) {
      const r = helm(['template', RELEASE, CHART, '-n', NS, '-f', path.join(FIXTURES, 'invalid', f)]);
      expect(r.code, f).not.toBe(0);
      expect(r.stderr, f).toMatch(expectedErrors[f]!);
      if (f !== 'url-cert-manager.yaml')
        expect(r.stderr).toContain("values don't meet the specifications of the schema");
      const lint = helm(['lint', '--strict', CHART, '-f', path.join(FIXTURES, 'invalid', f)]);
      expect(lint.code, `helm lint ${f}`).not.toBe(0);
    }
  });

  it('helm package produces a chart archive with the schema inside', () => {
    const out = execFileSync(HELM, ['package', CHART, '-d', tmp], { encoding: 'utf8' });
    const tgz = /saved it to: (.+\.tgz)/.exec(out)?.[1];
    expect(tgz).toBeDefined();
    const list = execFileSync('tar', ['-tzf', tgz as string], { encoding: 'utf8' });
    expect(list).toContain('sidekey/values.schema.json');
    expect(list).toContain('sidekey/templates/NOTES.txt');
  });
});
