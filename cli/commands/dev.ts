import type { Command } from 'commander';

/** `sidekey dev [-c sidekey.yaml] [--output-dir dir]`: local file-mode (see sidecar/dev.ts). */
export function register(program: Command): void {
  const cmd = program
    .command('dev')
    .description('render a spec into a local directory and keep it current while its file: sources change')
    .option('-c, --config <file>', 'spec file', 'sidekey.yaml')
    .option('--output-dir <dir>', 'output directory (default: output.dir of the spec)');
  // Before -o meant the output format everywhere else, dev took the directory there.
  cmd.addOption(cmd.createOption('-o, --output <dir>', 'deprecated: --output-dir').hideHelp());
  cmd
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  sidekey init                      write a starter sidekey.yaml (and a local secrets file)\n' +
        '  sidekey dev                       render ./sidekey.yaml into its output.dir, watch its sources\n' +
        '  sidekey dev -c deploy/sidekey.yaml --output-dir /tmp/secrets',
    )
    .action(async (opts: { config?: string; output?: string; outputDir?: string }) => {
      const { deprecatedAlias } = await import('../../src/cli-output.js');
      const { requireSpecFile } = await import('./init.js');
      const { runDev } = await import('../../sidecar/dev.js');
      const { exitProcess } = await import('../../sidecar/common.js');
      requireSpecFile(opts.config ?? 'sidekey.yaml');
      const output = deprecatedAlias(opts.outputDir, opts.output, '-o/--output <dir>', '--output-dir');
      await exitProcess(await runDev({ config: opts.config, output }));
    });
}
