import type { Command } from 'commander';
import { SkError } from '../../src/errors.js';

// Placeholder: replaced by the owner of `sidekey webhook`.
export function register(program: Command): void {
  program
    .command('webhook')
    .description('(not yet implemented)')
    .allowUnknownOption()
    .action(() => {
      throw new SkError('SK_ERR_INTERNAL', '`sidekey webhook` is not implemented yet');
    });
}
