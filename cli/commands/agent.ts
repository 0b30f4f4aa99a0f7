import type { Command } from 'commander';

/** `sidekey agent [-c file] [--once] [--probe]`: the injected container (see sidecar/agent.ts). */
export function register(program: Command): void {
  program
    .command('agent')
    .description(
      'fetch, render and write the secrets of a spec, then keep them current (the injected container)',
    )
    .option('-c, --config <file>', 'spec file (YAML/JSON); default: the SIDEKEY_SPEC environment variable')
    .option('--once', 'fetch and write everything once, then exit (init container)')
    .option('--probe', 'exit 0 only once the first complete write is done (startup probe)')
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 1 run-time failure, 2 invalid spec. Logs are JSON lines on stderr.',
    )
    .action(agentAction);
}

/**
 * The action of `sidekey agent`; cli/main.ts also calls it directly (without commander) when the
 * arguments are plain agent options, so that the injected container starts with the least code.
 */
export async function agentAction(opts: { config?: string; once?: boolean; probe?: boolean }): Promise<void> {
  // The probe runs often inside the agent's container: it loads only what it needs.
  if (opts.probe) {
    const { runProbe } = await import('../../sidecar/probe.js');
    process.exitCode = await runProbe(opts);
    return;
  }
  const { runAgent } = await import('../../sidecar/agent.js');
  const { exitProcess } = await import('../../sidecar/common.js');
  await exitProcess(await runAgent(opts));
}
