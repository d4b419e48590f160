/**
 * The command table: each command's name, arguments and options, apart from
 * its logic, which is loaded only when the command runs.
 *
 * @module
 */

import type { Store } from "../store/store.ts";
import type { OptionSpecs, ParsedArgs } from "./args.ts";

/** What a command's `run` receives. */
export interface CommandContext {
  /** The words that named the command, e.g. `["config", "get"]`. */
  path: readonly string[];
  args: ParsedArgs;
  /** The resolved database path. */
  dbPath: string;
  /** Opens the queue database (created on first use). */
  openStore(): Promise<Store>;
}

/** A command module: `run` returns the exit code. */
export interface CommandModule {
  run(context: CommandContext): Promise<number>;
}

/** One command of the CLI. */
export interface CommandDefinition {
  /** The words that name it, e.g. `["dlq", "retry"]`. */
  path: string[];
  /** Positional arguments as shown in usage, e.g. `<id>...`. */
  args: string;
  summary: string;
  /** Further lines of help. */
  details?: string[];
  options: OptionSpecs;
  load(): Promise<CommandModule>;
}

/**
 * Loads the module of one command. The specifier is built at run time on
 * purpose: Deno resolves string-literal dynamic imports at start-up, which
 * cost every command (`enqueue` included) about 2 ms for modules it never
 * runs. `deno task compile` includes lib/cli/commands/ explicitly instead.
 */
function loadCommand(name: string): Promise<CommandModule> {
  return import(new URL(`./commands/${name}.ts`, import.meta.url).href);
}

/** Options every command takes. */
export const GLOBAL_OPTIONS: OptionSpecs = {
  db: {
    type: "string",
    value: "PATH",
    description:
      "the queue database (default: $QUEUECTL_DB, else $XDG_DATA_HOME/queuectl/queue.db)",
  },
  help: { type: "boolean", short: "h", description: "show help" },
};

const json = { type: "boolean", description: "print JSON for scripts" } as const;

/** Every command, in the order help lists them. */
export const COMMANDS: readonly CommandDefinition[] = [
  {
    path: ["enqueue"],
    args: "[<spec>]",
    summary: "add a job: a JSON spec or a shell command",
    details: [
      `<spec> is a JSON object such as '{"id":"job1","command":"sleep 2","max_retries":3}',`,
      "or, when it does not start with '{', the shell command itself.",
      "JSON fields: id, command, max_retries, priority, run_at, delay, timeout, cwd, queue, after.",
      "Flags win over the same JSON field. Prints each new job's id on its own line.",
      "Durations: 500ms, 10s, 5m, 2h, 1d, or a number of seconds.",
    ],
    options: {
      id: { type: "string", value: "ID", description: "job id (letters, digits, . _ : -)" },
      "max-retries": {
        type: "string",
        value: "N",
        description: "re-runs after a failure (default: config max-retries)",
      },
      priority: { type: "string", value: "N", description: "higher runs first (default 0)" },
      delay: { type: "string", value: "DUR", description: "run no sooner than DUR from now" },
      "run-at": {
        type: "string",
        value: "TIME",
        description: "run no sooner than an ISO 8601 time",
      },
      timeout: {
        type: "string",
        value: "DUR",
        description: "kill the job after DUR (default: config job-timeout)",
      },
      cwd: {
        type: "string",
        value: "DIR",
        description: "directory to run in (default: the current one)",
      },
      file: {
        type: "string",
        value: "PATH",
        description: "enqueue every spec in a JSON or JSON Lines file ('-' for stdin), all or none",
      },
      queue: {
        type: "string",
        value: "NAME",
        description: "the queue to add to (default: default)",
      },
      after: {
        type: "string",
        value: "ID[,ID]",
        description: "run only once these jobs have completed; dead if one of them ends dead",
      },
      wait: {
        type: "boolean",
        description: "wait for the job, printing its output as it runs; exit with its exit code",
      },
    },
    // A literal specifier, unlike the others: Deno then loads it with the program
    // itself, which saves enqueue (the command that must start fast) about 1 ms.
    load: () => import("./commands/enqueue.ts"),
  },
  {
    path: ["list"],
    args: "",
    summary: "list jobs, newest first",
    options: {
      state: {
        type: "string",
        value: "S",
        description: "only jobs in state S (blocked, pending, processing, completed, failed, dead)",
      },
      queue: { type: "string", value: "NAME", description: "only jobs of this queue" },
      limit: { type: "string", value: "N", description: "at most N jobs (default 100; 0 for all)" },
      json,
    },
    load: () => loadCommand("list"),
  },
  {
    path: ["show"],
    args: "<id>",
    summary: "show every field of one job, and its runs so far",
    options: { json },
    load: () => loadCommand("show"),
  },
  {
    path: ["logs"],
    args: "<id>",
    summary: "print the output of a job's latest run (stdout to stdout, stderr to stderr)",
    options: {
      follow: {
        type: "boolean",
        short: "f",
        description: "stream the output of the running job as it comes, until the job ends",
      },
    },
    load: () => loadCommand("logs"),
  },
  {
    path: ["status"],
    args: "",
    summary: "count jobs by state and queue, and list live workers",
    options: { json },
    load: () => loadCommand("status"),
  },
  {
    path: ["wait"],
    args: "<id>... | --all",
    summary: "wait until jobs have finished (completed or dead)",
    details: [
      "Exit 0 when all completed, 1 when any is dead, 124 on --timeout.",
      "On a terminal it draws a progress bar with counts, rate and ETA.",
    ],
    options: {
      all: { type: "boolean", description: "wait until no job is waiting or running" },
      timeout: { type: "string", value: "DUR", description: "give up after DUR (exit 124)" },
    },
    load: () => loadCommand("wait"),
  },
  {
    path: ["top"],
    args: "",
    summary: "a live full-screen view of the queue; q or Ctrl+C quits",
    options: {},
    load: () => loadCommand("top"),
  },
  {
    path: ["stats"],
    args: "",
    summary: "execution metrics: outcomes, retries, durations, throughput",
    options: {
      since: {
        type: "string",
        value: "DUR",
        description: "count runs that ended in the last DUR (default 1h)",
      },
      json,
    },
    load: () => loadCommand("stats"),
  },
  {
    path: ["pause"],
    args: "[<queue>]",
    summary: "stop workers taking jobs from a queue (default: default); running jobs finish",
    options: {},
    load: () => loadCommand("pause"),
  },
  {
    path: ["resume"],
    args: "[<queue>]",
    summary: "let workers take jobs from a paused queue again",
    options: {},
    load: () => loadCommand("pause"),
  },
  {
    path: ["kill"],
    args: "<id>",
    summary: "stop a running job and its child processes; it counts as a failed attempt",
    options: {
      "no-retry": { type: "boolean", description: "send it straight to the DLQ" },
      timeout: {
        type: "string",
        value: "DUR",
        description: "how long to wait for its worker to stop it (default 10s)",
      },
    },
    load: () => loadCommand("kill"),
  },
  {
    path: ["retry"],
    args: "<id>...",
    summary: "run completed or dead jobs again (attempts reset, history kept)",
    options: {},
    load: () => loadCommand("retry"),
  },
  {
    path: ["delete"],
    args: "<id>... | --state S",
    summary: "remove jobs that are not running, with their history",
    details: [
      "Asks for confirmation on a terminal unless --yes is given.",
      "Jobs waiting (--after) on a deleted job that had not completed go to the DLQ.",
    ],
    options: {
      state: {
        type: "string",
        value: "S",
        description: "every job in state S (or S1,S2): blocked, pending, failed, completed, dead",
      },
      "older-than": {
        type: "string",
        value: "DUR",
        description: "with --state: only jobs last changed more than DUR ago",
      },
      yes: { type: "boolean", short: "y", description: "do not ask for confirmation" },
    },
    load: () => loadCommand("delete"),
  },
  {
    path: ["worker", "start"],
    args: "",
    summary: "run workers in the foreground until stopped",
    details: [
      "Ctrl+C, SIGTERM, SIGHUP (its terminal closed) or 'queuectl worker stop' let running",
      "jobs finish and exit 0; a second signal kills running jobs and returns them to the queue.",
    ],
    options: {
      count: { type: "string", value: "N", description: "Web Workers running jobs (default 1)" },
      drain: {
        type: "boolean",
        description: "exit once no job is waiting (delays and backoffs included) or running",
      },
      once: { type: "boolean", description: "run one job, then exit" },
      queue: {
        type: "string",
        value: "A[,B]",
        description: "take jobs only from these queues (default: all)",
      },
      detach: {
        type: "boolean",
        description: "run in the background: print the worker's pid and return",
      },
      log: {
        type: "string",
        value: "FILE",
        description:
          "with --detach: append the worker's output to FILE, made 0600 if new (default: discard it)",
      },
    },
    load: () => loadCommand("worker_start"),
  },
  {
    path: ["worker", "stop"],
    args: "",
    summary: "ask every live worker to finish its current job and exit; wait until they have",
    options: {
      timeout: {
        type: "string",
        value: "DUR",
        description: "give up waiting after DUR (exit 1); the stop request stays",
      },
    },
    load: () => loadCommand("worker_stop"),
  },
  {
    path: ["dlq", "list"],
    args: "",
    summary: "list dead jobs (the dead-letter queue)",
    options: {
      limit: { type: "string", value: "N", description: "at most N jobs (default 100; 0 for all)" },
      json,
    },
    load: () => loadCommand("dlq_list"),
  },
  {
    path: ["dlq", "retry"],
    args: "<id>... | --all",
    summary: "send dead jobs back to pending with attempts 0",
    options: { all: { type: "boolean", description: "retry every dead job" } },
    load: () => loadCommand("dlq_retry"),
  },
  {
    path: ["purge"],
    args: "",
    summary: "delete finished (completed or dead) jobs and their output",
    details: [
      "Deletes jobs in the given states whose last run ended more than DUR ago.",
      "Workers do the same on their own when the 'retention' setting is set.",
    ],
    options: {
      state: {
        type: "string",
        value: "S",
        description: "completed, dead, or completed,dead (default: both)",
      },
      "older-than": {
        type: "string",
        value: "DUR",
        description: "only jobs that finished more than DUR ago (required; 0 for all)",
      },
    },
    load: () => loadCommand("purge"),
  },
  {
    path: ["config", "get"],
    args: "<key>",
    summary: "print one setting",
    options: {},
    load: () => loadCommand("config"),
  },
  {
    path: ["config", "set"],
    args: "<key> <value>",
    summary: "change one setting for every worker",
    options: {},
    load: () => loadCommand("config"),
  },
  {
    path: ["config", "list"],
    args: "",
    summary: "print every setting",
    options: { json },
    load: () => loadCommand("config"),
  },
  {
    path: ["completions"],
    args: "<shell>",
    summary: "print a completion script for bash, zsh or fish",
    details: [
      "bash: source <(queuectl completions bash)",
      "zsh:  queuectl completions zsh > ~/.zfunc/_queuectl   (with ~/.zfunc in fpath)",
      "fish: queuectl completions fish > ~/.config/fish/completions/queuectl.fish",
    ],
    options: {},
    load: () => loadCommand("completions"),
  },
];
