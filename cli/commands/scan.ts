import { readFileSync } from 'node:fs';
import type { Command } from 'commander';

/** `sidekey scan`: list env-var secrets in workloads, from the cluster or manifests (src/migrate/cli.ts). */
export function register(program: Command): void {
  program
    .command('scan')
    .description(
      'find secrets in environment variables of workloads (cluster or manifests); never prints values',
    )
    .option(
      '-f, --file <path>',
      'manifest file, directory (all *.yaml/*.yml/*.json) or - for stdin; default: the cluster',
    )
    .option('-n, --namespace <ns>', 'cluster namespace (default: the kubeconfig context namespace)')
    .option('-A, --all-namespaces', 'scan every namespace of the cluster')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .option('--chunk-size <n>', 'objects per list request to the cluster (like kubectl; default 500)')
    .option('--fail-on <level>', 'exit 3 if a finding is at this confidence or higher: high, medium or low')
    .addHelpText(
      'after',
      '\nFinds valueFrom.secretKeyRef, envFrom.secretRef and literal values that look like secrets, in every\n' +
        'container and init container of Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs and\n' +
        'CronJobs. Exit codes: 0 ok, 2 bad input, 1 cluster/runtime failure, 3 findings at --fail-on or above.\n' +
        'The cluster is read with the current kubeconfig context, in pages of --chunk-size objects.\n\n' +
        'Examples:\n' +
        '  sidekey scan -A                         every namespace of the current context\n' +
        '  sidekey scan -n shop -o yaml            one namespace, as YAML\n' +
        '  sidekey scan -f k8s/ --fail-on high     manifests in CI: exit 3 on a likely secret',
    )
    .action(
      async (opts: {
        file?: string;
        namespace?: string;
        allNamespaces?: boolean;
        output?: string;
        failOn?: string;
        chunkSize?: string;
      }) => {
        const { runScan } = await import('../../src/migrate/cli.js');
        const { useColor } = await import('../../src/cli-output.js');
        process.exitCode = await runScan(opts, {
          stdout: (s) => process.stdout.write(s),
          stderr: (s) => process.stderr.write(s),
          readStdin: () => readFileSync(0, 'utf8'),
          stderrIsTTY: process.stderr.isTTY === true,
          color: useColor(process.stdout),
        });
      },
    );
}
