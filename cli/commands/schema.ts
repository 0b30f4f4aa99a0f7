import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('schema')
    .description('print the JSON Schema of the sidekey.yaml / SIDEKEY_SPEC document')
    .action(async () => {
      const { specJsonSchema } = await import('../../src/spec.js');
      process.stdout.write(`${JSON.stringify(specJsonSchema(), null, 2)}\n`);
    });
}
