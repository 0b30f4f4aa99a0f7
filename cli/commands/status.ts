import type { Command } from 'commander';

/** `sidekey status [--dir <dir>] [-o table|json|yaml]`: the agent's status file (see sidecar/status.ts). */
export function register(program: Command): void {
  program
    .command('status')
    .description("show what the agent holds: its status file's secrets, versions, ages and last errors")
    .option(
      '--dir <dir>',
      "the agent's output directory (default: output.dir of the spec, else /run/sidekey)",
    )
    .option('-c, --config <file>', 'spec file to take output.dir from (default: SIDEKEY_SPEC)')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .addHelpText(
      'after',
      '\nIn a pod: kubectl exec <pod> -c sidekey-agent -- sidekey status\n' +
        'Prints names, files, versions, ages and SK_ERR codes; never a secret value.',
    )
    .action(async (opts: { dir?: string; config?: string; output?: string }) => {
      const { runStatus } = await import('../../sidecar/status.js');
      process.exitCode = await runStatus(opts);
    });
}
