import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { type ClusterInfo, startCluster } from './harness/cluster.js';

declare module 'vitest' {
  export interface ProvidedContext {
    cluster: ClusterInfo;
  }
}

/**
 * The e2e tier runs the real CLI bundle (webhook, agent) as processes against one real
 * etcd + kube-apiserver shared by all test files (each file uses its own namespaces).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
  const started = Date.now();
  const cluster = await startCluster();
  console.log(
    `e2e: kube-apiserver ready at ${cluster.info.server} in ${Date.now() - started} ms (logs: ${cluster.info.dir})`,
  );
  project.provide('cluster', cluster.info);
  return async () => {
    await cluster.stop();
    // Logs stay for post-mortems; etcd's preallocated WAL and the pods' secret files do not.
    rmSync(join(cluster.info.dir, 'etcd'), { recursive: true, force: true });
    const pods = join(cluster.info.dir, 'pods');
    for (const p of existsSync(pods) ? readdirSync(pods) : []) {
      rmSync(join(pods, p, 'volumes'), { recursive: true, force: true });
    }
  };
}
