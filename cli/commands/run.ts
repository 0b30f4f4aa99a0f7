import type { Command } from 'commander';
import { SkError } from '../../src/errors.js';

// Placeholder: replaced by the owner of `sidekey run`.
export function register(program: Command): void {
  program
    .command('run')
    .description('(not yet implemented)')
    .allowUnknownOption()
    .action(() => {
      throw new SkError('SK_ERR_INTERNAL', '`sidekey run` is not implemented yet');
    });
}
