import type { Command } from 'commander';

/** `sidekey run [-c sidekey.yaml] [-o dir] -- <cmd> [args…]` (see sidecar/run.ts). */
export function register(program: Command): void {
  // Options after the command belong to the command (`sidekey run node -e …`), which commander allows
  // only with positional options on the program; the program itself has no options but --version/--help.
  program.enablePositionalOptions();
  program
    .command('run')
    .description(
      'render a spec, start a command with <ENV>_FILE variables pointing at the files, keep them current',
    )
    .argument('<command...>', 'the command and its arguments (after --)')
    .option('-c, --config <file>', 'spec file', 'sidekey.yaml')
    .option(
      '-o, --output <dir>',
      'output directory (default: output.dir of the spec, else a private temp dir)',
    )
    .passThroughOptions()
    .addHelpText(
      'after',
      '\nThe command gets <ENV>_FILE for each secret with env (else SIDEKEY_<NAME>_FILE) and SIDEKEY_DIR.\n' +
        'sidekey exits with the exit code of the command (128+signal if it was killed).',
    )
    .action(async (command: string[], opts: { config?: string; output?: string }) => {
      const { runCommand } = await import('../../sidecar/run.js');
      const { exitProcess } = await import('../../sidecar/common.js');
      await exitProcess(await runCommand(command, opts));
    });
}
