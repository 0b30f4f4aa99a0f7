import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { CANARY } from '../helpers/cli.ts';
import { type ClusterInfo, startCluster } from './harness/cluster.js';
import { type NodeInfo, nodeLeftovers, startNode } from './harness/node.js';

declare module 'vitest' {
  export interface ProvidedContext {
    cluster: ClusterInfo;
    node: NodeInfo;
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
  let node: Awaited<ReturnType<typeof startNode>>;
  try {
    const t = Date.now();
    node = await startNode(cluster);
    const tm = node.info.timings;
    console.log(
      `e2e: node ${node.info.name} Ready in ${Date.now() - t} ms (images ${tm.images} ms, containerd + import ${tm.containerd} ms, kubelet ${tm.kubelet} ms; logs: ${node.info.dir})`,
    );
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  project.provide('node', node.info);
  return async () => {
    await node.stop();
    await cluster.stop();
    // The node's teardown left no process naming its dir and no mount below it.
    const left = nodeLeftovers(node.info.dir);
    if (left.procs.length > 0 || left.mounts.length > 0) {
      throw new Error(
        `e2e node teardown left processes ${left.procs.join(', ') || '-'} and mounts ${left.mounts.join(', ') || '-'}`,
      );
    }
    // Logs stay for post-mortems; etcd's preallocated WAL and the pods' secret files do not.
    rmSync(join(cluster.info.dir, 'etcd'), { recursive: true, force: true });
    const pods = join(cluster.info.dir, 'pods');
    for (const p of existsSync(pods) ? readdirSync(pods) : []) {
      rmSync(join(pods, p, 'volumes'), { recursive: true, force: true });
    }
    // Every process log of the run (API server, etcd, webhooks, agents) must be free of the canary.
    const logs = (readdirSync(cluster.info.dir, { recursive: true }) as string[]).filter((f) =>
      f.endsWith('.log'),
    );
    const hits = logs.filter((f) => readFileSync(join(cluster.info.dir, f), 'utf8').includes(CANARY));
    if (hits.length > 0) {
      throw new Error(
        `canary secret found in e2e process logs: ${hits.join(', ')} (under ${cluster.info.dir})`,
      );
    }
  };
}
