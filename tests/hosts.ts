/**
 * Simulated hosts on one machine, for tests of several machines sharing one
 * queue: a command runs under `unshare --pid --uts --mount-proc --fork` with
 * a hostname of its own and a process-id space of its own, sharing the file
 * system and the loopback network (so a PostgreSQL server on 127.0.0.1).
 * Needs root (or the capability to make namespaces): {@linkcode HOSTS} says
 * whether this machine can, and {@linkcode hostTest} skips with one line
 * when it cannot.
 *
 * Each host has an init of its own as pid 1, as a machine has: a few lines of
 * Perl (perl-base is part of every Debian system) that sets the hostname,
 * runs the command as its child, passes TERM, INT, HUP, QUIT, USR1 and USR2 on to
 * it, reaps every orphan (so no zombie looks alive), and exits with the
 * command's status (128 + the signal's number when a signal ended it). The
 * command itself is not pid 1, because the kernel drops signals to a pid 1
 * that has no handler for them, and a pid 1 that does not reap leaves zombies.
 * {@linkcode HostProcess.crash} SIGKILLs that init: the kernel then kills
 * every process in the namespace at once, a faithful "machine died".
 *
 * @module
 */

/** The init of a simulated host: argv is the hostname, then the command. */
const HOST_INIT = `
use strict;
my $hostname = shift @ARGV;
system("hostname", $hostname) == 0 or exit 125;
my $pid = fork() // die "fork: $!\\n";
if ($pid == 0) {
  exec { $ARGV[0] } @ARGV;
  print STDERR "$ARGV[0]: $!\\n";
  exit 127;
}
for my $signal (qw(TERM INT HUP QUIT USR1 USR2)) {
  $SIG{$signal} = sub { kill $signal, $pid };
}
while (1) {
  my $gone = waitpid(-1, 0);
  if ($gone == $pid) {
    exit(($? & 127) ? 128 + ($? & 127) : $? >> 8);
  }
  exit 1 if $gone == -1;
}
`;

/** The unshare command line that runs `argv` as host `hostname`. */
function hostArgs(hostname: string, argv: string[]): string[] {
  // --kill-child: should unshare itself die (a test's clean-up), the host dies with it.
  return [
    "--pid",
    "--uts",
    "--mount-proc",
    "--fork",
    "--kill-child",
    "perl",
    "-e",
    HOST_INIT,
    "--",
    hostname,
    ...argv,
  ];
}

/** Options for a command run as another host. */
export interface HostOptions {
  /** Extra environment variables (the rest is inherited). */
  env?: Record<string, string>;
  cwd?: string;
}

/** A command running as another host, its output read as it comes. */
export interface HostProcess {
  hostname: string;
  /** The pid of `unshare`, outside the namespace. */
  pid: number;
  /** Everything printed to stdout so far. */
  stdout(): string;
  /** Everything printed to stderr so far. */
  stderr(): string;
  /** Waits for the host to end and its output to be read. */
  status(): Promise<Deno.CommandStatus>;
  /** The pid (outside the namespace) of the host's init, its pid 1; waits for it to exist. */
  initPid(): Promise<number>;
  /** The pids (outside the namespace) of every process on the host, its init first. */
  processes(): Promise<number[]>;
  /** Sends `signal` to the command through the host's init. */
  signal(
    signal: "SIGTERM" | "SIGINT" | "SIGHUP" | "SIGQUIT" | "SIGUSR1" | "SIGUSR2",
  ): Promise<void>;
  /**
   * The machine dies: SIGKILL to the host's init, so every process on it
   * ends at once, none with a chance to clean up. Returns once all are gone,
   * with unshare's status: util-linux 2.38 exits 1 then, after "unshare:
   * sigprocmask unblock failed" on stderr (it cannot re-raise SIGKILL).
   */
  crash(): Promise<Deno.CommandStatus>;
}

async function collect(stream: ReadableStream<Uint8Array>, sink: string[]): Promise<void> {
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) sink.push(chunk);
}

/** The children of `pid`, from /proc (empty when it has none or is gone). */
function childrenOf(pid: number): number[] {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`);
    return text.split(" ").filter((word) => word !== "").map(Number);
  } catch {
    return [];
  }
}

/** The pid namespace `pid` lives in (`pid:[4026532…]`), or undefined once it is gone. */
function pidNamespaceOf(pid: number): string | undefined {
  try {
    return Deno.readLinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return undefined;
  }
}

/**
 * Starts `argv` as host `hostname` (own hostname, own pid space, pid 1 an
 * init; same files and network), stdin closed, stdout and stderr read as
 * they come.
 */
export function startOnHost(
  hostname: string,
  argv: string[],
  options: HostOptions = {},
): HostProcess {
  const child = new Deno.Command("unshare", {
    args: hostArgs(hostname, argv),
    env: options.env,
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out: string[] = [];
  const err: string[] = [];
  const reading = Promise.all([collect(child.stdout, out), collect(child.stderr, err)]);
  const status = async () => {
    const status = await child.status;
    await reading;
    return status;
  };
  let exited = false;
  child.status.then(() => exited = true);

  // unshare forks the init right after it starts: poll briefly for it.
  const initPid = async () => {
    const deadline = Date.now() + 10_000;
    while (true) {
      const [init] = childrenOf(child.pid);
      if (init !== undefined) return init;
      if (exited) throw new Error(`host ${hostname} has ended: no init to find`);
      if (Date.now() > deadline) throw new Error(`host ${hostname}: unshare forked no init`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };

  const processes = async () => {
    const init = await initPid();
    const namespace = pidNamespaceOf(init);
    if (namespace === undefined) return [];
    const others: number[] = [];
    for (const entry of Deno.readDirSync("/proc")) {
      const pid = Number(entry.name);
      if (Number.isInteger(pid) && pid !== init && pidNamespaceOf(pid) === namespace) {
        others.push(pid);
      }
    }
    return [init, ...others.sort((a, b) => a - b)];
  };

  return {
    hostname,
    pid: child.pid,
    stdout: () => out.join(""),
    stderr: () => err.join(""),
    status,
    initPid,
    processes,
    signal: async (signal) => Deno.kill(await initPid(), signal),
    crash: async () => {
      // Once the init has been reaped, the kernel has ended every other process on the host.
      Deno.kill(await initPid(), "SIGKILL");
      return await status();
    },
  };
}

/** What a command run as another host printed and returned. */
export interface HostResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `argv` as host `hostname` to the end (stdin closed); returns its output and exit code. */
export async function runOnHost(
  hostname: string,
  argv: string[],
  options: HostOptions = {},
): Promise<HostResult> {
  const output = await new Deno.Command("unshare", {
    args: hostArgs(hostname, argv),
    env: options.env,
    cwd: options.cwd,
    stdin: "null",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Whether this machine can run simulated hosts: `{ skip }` says why not. */
export type HostSupport = { ok: true } | { skip: string };

/** Tries one host that only says its hostname, once, when this module loads. */
async function probeHosts(): Promise<HostSupport> {
  const skip = (why: string) => ({
    skip: `simulated-host tests skipped: ${why} (they need util-linux's unshare, perl, ` +
      `and root to make pid and UTS namespaces)`,
  });
  try {
    const result = await runOnHost("queuectl-probe", ["hostname"]);
    if (result.code === 0 && result.stdout.trim() === "queuectl-probe") return { ok: true };
    const said = result.stderr.trim().split("\n")[0] || `exit code ${result.code}`;
    return skip(said);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return skip("unshare is not installed");
    return skip(`unshare could not start: ${error instanceof Error ? error.message : error}`);
  }
}

/** Whether simulated hosts work here, probed once when this module loads. */
export const HOSTS: HostSupport = await probeHosts();

/** Registers a test that needs simulated hosts: ignored, with one line saying why, when they do not work. */
export function hostTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore: "skip" in HOSTS, fn });
}

if ("skip" in HOSTS) console.error(HOSTS.skip);
