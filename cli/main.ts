import { Command, CommanderError } from 'commander';
import { EXIT_INVALID_INPUT, EXIT_RUNTIME, isSkError } from '../src/errors.js';

/**
 * The `sidekey` CLI. Each command lives in cli/commands/<name>.ts and exports `register(program)`;
 * a command file only declares options and imports its implementation lazily inside the action, so
 * `sidekey agent` never loads the webhook (or the AWS SDK when no aws: ref is used).
 */
const COMMANDS = ['agent', 'dev', 'run', 'webhook', 'inject', 'scan', 'migrate', 'schema'] as const;

export async function main(argv: string[]): Promise<number> {
  const program = new Command('sidekey')
    .description('Secrets out of environment variables, into files on tmpfs.')
    .version(process.env.SIDEKEY_VERSION ?? '0.1.0')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  for (const name of COMMANDS) {
    const mod = (await import(`./commands/${name}.ts`)) as { register(p: Command): void };
    mod.register(program);
  }
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    return reportFatal(e);
  }
}

/** Print one line (never a stack trace) and map to an exit code. */
export function reportFatal(e: unknown): number {
  if (e instanceof CommanderError) {
    if (e.exitCode === 0) return 0;
    return EXIT_INVALID_INPUT;
  }
  if (isSkError(e)) {
    process.stderr.write(`${e.code}: ${e.message}\n`);
    return e.kind === 'input' ? EXIT_INVALID_INPUT : EXIT_RUNTIME;
  }
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`SK_ERR_INTERNAL: ${msg.split('\n')[0]}\n`);
  if (process.env.SIDEKEY_DEBUG) console.error(e);
  return EXIT_RUNTIME;
}

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.exitCode = reportFatal(e);
  },
);
