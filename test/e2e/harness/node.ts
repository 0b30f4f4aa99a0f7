import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import type { Cluster } from './cluster.js';
import { buildImages, IMAGES } from './images.js';
import { freePort, GiveUp, type Proc, startProc, waitFor } from './procs.js';
import { tool, toolsDir } from './tools.js';

// A real node for the e2e tier: containerd (Debian's 1.6, runc) and a kubelet registered to the
// harness's API server, plus kube-controller-manager running the Job controller only. Everything
// lives under <run dir>/node (containerd root/state/socket, runc root, kubelet root-dir and certs,
// pod logs, CNI IPAM), so runs never share state. Each pod gets its own network namespace on a bridge
// of the run's own (CNI bridge + host-local, no masquerading, no route out: pods reach the host's
// addresses only); the `kubernetes` Service address is forwarded to the API server (kube-proxy's job).

/** The node's name. Its Hostname address, which the API server dials for logs, resolves to 127.0.0.1. */
export const NODE_NAME = 'localhost';

/** How tests reach the node (plain data: it crosses from globalSetup to the tests). */
export interface NodeInfo {
  name: string;
  dir: string;
  /** containerd's socket (for `ctr --address`). */
  containerdSock: string;
  /** Where the kubelet writes container logs (podLogsDir). */
  podLogsDir: string;
  /** The kubelet's --root-dir (pod volumes live below it). */
  kubeletDir: string;
  images: Record<keyof typeof IMAGES, { ref: string; id: string }>;
  /** Milliseconds spent: image build/cache, containerd + import, kubelet until Ready. */
  timings: Record<string, number>;
}

export interface Node {
  info: NodeInfo;
  stop(): Promise<void>;
}

const OWNER = 'owner.pid';
const NET = 'net.json';

/** The run's machine-wide network pieces: the pods' bridge and the Service address on lo. */
interface NetInfo {
  bridge: string;
  serviceIp: string;
}

function removeNet(n: NetInfo): void {
  spawnSync('ip', ['link', 'del', n.bridge], { stdio: 'ignore' });
  spawnSync('ip', ['addr', 'del', `${n.serviceIp}/32`, 'dev', 'lo'], { stdio: 'ignore' });
}

/** `<pid> <start time in ticks since boot>`: identifies a process even after its pid is reused. */
function procId(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return `${pid} ${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]}`;
  } catch {
    return undefined;
  }
}

/**
 * Processes of a node dir: those whose command line names it (containerd, shims, kubelet) and those
 * whose root is a container rootfs below it (the pods' processes, orphaned if their shim was killed).
 */
function procsMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      let root = '';
      try {
        root = readlinkSync(`/proc/${p}/root`);
      } catch {
        // a kernel thread, or gone
      }
      if (cmd.includes(needle) || root.startsWith(`${needle}/`)) pids.push(Number(p));
    } catch {
      // gone
    }
  }
  return pids;
}

/** Mount points at or below `dir`, deepest first. */
function mountsBelow(dir: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (mp && (mp === dir || mp.startsWith(`${dir}/`))) out.push(mp.replace(/\\040/g, ' '));
  }
  return out.sort((a, b) => b.length - a.length);
}

function unmountAll(dir: string): void {
  for (let i = 0; i < 5; i++) {
    const mounts = mountsBelow(dir);
    if (mounts.length === 0) return;
    for (const m of mounts) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
  }
}

/**
 * Removes what a node of this harness left behind when its test runner died (its owner.pid no longer
 * runs): processes naming its dir, mounts below it, the dir. A node whose owner still runs means a
 * concurrent e2e run: refuse (the kubelet's cgroups and device-plugin socket are machine-wide).
 */
function reapLeftovers(): void {
  for (const d of readdirSync(tmpdir())) {
    if (!d.startsWith('sidekey-e2e-')) continue;
    const nodeDir = join(tmpdir(), d, 'node');
    const ownerFile = join(nodeDir, OWNER);
    if (!existsSync(ownerFile)) continue;
    const owner = readFileSync(ownerFile, 'utf8').trim();
    const pid = Number(owner.split(' ')[0]);
    if (pid && pid !== process.pid && procId(pid) === owner) {
      throw new Error(
        `e2e: another e2e node is running (test runner pid ${pid}, ${nodeDir}); one node per machine`,
      );
    }
    for (const pid of procsMentioning(nodeDir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    unmountAll(nodeDir);
    try {
      removeNet(JSON.parse(readFileSync(join(nodeDir, NET), 'utf8')) as NetInfo);
    } catch {
      // no network was set up
    }
    rmSync(nodeDir, { recursive: true, force: true });
    console.log(`e2e: removed a dead run's node (${nodeDir})`);
  }
}

/** A TCP forwarder from the `kubernetes` Service address to the API server, as kube-proxy would do. */
async function serviceForwarder(serviceIp: string, apiPort: number): Promise<() => Promise<void>> {
  // The address exists only for this run, on the loopback interface (traffic never leaves the host).
  const add = spawnSync('ip', ['addr', 'add', `${serviceIp}/32`, 'dev', 'lo'], { encoding: 'utf8' });
  if (add.error) throw new Error(`e2e: cannot run \`ip\` (iproute2): ${add.error.message}`);
  if (add.status !== 0 && !/File exists/.test(add.stderr)) {
    throw new Error(`e2e: ip addr add ${serviceIp}/32 dev lo failed: ${add.stderr.trim()}`);
  }
  const open = new Set<Socket>();
  const server: Server = createServer((c) => {
    const up = connect(apiPort, '127.0.0.1');
    open.add(c);
    open.add(up);
    c.pipe(up).pipe(c);
    const end = (): void => {
      c.destroy();
      up.destroy();
      open.delete(c);
      open.delete(up);
    };
    c.on('error', end);
    up.on('error', end);
    c.on('close', end);
    up.on('close', end);
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(443, serviceIp, () => res());
  });
  return async () => {
    // Connections of pods that are gone would hold close() forever (their watches never end).
    const closed = new Promise<void>((res) => server.close(() => res()));
    for (const sock of open) sock.destroy();
    await closed;
    spawnSync('ip', ['addr', 'del', `${serviceIp}/32`, 'dev', 'lo'], { stdio: 'ignore' });
  };
}

function ctr(sock: string, args: string[], timeout = 120_000): string {
  return execFileSync(tool('ctr'), ['--address', sock, '--namespace', 'k8s.io', ...args], {
    encoding: 'utf8',
    timeout,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/**
 * Starts containerd and a kubelet registered to `cluster`, imports the images, waits for the node to
 * be Ready. `stop()` tears everything down (pods' containers, mounts, processes), also after failures.
 */
export async function startNode(cluster: Cluster): Promise<Node> {
  if (process.getuid?.() !== 0) {
    throw new Error(
      'e2e: the node (containerd, kubelet, pod network and mounts) needs root; run `npm run test:e2e` as root (CI does)',
    );
  }
  reapLeftovers();
  const timings: Record<string, number> = {};
  let t = Date.now();
  const built = buildImages();
  timings.images = Date.now() - t;

  const dir = join(cluster.info.dir, 'node');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, OWNER), procId(process.pid) ?? String(process.pid));
  const cdDir = join(dir, 'containerd');
  const sock = join(cdDir, 'containerd.sock');
  const kubeletDir = join(dir, 'kubelet');
  const podLogsDir = join(dir, 'pod-logs');
  const cniConf = join(dir, 'cni', 'net.d');
  for (const d of [cdDir, kubeletDir, podLogsDir, cniConf]) mkdirSync(d, { recursive: true });
  const bin = join(toolsDir, 'bin');
  const runc = tool('runc');
  tool('containerd-shim-runc-v2');

  const procs: Proc[] = [];
  const cleanups: Array<() => Promise<void> | void> = [];
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    const kubelet = procs.find((p) => p.logFile.endsWith('kubelet.log'));
    const others = procs.filter((p) => p !== kubelet && !p.logFile.endsWith('containerd.log'));
    await Promise.all(others.map((p) => p.stop()));
    await kubelet?.stop(10_000);
    const containerd = procs.find((p) => p.logFile.endsWith('containerd.log'));
    if (containerd && !containerd.ended()) {
      // Every pod's containers and sandboxes: killed and removed while containerd still runs.
      try {
        const tasks = ctr(sock, ['tasks', 'ls', '-q'], 30_000).split('\n').filter(Boolean);
        for (const id of tasks) {
          spawnSync(tool('ctr'), ['--address', sock, '-n', 'k8s.io', 'tasks', 'kill', '-s', 'SIGKILL', id]);
        }
        for (const id of tasks) {
          spawnSync(tool('ctr'), ['--address', sock, '-n', 'k8s.io', 'tasks', 'delete', '-f', id], {
            timeout: 30_000,
          });
        }
        const containers = ctr(sock, ['containers', 'ls', '-q'], 30_000).split('\n').filter(Boolean);
        if (containers.length > 0) {
          spawnSync(tool('ctr'), ['--address', sock, '-n', 'k8s.io', 'containers', 'rm', ...containers]);
        }
      } catch (e) {
        console.error(`e2e node teardown: ctr: ${String(e)}`);
      }
      await containerd.stop(10_000);
    }
    for (const c of cleanups.reverse()) await c();
    // Shims and pod processes that outlived containerd, then every mount (tmpfs volumes, rootfs).
    for (const pid of procsMentioning(dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    unmountAll(dir);
    // Logs stay for post-mortems; containerd's content store, snapshots and the volumes do not.
    rmSync(join(cdDir, 'root'), { recursive: true, force: true });
    rmSync(join(cdDir, 'state'), { recursive: true, force: true });
    rmSync(join(kubeletDir, 'pods'), { recursive: true, force: true });
    rmSync(join(dir, OWNER), { force: true });
  };

  try {
    t = Date.now();
    // The pods' network: a bridge named after the run's service range (10.<n>.0.0/16), pods in
    // 10.250.<n>.0/24 with the bridge as their gateway. No ipMasq and no route beyond the host, so
    // pods reach only this machine's addresses (the API server via the Service address below).
    const n = cluster.info.serviceIp.split('.')[1];
    const net: NetInfo = { bridge: `skbr${n}`, serviceIp: cluster.info.serviceIp };
    writeFileSync(join(dir, NET), JSON.stringify(net));
    cleanups.push(() => removeNet(net));
    writeFileSync(
      join(cniConf, '10-sidekey-e2e.conflist'),
      JSON.stringify({
        cniVersion: '0.4.0',
        name: `sidekey-e2e-${n}`,
        plugins: [
          {
            type: 'bridge',
            bridge: net.bridge,
            isGateway: true,
            isDefaultGateway: true,
            ipMasq: false,
            ipam: {
              type: 'host-local',
              ranges: [[{ subnet: `10.250.${n}.0/24` }]],
              dataDir: join(dir, 'cni', 'ipam'),
            },
          },
        ],
      }),
    );
    const config = `version = 2
root = "${join(cdDir, 'root')}"
state = "${join(cdDir, 'state')}"
[grpc]
  address = "${sock}"
[ttrpc]
  address = "${sock}.ttrpc"
[debug]
  level = "info"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "${join(cdDir, 'opt')}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${IMAGES.pause}"
  # This machine lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below the runtime's own.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "${runc}"
        Root = "${join(cdDir, 'runc')}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${join(toolsDir, 'node-runtime', 'root', 'usr', 'lib', 'cni')}"
    conf_dir = "${cniConf}"
`;
    const configFile = join(cdDir, 'config.toml');
    writeFileSync(configFile, config);
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` };
    const containerd = startProc(tool('containerd'), ['--config', configFile], join(dir, 'containerd.log'), {
      env,
    });
    procs.push(containerd);
    await waitFor('containerd to serve', async () => {
      if (containerd.ended()) throw new GiveUp(`containerd exited:\n${containerd.log().slice(-3000)}`);
      if (!existsSync(sock)) return undefined;
      ctr(sock, ['version'], 10_000);
      return true;
    });
    for (const img of Object.values(built)) ctr(sock, ['images', 'import', img.tarball]);
    timings.containerd = Date.now() - t;

    // The `kubernetes` Service address (KUBERNETES_SERVICE_HOST in every pod) reaches the API server.
    cleanups.push(await serviceForwarder(cluster.info.serviceIp, cluster.info.port));

    t = Date.now();
    const nodeCert = await cluster.ca.sign({
      subject: `CN=system:node:${NODE_NAME}, O=system:nodes`,
      usage: 'client',
    });
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    const kubeconfig = join(dir, 'kubelet.kubeconfig');
    writeFileSync(
      kubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: 'e2e',
            cluster: { server: cluster.info.server, 'certificate-authority-data': b64(cluster.info.caPem) },
          },
        ],
        users: [
          {
            name: 'node',
            user: {
              'client-certificate-data': b64(nodeCert.certPem),
              'client-key-data': b64(nodeCert.keyPem),
            },
          },
        ],
        contexts: [{ name: 'e2e', context: { cluster: 'e2e', user: 'node' } }],
        'current-context': 'e2e',
      }),
      { mode: 0o600 },
    );
    const [port, healthzPort] = [await freePort(), await freePort()];
    const kubeletConfig = join(dir, 'kubelet-config.yaml');
    writeFileSync(
      kubeletConfig,
      stringify({
        apiVersion: 'kubelet.config.k8s.io/v1beta1',
        kind: 'KubeletConfiguration',
        address: '127.0.0.1',
        port,
        readOnlyPort: 0,
        healthzBindAddress: '127.0.0.1',
        healthzPort,
        authentication: {
          anonymous: { enabled: false },
          webhook: { enabled: true },
          x509: { clientCAFile: join(cluster.info.dir, 'ca.crt') },
        },
        authorization: { mode: 'Webhook' },
        containerRuntimeEndpoint: `unix://${sock}`,
        podLogsDir,
        // cgroup v1 (hybrid) here, no systemd: cgroupfs, and the v1 support the kubelet now asks to opt in.
        cgroupDriver: 'cgroupfs',
        failCgroupV1: false,
        failSwapOn: false,
        enforceNodeAllocatable: [],
        // The machine is shared: evict nothing because of other people's disk or memory use.
        evictionHard: { 'memory.available': '1Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
        imageGCHighThresholdPercent: 100,
        imageGCLowThresholdPercent: 99,
        // Faster feedback than the defaults (a test waits on these).
        nodeStatusUpdateFrequency: '2s',
        syncFrequency: '5s',
        // Secret/ConfigMap volumes and projected tokens are fetched directly (no cache delay).
        configMapAndSecretChangeDetectionStrategy: 'Get',
        serializeImagePulls: false,
        resolvConf: '',
        clusterDomain: 'cluster.local',
        containerLogMaxSize: '1Mi',
        shutdownGracePeriod: '0s',
      }),
    );
    const kubelet = startProc(
      tool('kubelet'),
      [
        `--config=${kubeletConfig}`,
        `--kubeconfig=${kubeconfig}`,
        `--root-dir=${kubeletDir}`,
        `--cert-dir=${join(dir, 'kubelet-pki')}`,
        `--hostname-override=${NODE_NAME}`,
        '--v=2',
      ],
      join(dir, 'kubelet.log'),
      { env },
    );
    procs.push(kubelet);

    // Two controllers only: Job, and the publisher of `kube-root-ca.crt` (every pod's
    // kube-api-access volume needs it). No scheduler (test pods name the node), and no ServiceAccount
    // controller to race the harness, which creates the `default` ServiceAccounts itself.
    const kcm = startProc(
      tool('kube-controller-manager'),
      [
        `--kubeconfig=${cluster.info.kubeconfig}`,
        '--controllers=job,root-ca-cert-publisher',
        `--root-ca-file=${join(cluster.info.dir, 'ca.crt')}`,
        '--leader-elect=false',
        '--bind-address=127.0.0.1',
        `--secure-port=${await freePort()}`,
        '--v=1',
      ],
      join(dir, 'kube-controller-manager.log'),
    );
    procs.push(kcm);

    const kc = new KubeConfig();
    kc.loadFromFile(cluster.info.kubeconfig);
    const core = kc.makeApiClient(CoreV1Api);
    await waitFor(
      `node ${NODE_NAME} Ready`,
      async () => {
        if (kubelet.ended())
          throw new GiveUp(`kubelet exited (${kubelet.how()}):\n${kubelet.log().slice(-4000)}`);
        if (kcm.ended()) throw new GiveUp(`kube-controller-manager exited:\n${kcm.log().slice(-3000)}`);
        const n = await core.readNode({ name: NODE_NAME });
        const ready = n.status?.conditions?.find((c) => c.type === 'Ready');
        return ready?.status === 'True' ? true : undefined;
      },
      180_000,
      500,
    );
    timings.kubelet = Date.now() - t;
  } catch (e) {
    await stop();
    throw e;
  }
  const images = Object.fromEntries(
    Object.entries(built).map(([k, v]) => [k, { ref: v.ref, id: v.id }]),
  ) as NodeInfo['images'];
  return {
    info: { name: NODE_NAME, dir, containerdSock: sock, podLogsDir, kubeletDir, images, timings },
    stop,
  };
}

/** What a node left behind (the teardown's own check): processes naming its dir, mounts below it. */
export function nodeLeftovers(dir: string): { procs: number[]; mounts: string[] } {
  return { procs: procsMentioning(dir), mounts: mountsBelow(dir) };
}
