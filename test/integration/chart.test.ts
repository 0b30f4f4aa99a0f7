import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Certificate, Issuer } from '@kubernetes-models/cert-manager/cert-manager.io/v1';
import {
  PodMonitor,
  PrometheusRule,
  ServiceMonitor,
} from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
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

/** The API versions a cluster with prometheus-operator serves (for `enabled: auto`). */
const PROMETHEUS_OPERATOR = [
  'monitoring.coreos.com/v1/ServiceMonitor',
  'monitoring.coreos.com/v1/PodMonitor',
  'monitoring.coreos.com/v1/PrometheusRule',
];

/**
 * `helm template`; the `helm test` hook objects are left out unless `tests` is set (they would double
 * the ServiceAccount/Role/RoleBinding kinds the other assertions count).
 */
function render(
  valuesFile: string,
  kubeVersion = '1.37.0',
  opts: { apiVersions?: string[]; tests?: boolean } = {},
): K8sObject[] {
  const r = helm([
    'template',
    RELEASE,
    CHART,
    '-n',
    NS,
    '--kube-version',
    kubeVersion,
    '-f',
    valuesFile,
    ...(opts.tests ? [] : ['--skip-tests']),
    ...(opts.apiVersions ?? []).flatMap((v) => ['--api-versions', v]),
  ]);
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
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule as never,
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
        // With the hook objects and a cluster that has prometheus-operator: every optional object.
        const objects = render(path.join(FIXTURES, f), kv, { tests: true, apiVersions: PROMETHEUS_OPERATOR });
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

  describe('day-two options (everything.yaml sets each one)', () => {
    const everything = () => render(path.join(FIXTURES, 'everything.yaml'));

    it('commonLabels on every object and the pod template; podLabels and podAnnotations on the pod', () => {
      const objects = everything();
      for (const o of objects) expect(o.metadata.labels, `${o.kind}`).toMatchObject({ team: 'platform' });
      const tpl = one(objects, 'Deployment').spec.template.metadata;
      expect(tpl.labels).toMatchObject({ team: 'platform', 'sidecar.istio.io/inject': 'false' });
      expect(tpl.annotations['cluster-autoscaler.kubernetes.io/safe-to-evict']).toBe('true');
      // The selector stays the stable selector labels (a label change must not orphan ReplicaSets).
      expect(Object.keys(one(objects, 'Deployment').spec.selector.matchLabels)).not.toContain('team');
    });

    it('securityContexts: null unsets single fields (OpenShift) and a whole map; defaults stay restricted', () => {
      const pod = one(everything(), 'Deployment').spec.template.spec;
      expect(pod.securityContext).toEqual({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
      expect(pod.containers[0].securityContext).toEqual({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        runAsNonRoot: true,
        capabilities: { drop: ['ALL'] },
      });
      const file = path.join(tmp, 'no-security-context.yaml');
      writeFileSync(file, 'podSecurityContext: null\nsecurityContext: null\n');
      const bare = one(render(file), 'Deployment').spec.template.spec;
      expect(bare.securityContext).toBeUndefined();
      expect(bare.containers[0].securityContext).toBeUndefined();
      validate(render(file), '1.37.0');
    });

    it('hostNetwork with ClusterFirstWithHostNet (also the default dnsPolicy there), extra volumes, mounts and env', () => {
      const pod = one(everything(), 'Deployment').spec.template.spec;
      expect(pod.hostNetwork).toBe(true);
      expect(pod.dnsPolicy).toBe('ClusterFirstWithHostNet');
      expect(pod.volumes).toContainEqual({ name: 'corp-ca', configMap: { name: 'corp-ca-bundle' } });
      const c = pod.containers[0];
      expect(c.volumeMounts).toContainEqual({ name: 'corp-ca', mountPath: '/etc/ssl/corp', readOnly: true });
      expect(c.env).toContainEqual({ name: 'NODE_EXTRA_CA_CERTS', value: '/etc/ssl/corp/ca.crt' });
      expect(c.ports[0].containerPort).toBe(9443);
      const file = path.join(tmp, 'host-network.yaml');
      writeFileSync(file, 'hostNetwork: true\n');
      expect(one(render(file), 'Deployment').spec.template.spec.dnsPolicy).toBe('ClusterFirstWithHostNet');
      const defaults = one(render(path.join(FIXTURES, 'defaults.yaml')), 'Deployment').spec.template.spec;
      expect(defaults.dnsPolicy).toBeUndefined();
      expect(defaults.hostNetwork).toBeUndefined();
    });

    it('annotations on the MutatingWebhookConfiguration (beside the TLS mode one) and the Service; service type and port', () => {
      const objects = everything();
      const mwc = one(objects, 'MutatingWebhookConfiguration');
      expect(mwc.metadata.annotations).toEqual({
        'sidekey.io/ca-bundle-managed-by': `${RELEASE}-sidekey`,
        'argocd.argoproj.io/compare-options': 'IgnoreExtraneous',
      });
      expect(mwc.webhooks[0].clientConfig.service.port).toBe(8443);
      const svc = one(objects, 'Service');
      expect(svc.spec.type).toBe('NodePort');
      expect(svc.spec.ports[0]).toMatchObject({ port: 8443, targetPort: 'https' });
      expect(svc.metadata.annotations['service.beta.kubernetes.io/aws-load-balancer-internal']).toBe('true');
      // secret mode has no annotation of its own: only the user's are rendered.
      const file = path.join(tmp, 'secret-annotations.yaml');
      writeFileSync(
        file,
        'tls:\n  mode: secret\n  secretName: x\nwebhook:\n  annotations:\n    a.example.com/b: c\n',
      );
      expect(one(render(file), 'MutatingWebhookConfiguration').metadata.annotations).toEqual({
        'a.example.com/b': 'c',
      });
      expect(one(render(path.join(FIXTURES, 'defaults.yaml')), 'Service').spec.type).toBe('ClusterIP');
    });

    it('update strategy, revisionHistoryLimit, and an HPA that takes over the replica count', () => {
      const objects = everything();
      const deploy = one(objects, 'Deployment');
      expect(deploy.spec.strategy).toEqual({
        type: 'RollingUpdate',
        rollingUpdate: { maxUnavailable: 1, maxSurge: 0 },
      });
      expect(deploy.spec.revisionHistoryLimit).toBe(2);
      expect(deploy.spec.replicas).toBeUndefined();
      const hpa = one(objects, 'HorizontalPodAutoscaler');
      expect(hpa.spec).toMatchObject({
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: deploy.metadata.name },
        minReplicas: 3,
        maxReplicas: 8,
        behavior: { scaleDown: { stabilizationWindowSeconds: 600 } },
      });
      expect(
        hpa.spec.metrics.map((m: K8sObject) => [m.resource.name, m.resource.target.averageUtilization]),
      ).toEqual([
        ['cpu', 60],
        ['memory', 80],
      ]);
      expect(kinds(objects)).toContain('PodDisruptionBudget');
      const file = path.join(tmp, 'recreate.yaml');
      writeFileSync(file, 'strategy:\n  type: Recreate\n');
      expect(one(render(file), 'Deployment').spec.strategy).toEqual({ type: 'Recreate' });
      const defaults = render(path.join(FIXTURES, 'defaults.yaml'));
      expect(one(defaults, 'Deployment').spec.revisionHistoryLimit).toBe(5);
      expect(kinds(defaults)).not.toContain('HorizontalPodAutoscaler');
      const bad = path.join(tmp, 'hpa-bad.yaml');
      writeFileSync(bad, 'autoscaling:\n  enabled: true\n  minReplicas: 4\n  maxReplicas: 2\n');
      expect(helm(['template', RELEASE, CHART, '-f', bad]).stderr).toContain(
        'autoscaling.maxReplicas must be at least autoscaling.minReplicas',
      );
    });

    it("the injected agent's image and pull secrets reach the webhook config", () => {
      const cfg = configOf(everything());
      expect(cfg.agent).toMatchObject({
        image: 'registry.example.com/platform/sidekey:0.1.0',
        imagePullPolicy: 'Always',
        imagePullSecrets: ['agent-registry', 'agent-registry-mirror'],
      });
      expect(configOf(render(path.join(FIXTURES, 'defaults.yaml'))).agent.imagePullSecrets).toEqual([]);
    });

    it('ServiceMonitor with enabled auto: only when the cluster serves its CRD', () => {
      const file = path.join(FIXTURES, 'everything.yaml');
      expect(kinds(render(file))).not.toContain('ServiceMonitor');
      const withCrd = render(file, '1.37.0', { apiVersions: ['monitoring.coreos.com/v1/ServiceMonitor'] });
      const sm = one(withCrd, 'ServiceMonitor');
      expect(sm.metadata.labels.release).toBe('prometheus');
      validate(withCrd, '1.37.0');
    });

    it('PrometheusRule: webhook and agent alerts on documented metric names, thresholds, disabled, extra rules', () => {
      const objects = render(path.join(FIXTURES, 'everything.yaml'), '1.37.0', {
        apiVersions: ['monitoring.coreos.com/v1/ServiceMonitor'],
      });
      const rule = one(objects, 'PrometheusRule');
      expect(rule.metadata.labels.release).toBe('prometheus');
      const rules: K8sObject[] = rule.spec.groups[0].rules;
      const byName = Object.fromEntries(rules.map((r) => [r.alert, r]));
      expect(Object.keys(byName)).toEqual([
        'SidekeyWebhookDown',
        'SidekeyWebhookBadRequests',
        'SidekeyWebhookDenials',
        'SidekeyWebhookCertificateExpiring',
        'SidekeyWebhookTLSReloadFailing',
        'SidekeyAgentSecretStale',
        'SidekeyAgentRefreshFailing',
        'SidekeyAgentLeaseExpiring',
        'SidekeyWebhookSlow',
      ]);
      expect(byName.SidekeyWebhookDown!.expr).toContain(`job="${RELEASE}-sidekey"`);
      expect(byName.SidekeyWebhookDenials!.expr).toMatch(
        /increase\(sidekey_webhook_denials_total\[15m\]\)\) > 5$/,
      );
      expect(byName.SidekeyWebhookCertificateExpiring!.expr).toContain(
        'sidekey_webhook_tls_certificate_not_after_seconds - time()) < 259200',
      );
      expect(byName.SidekeyAgentLeaseExpiring!.expr).toContain(
        'sidekey_secret_lease_remaining_seconds) < 120',
      );
      expect(byName.SidekeyAgentSecretStale!.expr).toContain('sidekey_secret_stale');
      // Alert templates reach Prometheus verbatim (not expanded by helm).
      expect(byName.SidekeyAgentSecretStale!.annotations.description).toContain('{{ $labels.secret }}');

      // Every metric an alert uses is one the webhook registers or docs/agent.md documents.
      const agentDoc = readFileSync(path.join(REPO, 'docs', 'agent.md'), 'utf8');
      const webhookSrc = readFileSync(path.join(REPO, 'webhook', 'metrics.ts'), 'utf8');
      for (const r of rules.filter((x) => x.alert !== 'SidekeyWebhookSlow')) {
        for (const m of String(r.expr).match(/sidekey_[a-z_]+/g) ?? []) {
          const base = m.replace(/_(count|bucket|sum)$/, '');
          expect(
            agentDoc.includes(`\`${base}\``) || webhookSrc.includes(`'${base}'`),
            `${r.alert}: ${m}`,
          ).toBe(true);
        }
      }

      // auto: only with the CRD; without a ServiceMonitor, no "webhook down" alert (absent() would fire).
      const auto = path.join(tmp, 'rule-auto.yaml');
      writeFileSync(auto, 'prometheusRule:\n  enabled: auto\n');
      expect(kinds(render(auto))).not.toContain('PrometheusRule');
      const autoRule = one(
        render(auto, '1.37.0', { apiVersions: ['monitoring.coreos.com/v1/PrometheusRule'] }),
        'PrometheusRule',
      );
      expect(autoRule.spec.groups[0].rules.map((r: K8sObject) => r.alert)).not.toContain(
        'SidekeyWebhookDown',
      );
      expect(autoRule.spec.groups[0].rules.map((r: K8sObject) => r.alert)).toContain('SidekeyAgentNotReady');
      expect(
        kinds(render(path.join(FIXTURES, 'defaults.yaml'), '1.37.0', { apiVersions: PROMETHEUS_OPERATOR })),
      ).not.toContain('PrometheusRule');
    });

    it('helm test hook: a pod running check-webhook against the tests namespace, allowed only to create pods there', () => {
      const objects = render(path.join(FIXTURES, 'everything.yaml'), '1.37.0', { tests: true });
      const hooks = objects.filter((o) => o.metadata.annotations?.['helm.sh/hook'] === 'test');
      expect(kinds(hooks)).toEqual(['Pod', 'Role', 'RoleBinding', 'ServiceAccount']);
      const pod = one(hooks, 'Pod');
      expect(pod.metadata.namespace).toBe(NS);
      const c = pod.spec.containers[0];
      expect(c.image).toBe('registry.example.com/platform/sidekey:0.1.0');
      expect(c.args).toEqual(['check-webhook', '--namespace=sidekey-smoke', '--timeout=15s']);
      expect(pod.spec.serviceAccountName).toBe(one(hooks, 'ServiceAccount').metadata.name);
      expect(pod.spec.restartPolicy).toBe('Never');
      const role = one(hooks, 'Role');
      expect(role.metadata.namespace).toBe('sidekey-smoke');
      expect(role.rules).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['create'] }]);
      expect(one(hooks, 'RoleBinding').subjects).toEqual([
        { kind: 'ServiceAccount', name: pod.spec.serviceAccountName, namespace: NS },
      ]);
      // The hook pod runs in the release namespace, which the webhook never mutates.
      expect(configOf(objects).excludedNamespaces).toContain(pod.metadata.namespace);
      const off = path.join(tmp, 'no-tests.yaml');
      writeFileSync(off, 'tests:\n  enabled: false\n');
      expect(
        render(off, '1.37.0', { tests: true }).filter((o) => o.metadata.annotations?.['helm.sh/hook']),
      ).toEqual([]);
    });

    it('the schema refuses misspelt and wrongly typed new options', () => {
      const cases: [string, RegExp][] = [
        ['autoscaling:\n  enabeld: true\n', /additional properties 'enabeld' not allowed/],
        ['prometheusRule:\n  enabled: yes-please\n', /prometheusRule\/enabled/],
        ['metrics:\n  serviceMonitor:\n    enabled: sometimes\n', /serviceMonitor\/enabled/],
        ['service:\n  type: ExternalName\n', /service\/type/],
        ['dnsPolicy: Cluster\n', /dnsPolicy/],
        ['agent:\n  imagePullSecrets: [registry]\n', /agent\/imagePullSecrets\/0/],
        ['strategy:\n  type: Rolling\n', /strategy\/type/],
      ];
      for (const [yaml, error] of cases) {
        const file = path.join(tmp, 'bad.yaml');
        writeFileSync(file, yaml);
        const r = helm(['template', RELEASE, CHART, '-f', file]);
        expect(r.code, yaml).not.toBe(0);
        expect(r.stderr, yaml).toMatch(error);
      }
    });
  });

  it('openshift: true reaches the webhook config, and the agent it injects sets no uid/gid', async () => {
    const file = path.join(tmp, 'openshift-agent.yaml');
    writeFileSync(file, 'openshift: true\n');
    const cfg = configOf(render(file));
    expect(cfg.openshift).toBe(true);
    expect(configOf(render(path.join(FIXTURES, 'defaults.yaml'))).openshift).toBe(false);
    const { createPipelineContext } = await import('../../webhook/context.js');
    const { mutatePod } = await import('../../webhook/pipeline.js');
    const o = mutatePod(
      {
        operation: 'CREATE',
        namespace: 'shop',
        pod: {
          metadata: {
            annotations: { 'sidekey.io/inject': 'true', 'sidekey.io/secret-db': 'k8s:db#password' },
          },
          spec: { containers: [{ name: 'app' }] },
        },
      },
      createPipelineContext(cfg, { nativeSidecars: true }),
    );
    if (o.kind !== 'inject') throw new Error(o.kind);
    const sc = o.pod.spec!.initContainers![0]!.securityContext!;
    expect(sc.runAsUser).toBeUndefined();
    expect(sc.runAsGroup).toBeUndefined();
    expect(sc.runAsNonRoot).toBe(true);
    const bad = path.join(tmp, 'openshift-bad.yaml');
    writeFileSync(bad, 'openshift: "yes"\n');
    expect(() => render(bad)).toThrow(/openshift/);
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
