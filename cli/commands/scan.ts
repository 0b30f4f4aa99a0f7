import type { Command } from 'commander';
import { SkError } from '../../src/errors.js';

// Placeholder: replaced by the owner of `sidekey scan`.
export function register(program: Command): void {
  program
    .command('scan')
    .description('(not yet implemented)')
    .allowUnknownOption()
    .action(() => {
      throw new SkError('SK_ERR_INTERNAL', '`sidekey scan` is not implemented yet');
    });
}
