import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { MigrateCliOptions } from '../../src/migrate/cli.js';

/** `sidekey migrate -f <file>`: env-var secrets → sidekey annotations + *_FILE (src/migrate/cli.ts). */
export function register(program: Command): void {
  const cmd = program
    .command('migrate')
    .description('rewrite manifests from env-var secrets to sidekey annotations (the app gets VAR_FILE)')
    .requiredOption('-f, --file <file>', 'manifest file (YAML or JSON, multi-document); - for stdin')
    .option(
      '--to <mapping>',
      "ref template for another backend, e.g. 'vault:secret/data/{namespace}/{secret}#{key}'",
    )
    .option('--dry-run', 'print a unified diff instead of the rewritten manifests; write nothing')
    .option('--output-file <file>', 'write the rewritten manifests to this file (default: stdout)')
    .option('-n, --namespace <ns>', 'namespace of manifests that name none (for {namespace} and the RBAC)')
    .option('--cluster', 'read key names of envFrom Secrets from the cluster (current kubeconfig)')
    .option('--rbac-out <file>', 'write the Role/RoleBinding for k8s: refs to this file (default: stderr)');
  // Before -o meant the output format everywhere else, migrate took the file there.
  cmd.addOption(cmd.createOption('-o, --output <file>', 'deprecated: --output-file').hideHelp());
  cmd
    .addHelpText(
      'after',
      '\nComments and layout of the input are kept; running it twice changes nothing more. Notes (literal\n' +
        'secrets, envFrom Secrets with unknown keys, conflicts) go to stderr, never with values.',
    )
    .action(async (opts: MigrateCliOptions & { outputFile?: string }) => {
      const { runMigrate } = await import('../../src/migrate/cli.js');
      const { deprecatedAlias } = await import('../../src/cli-output.js');
      const { outputFile, ...rest } = opts;
      const output = deprecatedAlias(outputFile, opts.output, '-o/--output <file>', '--output-file');
      process.exitCode = await runMigrate(
        { ...rest, output },
        {
          stdout: (s) => process.stdout.write(s),
          stderr: (s) => process.stderr.write(s),
          readStdin: () => readFileSync(0, 'utf8'),
        },
      );
    });
}
