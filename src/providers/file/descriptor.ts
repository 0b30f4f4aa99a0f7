import path from 'node:path';
import { z } from 'zod';
import { refSyntaxError, type SecretRef } from '../../refs.js';
import { defineBackend } from '../backend.js';

/** How a file is parsed; `?parse=` on the ref overrides the guess from the file name. */
export const FILE_PARSE_MODES = ['yaml', 'json', 'env', 'none'] as const;
export type FileParseMode = (typeof FILE_PARSE_MODES)[number];

export const fileSettings = z
  .object({
    /** Base directory for relative `file:` refs; default: the directory of the spec file. */
    baseDir: z.string().optional(),
  })
  .strict();
export type FileSettings = z.output<typeof fileSettings>;

/** `file:<path>[?parse=yaml|json|env|none][#key]`: syntax only. */
function validateRef(ref: SecretRef, where: string): void {
  const fail = (why: string): never => {
    throw refSyntaxError(where, why);
  };
  if (ref.locator.includes('\0')) fail('contains a NUL byte');
  for (const [k, v] of Object.entries(ref.options)) {
    if (k !== 'parse') fail(`has an unknown option (file: accepts ?parse=${FILE_PARSE_MODES.join('|')})`);
    if (!(FILE_PARSE_MODES as readonly string[]).includes(v)) {
      fail(`has a ?parse= that is not one of ${FILE_PARSE_MODES.join(', ')}`);
    }
  }
}

/** `file:` — local files and directories (the laptop's file mode, mounted Secrets/ConfigMaps). */
export const fileBackend = defineBackend({
  name: 'file',
  title: 'local files and directories (YAML, JSON, dotenv, raw)',
  validateRef,
  settings: fileSettings,
  annotations: [],
  clusterDefaults: [],
  // Relative refs resolve against the spec file's directory unless `baseDir` says otherwise.
  resolve: (s, { baseDir }) => ({ ...s, baseDir: path.resolve(baseDir, s?.baseDir ?? '.') }),
  load: async () => (await import('./index.js')).fileProvider,
});
