import { readFileSync } from 'node:fs';
import type { Command } from 'commander';

/** `sidekey inject -f <file|->`: preview what the webhook does to Pods and workloads (webhook/inject-cli.ts). */
export function register(program: Command): void {
  program
    .command('inject')
    .description('print Pods/workloads as the webhook would mutate them (or the JSON patches)')
    .requiredOption('-f, --file <file>', 'manifest file (YAML or JSON, multi-document); - for stdin')
    .option('--patch', 'print one RFC 6902 JSON patch per object per line instead of the objects')
    .option('-o, --output <format>', 'yaml or json; json prints one object, or a v1 List of several')
    .option('--config <file>', 'webhook config file (YAML), as given to `sidekey webhook`')
    .option('--kube-version <version>', 'cluster version for mode auto (>= 1.29: native sidecars)')
    .option('-n, --namespace <ns>', 'namespace of objects that name none')
    .addHelpText(
      'after',
      '\nObjects that are not opted in are printed unchanged, with the reason on stderr.\n' +
        'Exit codes: 0 ok, 2 invalid annotations or manifest (one line naming the annotation and SK_ERR code).\n\n' +
        'Examples:\n' +
        '  sidekey inject -f deploy.yaml | kubectl diff -f -\n' +
        '  sidekey inject -f pod.yaml -o json --kube-version 1.28\n' +
        '  sidekey inject -f pod.yaml --patch',
    )
    .action(
      async (opts: {
        file: string;
        patch?: boolean;
        config?: string;
        kubeVersion?: string;
        namespace?: string;
        output?: string;
      }) => {
        const { runInject } = await import('../../webhook/inject-cli.js');
        runInject(opts, {
          stdout: (s) => process.stdout.write(s),
          stderr: (s) => process.stderr.write(s),
          readStdin: () => readFileSync(0, 'utf8'),
        });
      },
    );
}
