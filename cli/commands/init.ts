import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { SkError } from '../../src/errors.js';

/** The starter spec `sidekey init` writes; its one secret reads the local file written beside it. */
export const STARTER_SPEC = `# sidekey spec (docs/spec.md). \`sidekey dev\` renders it into output.dir and keeps it current;
# \`sidekey run -- <command>\` also starts your app with DB_PASSWORD_FILE pointing at the file.
# In a pod, the webhook builds the same document from sidekey.io/ annotations.
apiVersion: sidekey.io/v1
kind: SecretSpec
metadata:
  name: my-app
output:
  # Relative to this file. Keep it out of version control.
  dir: .sidekey-out
  defaultMode: "0440"
secrets:
  # .sidekey-out/db-password; your app reads $DB_PASSWORD_FILE instead of $DB_PASSWORD.
  db-password:
    ref: file:secrets.local.yaml#db.password
    env: DB_PASSWORD
  # More backends: vault:secret/data/app#password, aws:prod/app#password, k8s:app-db#password
  # (docs/providers.md). \`sidekey schema\` prints the JSON Schema of this file.
`;

export const STARTER_SECRETS = `# Local development values for sidekey.yaml (file: refs). Never commit real secrets.
db:
  password: change-me
`;

/**
 * The spec file `dev`/`run` need; a missing one is a usage error with the way out (-c, or init).
 * Exported for those commands.
 */
export function requireSpecFile(file: string): void {
  if (existsSync(file)) return;
  throw new SkError(
    'SK_ERR_SPEC_PARSE',
    `${file}: no such spec file: pass -c <file>, or run \`sidekey init\` to write a starter ${file}`,
    { where: file },
  );
}

/** `sidekey init [-c sidekey.yaml] [--force]`: a starter spec plus the local secrets file it reads. */
export function register(program: Command): void {
  program
    .command('init')
    .description('write a starter sidekey.yaml (and the local secrets file it reads) for sidekey dev/run')
    .option('-c, --config <file>', 'spec file to write', 'sidekey.yaml')
    .option('--force', 'overwrite an existing spec file')
    .addHelpText(
      'after',
      '\nExamples:\n' + '  sidekey init && sidekey dev\n' + '  sidekey init -c deploy/sidekey.yaml',
    )
    .action((opts: { config: string; force?: boolean }) => {
      if (existsSync(opts.config) && !opts.force) {
        throw new SkError('SK_ERR_CLI_USAGE', `${opts.config} exists: pass --force to overwrite it`, {
          where: opts.config,
        });
      }
      const secrets = path.join(path.dirname(opts.config), 'secrets.local.yaml');
      writeFileSync(opts.config, STARTER_SPEC);
      // Never overwrite values someone already put there.
      const wroteSecrets = !existsSync(secrets);
      if (wroteSecrets) writeFileSync(secrets, STARTER_SECRETS, { mode: 0o600 });
      process.stdout.write(
        `wrote ${opts.config}${wroteSecrets ? ` and ${secrets}` : ''}\n` +
          `next: sidekey dev${opts.config === 'sidekey.yaml' ? '' : ` -c ${opts.config}`}   (or: sidekey run -- <your command>)\n`,
      );
    });
}
