import type { Command, Option } from 'commander';

/**
 * Shell completion scripts for bash, zsh and fish, generated from the commander program itself, so
 * every command and option the CLI has is completed and nothing it lacks. Values: files for options
 * whose argument is a <file>, <dir> or <path>; the listed choices for options whose description ends
 * in "a, b or c" (-o formats, --fail-on levels).
 */

interface Opt {
  short?: string;
  long?: string;
  description: string;
  takesValue: boolean;
  files: boolean;
  choices: string[];
}

interface Cmd {
  name: string;
  description: string;
  options: Opt[];
}

/** "table, json or yaml" (also after a colon: "…: high, medium or low") → its words. */
export function choicesOf(description: string): string[] {
  const list = /^([a-z][\w-]*)((?:, [a-z][\w-]*)*),? or ([a-z][\w-]*)(?:$|[;(])/;
  const tail = description.includes(': ') ? description.slice(description.lastIndexOf(': ') + 2) : '';
  const m = list.exec(description.trim()) ?? list.exec(tail.trim());
  if (!m) return [];
  return [m[1]!, ...(m[2] ? m[2].split(', ').filter(Boolean) : []), m[3]!];
}

function opt(o: Option): Opt {
  const arg = /<([^>]+)>|\[([^\]]+)\]/.exec(o.flags);
  const argName = arg?.[1] ?? arg?.[2] ?? '';
  return {
    ...(o.short ? { short: o.short } : {}),
    ...(o.long ? { long: o.long } : {}),
    description: o.description,
    takesValue: o.required || o.optional,
    files: /file|dir|path/.test(argName),
    choices: o.required || o.optional ? choicesOf(o.description) : [],
  };
}

/** The program's visible commands and options (hidden ones, e.g. deprecated aliases, are left out). */
export function model(program: Command): Cmd[] {
  return program.commands
    .filter((c) => !(c as unknown as { _hidden?: boolean })._hidden)
    .map((c) => ({
      name: c.name(),
      description: c.description(),
      options: [
        ...c.options.filter((o) => !o.hidden).map(opt),
        {
          long: '--help',
          short: '-h',
          description: 'show help',
          takesValue: false,
          files: false,
          choices: [],
        },
      ],
    }));
}

const flags = (o: Opt) => [o.short, o.long].filter((f): f is string => !!f);

export function bash(cmds: Cmd[]): string {
  const cases = cmds.map((c) => {
    const valued = c.options.filter((o) => o.takesValue);
    const prevCases = valued
      .map((o) => {
        const reply = o.choices.length
          ? `COMPREPLY=($(compgen -W "${o.choices.join(' ')}" -- "$cur"))`
          : o.files
            ? `COMPREPLY=($(compgen -f -- "$cur"))`
            : 'COMPREPLY=()';
        return `        ${flags(o).join('|')}) ${reply}; return ;;`;
      })
      .join('\n');
    const words = c.options.flatMap(flags).join(' ');
    return `    ${c.name})
      case "$prev" in
${prevCases || '        --) ;;'}
      esac
      COMPREPLY=($(compgen -W "${words}" -- "$cur")) ;;`;
  });
  return `# bash completion for sidekey. Load it with:
#   source <(sidekey completion bash)        (e.g. in ~/.bashrc)
_sidekey() {
  local cur prev cmd i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  cmd=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in
      -*) ;;
      *) cmd="\${COMP_WORDS[i]}"; break ;;
    esac
  done
  if [[ -z "$cmd" ]]; then
    COMPREPLY=($(compgen -W "${cmds.map((c) => c.name).join(' ')} --help --version" -- "$cur"))
    return
  fi
  case "$cmd" in
${cases.join('\n')}
  esac
}
complete -o default -F _sidekey sidekey
`;
}

/** Text inside zsh's `[description]` and single quotes. */
function zshText(s: string): string {
  return s.replace(/[[\]:]/g, ' ').replace(/'/g, "'\\''");
}

export function zsh(cmds: Cmd[]): string {
  const list = cmds.map((c) => `    '${c.name}:${zshText(c.description)}'`).join('\n');
  const cases = cmds.map((c) => {
    const specs = c.options.flatMap((o) => {
      const action = !o.takesValue
        ? ''
        : o.choices.length
          ? `:value:(${o.choices.join(' ')})`
          : o.files
            ? ':file:_files'
            : ':value: ';
      return flags(o).map((f) => `'${f}[${zshText(o.description)}]${action}'`);
    });
    return `    ${c.name})\n      _arguments ${specs.join(' \\\n        ')} '*:file:_files' ;;`;
  });
  return `#compdef sidekey
# zsh completion for sidekey. Load it with (after compinit):
#   source <(sidekey completion zsh)         (e.g. in ~/.zshrc)
# or save it as _sidekey in a directory of your $fpath.
_sidekey() {
  local -a commands
  commands=(
${list}
  )
  if (( CURRENT == 2 )); then
    _describe 'command' commands
    return
  fi
  local cmd=$words[2]
  shift words
  (( CURRENT-- ))
  case $cmd in
${cases.join('\n')}
  esac
}
if [[ "\${zsh_eval_context[-1]}" == loadautofunc ]]; then
  _sidekey "$@"
else
  compdef _sidekey sidekey
fi
`;
}

function fishText(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
}

export function fish(cmds: Cmd[]): string {
  const lines = [
    '# fish completion for sidekey. Load it with:',
    '#   sidekey completion fish > ~/.config/fish/completions/sidekey.fish',
    'complete -c sidekey -f',
    "complete -c sidekey -n __fish_use_subcommand -l help -s h -d 'show help'",
    "complete -c sidekey -n __fish_use_subcommand -l version -s V -d 'print the version'",
  ];
  for (const c of cmds) {
    lines.push(`complete -c sidekey -n __fish_use_subcommand -a ${c.name} -d '${fishText(c.description)}'`);
    for (const o of c.options) {
      const parts = [`complete -c sidekey -n '__fish_seen_subcommand_from ${c.name}'`];
      if (o.short) parts.push(`-s ${o.short.replace(/^-/, '')}`);
      if (o.long) parts.push(`-l ${o.long.replace(/^--/, '')}`);
      if (o.takesValue) {
        if (o.choices.length) parts.push(`-x -a '${o.choices.join(' ')}'`);
        else if (o.files) parts.push('-r -F');
        else parts.push('-x');
      }
      parts.push(`-d '${fishText(o.description)}'`);
      lines.push(parts.join(' '));
    }
  }
  return `${lines.join('\n')}\n`;
}

export const SHELLS = { bash, zsh, fish } as const;
