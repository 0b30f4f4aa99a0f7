import { SkError } from './errors.js';

/**
 * What every command's `-o, --output <format>` means: the format of the result it prints, never a
 * file or directory (those have their own flags). Commands offer `table` (or their own human form)
 * plus `json` and `yaml`; the structured forms carry the same document.
 */
export type OutputFormat = 'table' | 'json' | 'yaml';

/** Check `-o`; the error lists what this command accepts. */
export function outputFormat<T extends string>(
  value: string | undefined,
  allowed: readonly T[],
  fallback: T,
): T {
  const v = value ?? fallback;
  if (!(allowed as readonly string[]).includes(v)) {
    throw new SkError('SK_ERR_CLI_USAGE', `-o ${v}: use ${allowed.join(', ')}`, { where: '-o' });
  }
  return v as T;
}

/** A document as `json` (2-space, newline-terminated) or `yaml`. */
export async function structured(doc: unknown, format: 'json' | 'yaml'): Promise<string> {
  if (format === 'json') return `${JSON.stringify(doc, null, 2)}\n`;
  const YAML = (await import('yaml')).default;
  return YAML.stringify(doc, { lineWidth: 0 });
}

/**
 * Whether to colour what goes to `stream`: only a terminal, and never with NO_COLOR set (any
 * non-empty value, no-color.org) or TERM=dumb. FORCE_COLOR (non-empty, not 0) forces it on.
 */
export function useColor(
  stream: { isTTY?: boolean } = process.stdout,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  if (env.NO_COLOR) return false;
  if (env.FORCE_COLOR && env.FORCE_COLOR !== '0') return true;
  return stream.isTTY === true && env.TERM !== 'dumb';
}

const SGR = { bold: [1, 22], red: [31, 39], yellow: [33, 39], green: [32, 39], dim: [2, 22] } as const;
export type Style = keyof typeof SGR;

/** A painter that styles text when `on`, and returns it unchanged otherwise. */
export function painter(on: boolean): (style: Style, text: string) => string {
  return (style, text) => (on ? `\x1b[${SGR[style][0]}m${text}\x1b[${SGR[style][1]}m` : text);
}

/**
 * Deprecated spelling of a renamed flag: the value of the old one (with a warning on stderr) when
 * only it is given. Both given: the new one wins, with the same warning.
 */
export function deprecatedAlias<T>(
  current: T | undefined,
  old: T | undefined,
  oldName: string,
  newName: string,
  warn: (line: string) => void = (l) => void process.stderr.write(l),
): T | undefined {
  if (old === undefined) return current;
  warn(`warn: ${oldName} is deprecated here and will be removed: use ${newName}\n`);
  return current ?? old;
}
