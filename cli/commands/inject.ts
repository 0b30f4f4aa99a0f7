import type { Command } from 'commander';
import { SkError } from '../../src/errors.js';

// Placeholder: replaced by the owner of `sidekey inject`.
export function register(program: Command): void {
  program
    .command('inject')
    .description('(not yet implemented)')
    .allowUnknownOption()
    .action(() => {
      throw new SkError('SK_ERR_INTERNAL', '`sidekey inject` is not implemented yet');
    });
}
