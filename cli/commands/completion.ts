import type { Command } from 'commander';
import { SkError } from '../../src/errors.js';

/** `sidekey completion bash|zsh|fish`: a completion script generated from the commands (cli/completion.ts). */
export function register(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script: bash, zsh or fish')
    .argument('<shell>', 'bash, zsh or fish')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  source <(sidekey completion bash)                                   bash (~/.bashrc)\n' +
        '  source <(sidekey completion zsh)                                    zsh, after compinit (~/.zshrc)\n' +
        '  sidekey completion fish > ~/.config/fish/completions/sidekey.fish  fish',
    )
    .action(async (shell: string) => {
      const { SHELLS, model } = await import('../completion.js');
      const gen = SHELLS[shell as keyof typeof SHELLS];
      if (!gen) {
        throw new SkError('SK_ERR_CLI_USAGE', `completion ${shell}: use bash, zsh or fish`, {
          where: 'shell',
        });
      }
      process.stdout.write(gen(model(program)));
    });
}
