import type { Command } from 'commander';

/** `sidekey dev [-c sidekey.yaml] [-o dir]`: local file-mode (see sidecar/dev.ts). */
export function register(program: Command): void {
  program
    .command('dev')
    .description('render a spec into a local directory and keep it current while its file: sources change')
    .option('-c, --config <file>', 'spec file', 'sidekey.yaml')
    .option('-o, --output <dir>', 'output directory (default: output.dir of the spec)')
    .action(async (opts: { config?: string; output?: string }) => {
      const { runDev } = await import('../../sidecar/dev.js');
      const { exitProcess } = await import('../../sidecar/common.js');
      await exitProcess(await runDev(opts));
    });
}
