/**
 * `queuectl completions bash|zsh|fish`: prints a shell completion script,
 * generated from the command table so that it never falls behind the CLI.
 * It completes command words and subcommands, each command's options, the
 * values of `--state` (the job states), config keys for `config get/set`,
 * shell names for `completions`, files for `--db`, `--file` and `--log`,
 * and directories for `--cwd`. Nothing is read from the queue, so
 * completing never opens the database.
 *
 * @module
 */

import { CONFIG_KEYS } from "../../config.ts";
import { UsageError } from "../../errors.ts";
import { DELETABLE_STATES, JOB_STATES, PURGEABLE_STATES } from "../../states.ts";
import type { OptionSpec } from "../args.ts";
import { type CommandDefinition, COMMANDS, GLOBAL_OPTIONS, LEADING_OPTIONS } from "../commands.ts";
import type { CommandContext } from "../context.ts";
import { writeOut } from "../output.ts";

/** The shells a script can be generated for. */
export const SHELLS = ["bash", "zsh", "fish"] as const;

/** A shell a script can be generated for. */
export type Shell = typeof SHELLS[number];

/** Options that name a file, and one that names a directory. */
const FILE_OPTIONS = new Set(["db", "file", "log"]);
const DIRECTORY_OPTIONS = new Set(["cwd"]);

/** The states `--state` accepts, where a command accepts fewer than all of them. */
const STATES_BY_COMMAND: Record<string, readonly string[]> = {
  delete: DELETABLE_STATES,
  purge: PURGEABLE_STATES,
};

/** Words the scripts embed unquoted: fail loudly if the table ever holds anything else. */
const SAFE_WORD = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;

function safe(word: string): string {
  if (!SAFE_WORD.test(word)) throw new Error(`completions: unsafe word in command table: ${word}`);
  return word;
}

/** One command as the generators see it. */
interface CommandInfo {
  /** The words that name it, joined by a space, e.g. `worker start`. */
  name: string;
  def: CommandDefinition;
  /** Its options and the global ones, as `queuectl <command> --help` lists them. */
  options: [string, OptionSpec][];
  /** Words its first argument takes, if known. */
  firstArgs?: readonly string[];
}

/** The command table, read once for the generators. */
interface Model {
  /** First command words, in help order. */
  words: string[];
  /** Command words that need a subcommand, with their subcommands. */
  groups: Map<string, CommandDefinition[]>;
  commands: CommandInfo[];
}

function buildModel(): Model {
  const words = [...new Set(COMMANDS.map((def) => safe(def.path[0])))];
  const groups = new Map<string, CommandDefinition[]>();
  for (const word of words) {
    const family = COMMANDS.filter((def) => def.path[0] === word);
    if (!family.some((def) => def.path.length === 1)) groups.set(word, family);
  }
  const commands = COMMANDS.map((def): CommandInfo => {
    const name = def.path.map(safe).join(" ");
    const options = Object.entries({ ...def.options, ...GLOBAL_OPTIONS });
    for (const [option, spec] of options) {
      safe(option);
      if (spec.short) safe(spec.short);
    }
    let firstArgs: readonly string[] | undefined;
    if (name === "config get" || name === "config set") firstArgs = CONFIG_KEYS;
    if (name === "completions") firstArgs = SHELLS;
    return { name, def, options, firstArgs: firstArgs?.map(safe) };
  });
  return { words, groups, commands };
}

/** The values `--state` takes for a command. */
function statesFor(command: string): readonly string[] {
  return (STATES_BY_COMMAND[command] ?? JOB_STATES).map(safe);
}

/** The option words of a command (long, then short), as typed. */
function optionWords(options: [string, OptionSpec][]): string[] {
  return options.flatMap((
    [name, spec],
  ) => [`--${name}`, ...(spec.short ? [`-${spec.short}`] : [])]);
}

/** Single-quotes text for sh-family shells. */
function shQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** A bash completion script. */
export function bashScript(model: Model = buildModel()): string {
  const valueCases: string[] = [];
  const takesValue: string[] = [`*"|--db"`];
  const optionCases: string[] = [
    `    "") echo ${shQuote(optionWords(Object.entries(LEADING_OPTIONS)).join(" "))} ;;`,
  ];
  const positionalCases: string[] = [];
  for (const command of model.commands) {
    const options = command.options;
    optionCases.push(`    "${command.name}") echo ${shQuote(optionWords(options).join(" "))} ;;`);
    for (const [name, spec] of options) {
      if (spec.type !== "string" || name === "db") continue;
      takesValue.push(`"${command.name}|--${name}"`);
      if (name === "state") {
        valueCases.push(
          `    "${command.name}|--state") _queuectl_words ${
            shQuote(statesFor(command.name).join(" "))
          } ;;`,
        );
      }
    }
    if (command.firstArgs) {
      positionalCases.push(
        `    "${command.name}|0") _queuectl_words ${shQuote(command.firstArgs.join(" "))} ;;`,
      );
    } else if (command.def.args === "") {
      // Nothing to type but options: offer them on an empty word too.
      positionalCases.push(
        `    "${command.name}|"*) _queuectl_words "$(_queuectl_options "$1")" ;;`,
      );
    }
  }
  const groupCases = [...model.groups].map(([group, family]) =>
    `    ${group}) echo ${shQuote(family.map((def) => safe(def.path[1])).join(" "))} ;;`
  );
  const fileOptions = [...FILE_OPTIONS].map((o) => `*"|--${o}"`).join("|");
  const directoryOptions = [...DIRECTORY_OPTIONS].map((o) => `*"|--${o}"`).join("|");
  return `# bash completion for queuectl, generated by 'queuectl completions bash'.
# Install: source <(queuectl completions bash)    (e.g. in ~/.bashrc)

_queuectl_groups=${shQuote([...model.groups.keys()].join(" "))}

# Sets the replies to those of the words in $1 that start with the word being completed.
_queuectl_words() {
  local IFS=$' \\t\\n'
  mapfile -t COMPREPLY < <(compgen -W "$1" -- "$cur")
}

# Prints the options of command $1 ("" before the command).
_queuectl_options() {
  case "$1" in
${optionCases.join("\n")}
  esac
}

# Prints the subcommands of command word $1.
_queuectl_subcommands() {
  case "$1" in
${groupCases.join("\n")}
  esac
}

# Whether option $2 of command $1 takes a value.
_queuectl_takes_value() {
  case "$1|$2" in
    ${takesValue.join("|")}) return 0 ;;
  esac
  return 1
}

# Completes the value of option $2 of command $1.
_queuectl_value() {
  case "$1|$2" in
${valueCases.join("\n")}
    ${fileOptions})
      compopt -o filenames 2>/dev/null
      mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
    ${directoryOptions})
      compopt -o filenames 2>/dev/null
      mapfile -t COMPREPLY < <(compgen -d -- "$cur") ;;
  esac
}

# Completes argument number $2 (from 0) of command $1.
_queuectl_positional() {
  case "$1|$2" in
${positionalCases.join("\n")}
    "help|0") _queuectl_words ${shQuote(model.words.join(" "))} ;;
  esac
}

_queuectl() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" opt="" cmd="" npos=0 dashdash=0 i w
  COMPREPLY=()
  # Bash splits "--opt=value" at "=" (COMP_WORDBREAKS): then complete that option's value.
  if [[ $cur == "=" ]] && ((COMP_CWORD >= 2)); then
    opt="\${COMP_WORDS[COMP_CWORD-1]}"
    cur=""
  elif ((COMP_CWORD >= 3)) && [[ \${COMP_WORDS[COMP_CWORD-1]} == "=" ]]; then
    opt="\${COMP_WORDS[COMP_CWORD-2]}"
  fi
  # Find the command, and count its arguments, in the words before the cursor.
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    if ((!dashdash)) && [[ $w == -* ]]; then
      if [[ $w == "--" ]]; then
        dashdash=1
      elif [[ \${COMP_WORDS[i+1]} == "=" ]]; then
        ((i += 2))
      elif _queuectl_takes_value "$cmd" "$w"; then
        ((i += 1))
      fi
      continue
    fi
    if [[ -z $cmd ]]; then
      cmd="$w"
    elif [[ " $_queuectl_groups " == *" $cmd "* ]]; then
      cmd="$cmd $w"
    else
      ((npos += 1))
    fi
  done
  if [[ -z $opt ]] && ((COMP_CWORD >= 2)); then
    w="\${COMP_WORDS[COMP_CWORD-1]}"
    if [[ $w == -* ]] && _queuectl_takes_value "$cmd" "$w"; then opt="$w"; fi
  fi
  if [[ -n $opt ]]; then
    _queuectl_value "$cmd" "$opt"
  elif ((!dashdash)) && [[ $cur == -* ]]; then
    _queuectl_words "$(_queuectl_options "$cmd")"
  elif [[ -z $cmd ]]; then
    _queuectl_words ${shQuote([...model.words, "help"].join(" "))}
  elif [[ " $_queuectl_groups " == *" $cmd "* ]]; then
    _queuectl_words "$(_queuectl_subcommands "$cmd")"
  else
    _queuectl_positional "$cmd" "$npos"
  fi
  return 0
}

complete -F _queuectl queuectl
`;
}

/** Escapes text for the `[explanation]` of a zsh `_arguments` spec. */
function zshExplanation(text: string): string {
  return text.replace(/([\\\[\]:])/g, "\\$1");
}

/** Escapes text for a zsh `_describe` item or `_arguments` message (colons are separators). */
function zshItem(text: string): string {
  return text.replace(/([\\:])/g, "\\$1");
}

/** The `_arguments` specs of one option. */
function zshOptionSpecs(command: string, name: string, spec: OptionSpec): string[] {
  const explanation = `[${zshExplanation(spec.description)}]`;
  let value = "";
  if (spec.type === "string") {
    const message = zshItem((spec.value ?? name).toLowerCase());
    let action = " ";
    if (name === "state") action = `(${statesFor(command).join(" ")})`;
    else if (FILE_OPTIONS.has(name)) action = "_files";
    else if (DIRECTORY_OPTIONS.has(name)) action = "_files -/";
    value = `:${message}:${action}`;
  }
  if (spec.short) {
    const names = `-${spec.short} --${name}`;
    const forms = spec.type === "string"
      ? `{-${spec.short}+,--${name}=}`
      : `{-${spec.short},--${name}}`;
    return [`'(${names})'${forms}${shQuote(explanation + value)}`];
  }
  return [shQuote(`--${name}${spec.type === "string" ? "=" : ""}${explanation}${value}`)];
}

/** A zsh completion function file (`_queuectl`), for a directory in `fpath`. */
export function zshScript(model: Model = buildModel()): string {
  const functionName = (name: string) => `_queuectl_cmd_${name.replaceAll(" ", "_")}`;
  const commandFunctions = model.commands.map((command) => {
    const specs = command.options.flatMap(([name, spec]) =>
      zshOptionSpecs(command.name, name, spec)
    );
    if (command.firstArgs) {
      specs.push(shQuote(`1:${zshItem(command.def.args)}:(${command.firstArgs.join(" ")})`));
      if (command.name === "config set") specs.push(shQuote("2:value: "));
    } else if (command.def.args !== "") {
      specs.push(shQuote(`*:${zshItem(command.def.args)}: `));
    }
    return `${functionName(command.name)}() {
  _arguments -s -S \\
    ${specs.join(" \\\n    ")}
}`;
  });
  const describe = (defs: readonly { word: string; summary: string }[]) =>
    defs.map(({ word, summary }) => shQuote(`${word}:${summary}`)).join("\n      ");
  const topWords = model.words.map((word) => ({
    word,
    summary: model.groups.has(word)
      ? `${model.groups.get(word)!.map((def) => def.path[1]).join(", ")}`
      : COMMANDS.find((def) => def.path[0] === word)!.summary,
  }));
  const groupCases = [...model.groups].map(([group, family]) =>
    `        ${group})
          subcommands=(
            ${
      describe(family.map((def) => ({ word: def.path[1], summary: def.summary }))).replaceAll(
        "\n      ",
        "\n            ",
      )
    }
          ) ;;`
  );
  const leading = Object.entries(LEADING_OPTIONS).flatMap(([name, spec]) =>
    zshOptionSpecs("", name, spec)
  );
  return `#compdef queuectl
# zsh completion for queuectl, generated by 'queuectl completions zsh'.
# Install: queuectl completions zsh > ~/.zfunc/_queuectl
#   with fpath=(~/.zfunc $fpath) before compinit in ~/.zshrc.

${commandFunctions.join("\n\n")}

_queuectl() {
  local curcontext="$curcontext" state state_descr line ret=1
  local -a subcommands
  typeset -A opt_args
  _arguments -C \\
    ${leading.join(" \\\n    ")} \\
    '1:command:->command' \\
    '*::argument:->argument' && ret=0
  local -a commands=(
    ${describe(topWords).replaceAll("\n      ", "\n    ")}
    'help:show help for a command'
  )
  case $state in
    command)
      _describe -t commands 'queuectl command' commands && ret=0
      ;;
    argument)
      if [[ $words[1] == help ]]; then
        _describe -t commands 'queuectl command' commands && ret=0
        return ret
      fi
      case $words[1] in
${groupCases.join("\n")}
      esac
      if (( $#subcommands )); then
        if (( CURRENT == 2 )); then
          _describe -t commands "queuectl $words[1] command" subcommands && ret=0
          return ret
        fi
        local name="$words[1]_$words[2]"
        shift words
        (( CURRENT-- ))
      else
        local name="$words[1]"
      fi
      curcontext="\${curcontext%:*:*}:queuectl-$name:"
      if (( $+functions[_queuectl_cmd_$name] )); then
        _queuectl_cmd_$name && ret=0
      fi
      ;;
  esac
  return ret
}

_queuectl "$@"
`;
}

/** Quotes text for fish (single quotes: only `\\` and `'` are special). */
function fishQuote(text: string): string {
  return `'${text.replace(/([\\'])/g, "\\$1")}'`;
}

/** A fish completion file. */
export function fishScript(model: Model = buildModel()): string {
  const lines: string[] = [];
  const add = (condition: string, rest: string) =>
    lines.push(`complete -c queuectl -n ${fishQuote(`__queuectl_is ${condition}`)} ${rest}`);
  const optionLine = (condition: string, command: string, name: string, spec: OptionSpec) => {
    let flags = `${spec.short ? `-s ${spec.short} ` : ""}-l ${name}`;
    if (spec.type === "string") {
      if (name === "state") flags += ` -x -a ${fishQuote(statesFor(command).join(" "))}`;
      else if (FILE_OPTIONS.has(name)) flags += " -r -F";
      else if (DIRECTORY_OPTIONS.has(name)) flags += " -x -a '(__fish_complete_directories)'";
      else flags += " -x";
    }
    add(condition, `${flags} -d ${fishQuote(spec.description)}`);
  };
  for (const [name, spec] of Object.entries(LEADING_OPTIONS)) optionLine("''", "", name, spec);
  for (const word of model.words) {
    const summary = model.groups.has(word)
      ? model.groups.get(word)!.map((def) => def.path[1]).join(", ")
      : COMMANDS.find((def) => def.path[0] === word)!.summary;
    add("''", `-a ${word} -d ${fishQuote(summary)}`);
  }
  add("''", `-a help -d ${fishQuote("show help for a command")}`);
  add("help", `-a ${fishQuote(model.words.join(" "))}`);
  for (const [group, family] of model.groups) {
    for (const def of family) add(group, `-a ${def.path[1]} -d ${fishQuote(def.summary)}`);
  }
  for (const command of model.commands) {
    const condition = fishQuote(command.name);
    for (const [name, spec] of command.options) optionLine(condition, command.name, name, spec);
    if (command.firstArgs) {
      add(`${condition} 0`, `-a ${fishQuote(command.firstArgs.join(" "))}`);
    }
  }
  return `# fish completion for queuectl, generated by 'queuectl completions fish'.
# Install: queuectl completions fish > ~/.config/fish/completions/queuectl.fish

# Prints the command typed so far ("", "list", "worker", "worker start"), then how many
# arguments follow it; --db's value and other options are skipped.
function __queuectl_command
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l words
    set -l args 0
    set -l skip 0
    for token in $tokens
        if test $skip -eq 1
            set skip 0
            continue
        end
        if test "$token" = --db
            set skip 1
            continue
        end
        if string match -q -- '-*' $token
            continue
        end
        if test (count $words) -eq 0
            set words $token
        else if test (count $words) -eq 1; and contains -- $words[1] ${
    [...model.groups.keys()].join(" ")
  }
            set -a words $token
        else
            set args (math $args + 1)
        end
    end
    echo "$words"
    echo $args
end

# Whether the command typed so far is $argv[1] (and, if given, with $argv[2] arguments after it).
function __queuectl_is
    set -l state (__queuectl_command)
    test "$state[1]" = "$argv[1]"; or return 1
    test (count $argv) -lt 2; or test "$state[2]" = "$argv[2]"
end

complete -c queuectl -f
${lines.join("\n")}
`;
}

/** Runs `completions`. */
export function run({ args }: CommandContext): Promise<number> {
  const [shell, extra] = args.positionals;
  if (shell === undefined) {
    throw new UsageError(`missing shell: queuectl completions ${SHELLS.join("|")}`);
  }
  if (!(SHELLS as readonly string[]).includes(shell)) {
    throw new UsageError(`unknown shell '${shell}' (known: ${SHELLS.join(", ")})`);
  }
  if (extra !== undefined) throw new UsageError("completions takes one shell name");
  const model = buildModel();
  const script = shell === "bash"
    ? bashScript(model)
    : shell === "zsh"
    ? zshScript(model)
    : fishScript(model);
  writeOut(script);
  return Promise.resolve(0);
}
