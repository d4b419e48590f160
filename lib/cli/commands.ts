/**
 * The command table: each command's name, arguments and options, apart from
 * its logic, which is loaded only when the command runs.
 *
 * @module
 */

import type { OptionSpecs } from "./args.ts";
import type { CommandModule } from "./context.ts";
import { COMMANDS_FOLDER, moduleUrl } from "../module_urls.ts";

/** The headings of `queuectl --help`, in the order it shows them; each command is under one. */
export const SECTIONS = {
  jobs: "Add jobs and look at them",
  queue: "Watch the queue",
  workers: "Run jobs",
  manage: "Stop, retry and remove jobs; pause queues",
  setup: "Settings, schema and shell",
} as const;

/** What each group of commands (the first word of a two-word command) is for. */
export const GROUP_SUMMARIES: Readonly<Record<string, string>> = {
  worker: "run the processes that take jobs from the queue and run them, or stop them",
  dlq: "the dead-letter queue: jobs that will not run again unless you retry them",
  schedule: "recurring schedules: jobs enqueued by cron expression or interval, like crontab",
  config: "queue-wide settings, stored in the database so that every worker sees them",
  queue: "named queues: their limits (concurrency, rate), pausing, and their jobs by state",
};

/** Extra blocks a command's help shows, each generated from its one source of truth. */
export type HelpTopic =
  /** Every setting, with the form of its value and its default (from lib/config.ts). */
  "config-keys";

/** One command of the CLI. */
export interface CommandDefinition {
  /** The words that name it, e.g. `["dlq", "retry"]`. */
  path: string[];
  /** Its heading in `queuectl --help`. */
  section: keyof typeof SECTIONS;
  /** Positional arguments as shown in usage, e.g. `<id>...`. */
  args: string;
  summary: string;
  /** Further lines of help. */
  details?: string[];
  /** Generated blocks of help, after the options. */
  topics?: readonly HelpTopic[];
  options: OptionSpecs;
  load(): Promise<CommandModule>;
}

/** Loads the module of one command, by a URL built at run time (see lib/module_urls.ts). */
function loadCommand(name: string): Promise<CommandModule> {
  return import(moduleUrl(`${COMMANDS_FOLDER}/${name}`));
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

/** Options that may come before the command word: the global ones and `--version`. */
export const LEADING_OPTIONS: OptionSpecs = {
  ...GLOBAL_OPTIONS,
  version: { type: "boolean", short: "V", description: "print the version" },
};

const json = { type: "boolean", description: "print JSON for scripts" } as const;

/**
 * The `enqueue` options that name one job or one moment: `schedule add`
 * takes every other `enqueue` option, as the job spec its firings resolve.
 */
const ONE_JOB_OPTIONS = new Set(["id", "delay", "run-at", "file", "after", "wait"]);

/** The `enqueue` options a schedule's job spec takes (see {@linkcode ONE_JOB_OPTIONS}). */
function jobTemplateOptions(): OptionSpecs {
  const enqueue = COMMANDS.find((command) => command.path[0] === "enqueue")!;
  return Object.fromEntries(
    Object.entries(enqueue.options).filter(([name]) => !ONE_JOB_OPTIONS.has(name)),
  );
}

const scheduleName = "<name>";

/** The options of `schedule add` besides the job spec's. */
const SCHEDULE_ADD_OPTIONS: OptionSpecs = {
  cron: { type: "string", value: "EXPR", description: "fire at the times of a cron expression" },
  every: { type: "string", value: "DUR", description: "fire every DUR (at least 1s)" },
  tz: {
    type: "string",
    value: "ZONE",
    description: "the IANA zone --cron reads times in (default: this machine's)",
  },
  overlap: {
    type: "string",
    value: "MODE",
    description: "skip (default): skip a firing while the last job is unfinished; allow",
  },
  "catch-up": {
    type: "string",
    value: "MODE",
    description: "after downtime, latest (default): enqueue the latest missed firing; none",
  },
  replace: { type: "boolean", description: "replace a schedule of the same name" },
};

/** Every command, in the order help lists them. */
export const COMMANDS: readonly CommandDefinition[] = [
  {
    path: ["enqueue"],
    section: "jobs",
    args: "[<spec>]",
    summary: "add a job: a JSON spec or a shell command",
    details: [
      `<spec> is a JSON object such as '{"id":"job1","command":"sleep 2","max_retries":3}',`,
      `a JSON array of them or of commands ('["make a","make b"]': one job each, all or none),`,
      "or, when it starts with neither '{' nor '[' (or with the shell's test, '[ -f x ] && make'),",
      "the shell command itself.",
      "JSON fields: id, command, max_retries, priority, run_at, delay, timeout, timeout_ms, cwd,",
      "queue, after, env, unique_key, unique_for.",
      "Flags win over the same JSON field; env is an object of strings, which --env adds to.",
      "Prints each new job's id on its own line; for a job not added because its unique key is",
      "held, the id of the job holding it.",
      "Durations: 500ms, 10s, 5m, 2h, 1d, or a number of seconds.",
    ],
    options: {
      id: { type: "string", value: "ID", description: "job id (letters, digits, . _ : @ -)" },
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
        description:
          "run no sooner than TIME, e.g. 2030-01-31T09:00; local time unless it ends in Z or +HH:MM",
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
        description:
          "enqueue every job of a file ('-': stdin), all or none: JSON, or a command or spec a line",
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
      env: {
        type: "string",
        value: "NAME=VALUE",
        multiple: true,
        description: "set a variable for the job's runs (repeatable; stored in clear)",
      },
      "env-file": {
        type: "string",
        value: "FILE",
        multiple: true,
        description: "set the variables of a dotenv file (repeatable; --env wins)",
      },
      "unique-key": {
        type: "string",
        value: "KEY",
        description: "add nothing while a job of the queue with KEY waits or runs",
      },
      "unique-for": {
        type: "string",
        value: "DUR",
        description: "with --unique-key: nor while one finished less than DUR ago",
      },
    },
    // A literal specifier, unlike the others: Deno then loads it with the program
    // itself, which saves enqueue (the command that must start fast) about 1 ms.
    load: () => import("./commands/enqueue.ts"),
  },
  {
    path: ["list"],
    section: "jobs",
    args: "",
    summary: "list jobs, newest first",
    options: {
      state: {
        type: "string",
        value: "S",
        description:
          "only jobs in state S (or S1,S2): blocked, pending, processing, completed, failed, dead",
      },
      queue: { type: "string", value: "NAME", description: "only jobs of this queue" },
      limit: { type: "string", value: "N", description: "at most N jobs (default 100; 0 for all)" },
      json,
      output: {
        type: "boolean",
        description: "with --json: each job's newest output as text (stdout, stderr)",
      },
    },
    load: () => loadCommand("list"),
  },
  {
    path: ["show"],
    section: "jobs",
    args: "<id>",
    summary: "show every field of one job, and its runs so far",
    options: { json },
    load: () => loadCommand("show"),
  },
  {
    path: ["logs"],
    section: "jobs",
    args: "<id>",
    summary: "print a job's latest output (stdout to stdout, stderr to stderr)",
    options: {
      follow: {
        type: "boolean",
        short: "f",
        description: "stream the output of the running job as it comes, until the job ends",
      },
      attempt: {
        type: "string",
        value: "N",
        description: "the output of run N (as show numbers them) instead of the latest",
      },
    },
    load: () => loadCommand("logs"),
  },
  {
    path: ["status"],
    section: "queue",
    args: "",
    summary: "count jobs by state and queue, and list live workers",
    options: { json },
    load: () => loadCommand("status"),
  },
  {
    path: ["wait"],
    section: "jobs",
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
    section: "queue",
    args: "",
    summary: "a live full-screen view of the queue; q or Ctrl+C quits",
    options: {},
    load: () => loadCommand("top"),
  },
  {
    path: ["dashboard"],
    section: "queue",
    args: "",
    summary: "serve the dashboard's JSON API over HTTP until Ctrl+C or SIGTERM",
    details: [
      "Prints the URL to open. Listens on loopback only unless --host is given; beyond",
      "loopback a token is required. With a token, API clients send 'Authorization: Bearer T'",
      "and a browser opens the printed URL once (it sets a cookie). Actions are POSTs with a",
      "JSON body; cross-site ones are refused.",
    ],
    options: {
      host: {
        type: "string",
        value: "ADDR",
        description: "the address to listen on (default 127.0.0.1)",
      },
      port: {
        type: "string",
        value: "N",
        description: "the port to listen on (default 8080; 0 for any free one)",
      },
      token: {
        type: "string",
        value: "T",
        description: "the secret every request must carry (other users can see it in ps)",
      },
      "token-file": {
        type: "string",
        value: "F",
        description: "read the token from the first line of file F",
      },
      "read-only": {
        type: "boolean",
        description: "refuse every action (retry, kill, delete, pause, resume, enqueue)",
      },
    },
    load: () => loadCommand("dashboard"),
  },
  {
    path: ["stats"],
    section: "queue",
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
    section: "manage",
    args: "[<queue>]",
    summary: "stop workers taking new jobs from a queue (default: default)",
    options: {},
    load: () => loadCommand("pause"),
  },
  {
    path: ["resume"],
    section: "manage",
    args: "[<queue>]",
    summary: "let workers take jobs from a paused queue again",
    options: {},
    load: () => loadCommand("pause"),
  },
  {
    path: ["queue", "set"],
    section: "manage",
    args: "<queue>",
    summary: "limit a queue: jobs running at once, starts per time window",
    details: [
      "--concurrency N: at most N of the queue's jobs run at once, across every worker",
      "process and host. --rate N/DUR (e.g. 10/1m, 5/s): at most N jobs start in any",
      "window of DUR: the window slides, so no burst of 2N straddles a boundary. Every",
      "attempt is a start; a new N forgets the recent starts. 'none' removes a limit.",
      "Workers obey a change at their next claim; a full queue is passed over for other",
      "queues' jobs, never waited on.",
    ],
    options: {
      concurrency: { type: "string", value: "N|none", description: "jobs running at once" },
      rate: { type: "string", value: "N/DUR|none", description: "starts per sliding window" },
    },
    load: () => loadCommand("queue_set"),
  },
  {
    path: ["queue", "list"],
    section: "manage",
    args: "",
    summary: "list queues: limits and how full they are, paused or not, jobs",
    options: { json },
    load: () => loadCommand("queue_list"),
  },
  {
    path: ["queue", "pause"],
    section: "manage",
    args: "<queue>",
    summary: "stop workers taking new jobs from a queue (as 'pause')",
    options: {},
    load: () => loadCommand("pause"),
  },
  {
    path: ["queue", "resume"],
    section: "manage",
    args: "<queue>",
    summary: "let workers take jobs from a paused queue again (as 'resume')",
    options: {},
    load: () => loadCommand("pause"),
  },
  {
    path: ["kill"],
    section: "manage",
    args: "<id>",
    summary: "stop a running job and its children; it counts as a failed attempt",
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
    section: "manage",
    args: "<id>...",
    summary: "run completed or dead jobs again (attempts reset, history kept)",
    options: {},
    load: () => loadCommand("retry"),
  },
  {
    path: ["delete"],
    section: "manage",
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
    section: "workers",
    args: "",
    summary: "run workers in the foreground until stopped",
    details: [
      "Ctrl+C, SIGTERM, SIGHUP (its terminal closed) or 'queuectl worker stop' let running",
      "jobs finish and exit 0; a second signal kills running jobs and returns them to the queue.",
    ],
    options: {
      count: { type: "string", value: "N", description: "how many jobs run at once (default 1)" },
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
    section: "workers",
    args: "",
    summary: "stop every worker once its current job is done; wait until they exit",
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
    section: "manage",
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
    section: "manage",
    args: "<id>... | --all",
    summary: "send dead jobs back to pending with attempts 0",
    options: { all: { type: "boolean", description: "retry every dead job" } },
    load: () => loadCommand("dlq_retry"),
  },
  {
    path: ["schedule", "add"],
    section: "jobs",
    args: "<name> <spec>",
    summary: "add a recurring schedule: a job enqueued by cron or interval",
    details: [
      "<spec> is what enqueue takes: a shell command (quoted as one argument) or a JSON spec.",
      "--cron takes five fields (minute hour day-of-month month day-of-week) with lists,",
      "ranges, steps and names (JAN, MON), or @hourly @daily @weekly @monthly @yearly.",
      "--every DUR fires at the multiples of DUR since 1970-01-01 UTC (every 15m: :00 :15 ...).",
      "Each firing enqueues one job, id <name>@<firing time, ISO 8601 UTC>; a running",
      "'worker start' fires it (the elected one). Missed firings are never run in a burst.",
    ],
    // A getter: the enqueue options are read once the table exists.
    get options(): OptionSpecs {
      return { ...SCHEDULE_ADD_OPTIONS, ...jobTemplateOptions() };
    },
    load: () => loadCommand("schedule_add"),
  },
  {
    path: ["schedule", "list"],
    section: "jobs",
    args: "",
    summary: "list schedules with their next and last firings",
    options: { json },
    load: () => loadCommand("schedule_list"),
  },
  {
    path: ["schedule", "remove"],
    section: "jobs",
    args: scheduleName,
    summary: "remove a schedule (the jobs it enqueued stay)",
    options: {},
    load: () => loadCommand("schedule_manage"),
  },
  {
    path: ["schedule", "pause"],
    section: "jobs",
    args: scheduleName,
    summary: "stop a schedule's firings until it is resumed",
    options: {},
    load: () => loadCommand("schedule_manage"),
  },
  {
    path: ["schedule", "resume"],
    section: "jobs",
    args: scheduleName,
    summary: "resume a paused schedule (firings missed meanwhile are not run)",
    options: {},
    load: () => loadCommand("schedule_manage"),
  },
  {
    path: ["schedule", "run"],
    section: "jobs",
    args: scheduleName,
    summary: "fire a schedule now; prints the id of its job",
    options: {},
    load: () => loadCommand("schedule_manage"),
  },
  {
    path: ["purge"],
    section: "manage",
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
    section: "setup",
    args: "<key>",
    summary: "print one setting",
    options: {},
    topics: ["config-keys"],
    load: () => loadCommand("config"),
  },
  {
    path: ["config", "set"],
    section: "setup",
    args: "<key> <value>",
    summary: "change one setting for every worker",
    details: ["Durations (DUR): 500ms, 10s, 5m, 2h, 1d, or a number of seconds."],
    options: {},
    topics: ["config-keys"],
    load: () => loadCommand("config"),
  },
  {
    path: ["config", "list"],
    section: "setup",
    args: "",
    summary: "print every setting",
    options: { json },
    load: () => loadCommand("config"),
  },
  {
    path: ["migrate"],
    section: "setup",
    args: "",
    summary: "bring the database's schema up to date for this queuectl",
    details: [
      "Applies pending schema migrations under the database's write lock and says what it did.",
      "Other commands migrate an older database on their own too; migrate does only that.",
      "A database written by a newer queuectl is refused (exit 1) and left untouched.",
    ],
    options: {},
    load: () => loadCommand("migrate"),
  },
  {
    path: ["completions"],
    section: "setup",
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
