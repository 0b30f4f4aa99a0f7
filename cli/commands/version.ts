import type { Command } from 'commander';

/** `sidekey version [-o table|json|yaml]`: version, commit and Node runtime (src/version.ts). */
export function register(program: Command): void {
  program
    .command('version')
    .description('print the version, the commit it was built from and the Node.js runtime')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .action(async (opts: { output?: string }) => {
      const { versionInfo } = await import('../../src/version.js');
      const { outputFormat, structured } = await import('../../src/cli-output.js');
      const format = outputFormat(opts.output, ['table', 'json', 'yaml'] as const, 'table');
      const v = versionInfo();
      process.stdout.write(
        format === 'table'
          ? `sidekey ${v.version}\ncommit:   ${v.commit}\nnode:     ${v.node}\nplatform: ${v.platform}\n`
          : await structured(v, format),
      );
    });
}
