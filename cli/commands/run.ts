import type { Command } from 'commander';

/** `sidekey run [-c sidekey.yaml] [-o dir] -- <cmd> [args…]` (see sidecar/run.ts). */
export function register(program: Command): void {
  // Options after the command belong to the command (`sidekey run node -e …`), which commander allows
  // only with positional options on the program; the program itself has no options but --version/--help.
  program.enablePositionalOptions();
  const cmd = program
    .command('run')
    .description(
      'render a spec, start a command with <ENV>_FILE variables pointing at the files, keep them current',
    )
    .argument('<command...>', 'the command and its arguments (after --)')
    .option('-c, --config <file>', 'spec file', 'sidekey.yaml')
    .option(
      '--output-dir <dir>',
      'output directory (default: output.dir of the spec, else a private temp dir)',
    );
  // Before -o meant the output format everywhere else, run took the directory there.
  cmd.addOption(cmd.createOption('-o, --output <dir>', 'deprecated: --output-dir').hideHelp());
  cmd
    .passThroughOptions()
    .addHelpText(
      'after',
      '\nThe command gets <ENV>_FILE for each secret with env (else SIDEKEY_<NAME>_FILE) and SIDEKEY_DIR.\n' +
        'sidekey exits with the exit code of the command (128+signal if it was killed).\n\n' +
        'Examples:\n' +
        '  sidekey run -- node server.js\n' +
        '  sidekey run -c deploy/sidekey.yaml -- ./start.sh --port 8080',
    )
    .action(async (command: string[], opts: { config?: string; output?: string; outputDir?: string }) => {
      const { deprecatedAlias } = await import('../../src/cli-output.js');
      const { requireSpecFile } = await import('./init.js');
      const { runCommand } = await import('../../sidecar/run.js');
      const { exitProcess } = await import('../../sidecar/common.js');
      requireSpecFile(opts.config ?? 'sidekey.yaml');
      const output = deprecatedAlias(opts.outputDir, opts.output, '-o/--output <dir>', '--output-dir');
      await exitProcess(await runCommand(command, { config: opts.config, output }));
    });
}
