import v8 from 'node:v8';
import type { Command } from 'commander';
import { AGENT_V8_FLAGS } from '../sidecar/v8-flags.js';
import { EXIT_INVALID_INPUT, EXIT_RUNTIME, isSkError } from '../src/errors.js';

/**
 * The `sidekey` CLI. Each command lives in cli/commands/<name>.ts and exports `register(program)`;
 * a command file only declares options and imports its implementation lazily inside the action, so
 * `sidekey agent` never loads the webhook (or the AWS SDK when no aws: ref is used).
 *
 * `sidekey agent` with plain options (the injected container's command) skips commander and the
 * other commands' modules altogether: see {@link agentFastPath}. Everything else, including any
 * unusual spelling of the agent's options, goes through commander.
 */
/**
 * Deprecation warnings Node prints for what bundled dependencies do, not for what sidekey does:
 * node-fetch 2 (under @kubernetes/client-node) calls `url.parse()`. Node only warns when the caller
 * is outside node_modules, which bundled code always is; on stderr the line would break the agent's
 * JSON-only output and the CLI's one-line errors. Exactly these codes are dropped; every other
 * warning is printed as before.
 */
const DEPENDENCY_DEPRECATIONS: ReadonlySet<string> = new Set(['DEP0169']);
const emitWarning = process.emitWarning;
process.emitWarning = function (this: unknown, warning: string | Error, ...rest: unknown[]) {
  const [typeOrOptions, code] = rest;
  const c =
    typeOrOptions !== null && typeof typeOrOptions === 'object'
      ? (typeOrOptions as { code?: unknown }).code
      : code;
  if (typeof c === 'string' && DEPENDENCY_DEPRECATIONS.has(c)) return;
  return (emitWarning as (...a: unknown[]) => void).call(this, warning, ...rest);
} as typeof process.emitWarning;

const COMMANDS = [
  'init',
  'dev',
  'run',
  'agent',
  'status',
  'webhook',
  'check-webhook',
  'inject',
  'explain',
  'scan',
  'migrate',
  'schema',
  'version',
  'completion',
] as const;

/** Root `--help`: what people type first. */
const ROOT_HELP = `
Examples:
  sidekey init && sidekey dev                 a starter sidekey.yaml, rendered into files and kept current
  sidekey run -- node server.js               start an app with <ENV>_FILE pointing at its secret files
  sidekey scan -A                             find secrets in environment variables across the cluster
  sidekey migrate -f deploy.yaml --dry-run    what moving them to sidekey annotations changes
  sidekey inject -f pod.yaml                  preview what the webhook does to a pod
  sidekey explain deployment/shop -n shop     why a pod is (not) injected, and what its agent fetches
  kubectl exec <pod> -c sidekey-agent -- sidekey status    what an agent holds (never values)
  sidekey check-webhook -n shop               does the installed webhook answer?
  source <(sidekey completion bash)           shell completion (bash, zsh, fish)

-o/--output is always the format of what a command prints (table, json, yaml); files and
directories have their own flags (--output-file, --output-dir). Colour only on a terminal and
never with NO_COLOR set. Docs: https://github.com/sidekey/sidekey/tree/main/docs`;

export async function main(argv: string[]): Promise<number> {
  const args = argv.slice(2);
  try {
    if (args[0] === 'agent') {
      // The agent is mostly idle and runs in every pod: without V8's optimising compilers it keeps
      // less resident memory at no measurable start-up cost (docs/agent.md, "Start-up and memory"). Not
      // `--lite-mode`: it implies jitless, and Node's fetch (undici) compiles WebAssembly, which then
      // aborts the process on the first backend request (test/unit/sidecar/v8-flags.test.ts).
      for (const flag of AGENT_V8_FLAGS) v8.setFlagsFromString(flag);
      const opts = agentFastPath(args.slice(1));
      if (opts) {
        const { agentAction } = await import('./commands/agent.ts');
        await agentAction(opts);
        return typeof process.exitCode === 'number' ? process.exitCode : 0;
      }
    }
    const { Command } = await import('commander');
    const { VERSION } = await import('../src/version.ts');
    const { useColor, painter } = await import('../src/cli-output.ts');
    // Help is styled always; commander strips the styles unless the stream has colours (below).
    const paint = painter(true);
    const program: Command = new Command('sidekey')
      .description('Secrets out of environment variables, into files on tmpfs.')
      .version(VERSION)
      .exitOverride()
      .configureOutput({
        writeErr: (s) => process.stderr.write(s),
        // One rule for colour (src/cli-output.ts): a terminal, and never with NO_COLOR.
        getOutHasColors: () => useColor(process.stdout),
        getErrHasColors: () => useColor(process.stderr),
      })
      .configureHelp({
        styleTitle: (t) => paint('bold', t),
        styleCommandText: (t) => paint('bold', t),
      })
      .addHelpText('after', ROOT_HELP);
    for (const name of COMMANDS) {
      const mod = (await import(`./commands/${name}.ts`)) as { register(p: Command): void };
      mod.register(program);
    }
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    return reportFatal(e);
  }
}

/**
 * The options of `sidekey agent …` when every argument is one commander would read the same way:
 * `--once`, `--probe`, `-c <file>`, `--config <file>` or `--config=<file>`, each at most once, the
 * file not starting with `-`. Anything else (help, unknown or repeated options) returns undefined, and
 * commander parses it and reports errors as usual.
 */
export function agentFastPath(
  args: readonly string[],
): { config?: string; once?: true; probe?: true } | undefined {
  const opts: { config?: string; once?: true; probe?: true } = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if ((a === '--once' || a === '--probe') && opts[a === '--once' ? 'once' : 'probe'] === undefined) {
      opts[a === '--once' ? 'once' : 'probe'] = true;
      continue;
    }
    if (opts.config !== undefined) return undefined;
    let file: string | undefined;
    if (a === '-c' || a === '--config') file = args[++i];
    else if (a.startsWith('--config=')) file = a.slice('--config='.length);
    if (file === undefined || file === '' || file.startsWith('-')) return undefined;
    opts.config = file;
  }
  return opts;
}

/** Print one line (never a stack trace) and map to an exit code. */
export function reportFatal(e: unknown): number {
  // A CommanderError (its codes all start with `commander.`), recognised without loading commander.
  if (e instanceof Error && typeof (e as { code?: unknown }).code === 'string') {
    const { code, exitCode } = e as Error & { code: string; exitCode?: unknown };
    if (code.startsWith('commander.') && typeof exitCode === 'number') {
      return exitCode === 0 ? 0 : EXIT_INVALID_INPUT;
    }
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
