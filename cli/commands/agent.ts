import type { Command } from 'commander';
import { SkError } from '../../src/errors.js';

// Placeholder: replaced by the owner of `sidekey agent`.
export function register(program: Command): void {
  program
    .command('agent')
    .description('(not yet implemented)')
    .allowUnknownOption()
    .action(() => {
      throw new SkError('SK_ERR_INTERNAL', '`sidekey agent` is not implemented yet');
    });
}
