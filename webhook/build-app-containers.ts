import type { Container, EnvVar } from './k8s.js';
import { NAMES, type Plan } from './validate.js';
import { exitDir } from './workload-rules.js';

/**
 * Mount the secrets read-only into one app container and point its `*_FILE` variables at them. The env
 * var a file replaces (`sidekey.io/env-<name>: VAR`, literal or `valueFrom.secretKeyRef`) is removed, so
 * the secret is no longer in the process environment; an existing `VAR_FILE` is replaced.
 */
export function mountIntoApp(
  c: Container,
  plan: Pick<Plan, 'mountPath' | 'envFiles' | 'exitFile'>,
): Container {
  const out: Container = { ...c };
  out.volumeMounts = [
    ...(c.volumeMounts ?? []),
    { name: NAMES.secretsVolume, mountPath: plan.mountPath, readOnly: true },
    // Writable: the app writes the exit file there when it is done.
    ...(plan.exitFile !== undefined ? [{ name: NAMES.exitVolume, mountPath: exitDir(plan.exitFile) }] : []),
  ];
  if (plan.envFiles.length > 0) {
    const drop = new Set<string>();
    for (const f of plan.envFiles) {
      drop.add(f.env);
      drop.add(f.env.slice(0, -'_FILE'.length));
    }
    const env: EnvVar[] = (c.env ?? []).filter((e) => !drop.has(e.name));
    for (const f of plan.envFiles) env.push({ name: f.env, value: f.path });
    out.env = env;
  }
  return out;
}
