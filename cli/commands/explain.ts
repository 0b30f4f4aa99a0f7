import { readFileSync } from 'node:fs';
import type { Command } from 'commander';

/** `sidekey explain`: would the webhook inject this, and if not, why (webhook/explain-cli.ts). */
export function register(program: Command): void {
  program
    .command('explain')
    .description('say whether the webhook injects a Pod/workload and exactly why not; what its agent fetches')
    .argument(
      '[target]',
      'a live object: <kind>/<name> (pod, deployment, statefulset, daemonset, replicaset, job, cronjob)',
    )
    .option(
      '-f, --file <file>',
      'manifest file (YAML or JSON, multi-document), repeatable; - for stdin',
      collect,
      [],
    )
    .option('--config <file>', 'webhook config file (YAML), as given to `sidekey webhook`')
    .option('--kube-version <version>', 'cluster version for mode auto (below 1.29: classic sidecars)')
    .option('-n, --namespace <ns>', 'namespace of objects that name none (live: of the target)')
    .option('--json', 'print the explanations as JSON')
    .addHelpText(
      'after',
      "\nNamespace objects and the chart's MutatingWebhookConfiguration in the manifests (e.g. `helm template`\n" +
        'output) let explain check the namespaceSelector, objectSelector and matchConditions as well.\n' +
        "A live target is read with the current kubeconfig, with its namespace and the cluster's webhook.\n" +
        'Exit codes: 0 every object is injected, 1 some are not, 2 invalid input.',
    )
    .action(
      async (
        target: string | undefined,
        opts: { file: string[]; config?: string; kubeVersion?: string; namespace?: string; json?: boolean },
      ) => {
        const { runExplain } = await import('../../webhook/explain-cli.js');
        process.exitCode = await runExplain(
          {
            files: opts.file,
            target,
            config: opts.config,
            kubeVersion: opts.kubeVersion,
            namespace: opts.namespace,
            json: opts.json,
          },
          {
            stdout: (s) => process.stdout.write(s),
            stderr: (s) => process.stderr.write(s),
            readStdin: () => readFileSync(0, 'utf8'),
          },
        );
      },
    );
}

function collect(v: string, acc: string[]): string[] {
  return [...acc, v];
}
