/**
 * The fast launch path: a job's shell started with `posix_spawn` from the
 * C library (through `Deno.dlopen`), in a session of its own
 * (`POSIX_SPAWN_SETSID`), its output read from pipes and its exit seen
 * through a pidfd, all without blocking the Web Worker's event loop.
 *
 * Why: `Deno.Command` gives a child its own session only through a full
 * fork of the runtime (`detached: true`) or a second exec (setsid(1)); both
 * cost more than the job itself. posix_spawn with SETSID takes the C
 * library's vfork-like path and makes the session in the child.
 *
 * Where: Linux with glibc (posix_spawn's SETSID flag, pidfds). Elsewhere,
 * or when any piece is missing, {@linkcode libcSpawner} says why and the
 * executor keeps `Deno.Command`.
 *
 * Waiting: one `poll` on the two pipes and the shell's pidfd runs on
 * Deno's blocking thread pool (a `nonblocking` symbol), so the Web Worker
 * still receives kills, timeouts and wakes while its job runs; every other
 * call returns at once and is made synchronously. A caller that runs
 * nothing else on its thread (a worker's lane) may have the first
 * {@linkcode SpawnRequest.blockingWaitMs} polled in the thread itself:
 * most jobs end within them, and handing each poll to the pool and its
 * answer back costs a short job about a tenth of its launch. Messages and
 * timers wait meanwhile, at most that long. The shell is reaped in
 * the same turn of the event loop that sees its exit, so the executor marks
 * it exited before its pid can be anyone else's.
 *
 * A shell may also be started ahead of its job (standby.ts): its stdin is
 * then a pipe for the job's script, and its output is watched from when
 * the job is handed to it.
 *
 * Longer than most modules on purpose: every call into the C library, its
 * constants and its buffers stay in this one file, the only one that
 * touches raw descriptors and pointers.
 *
 * @module
 */

/** Selects the launch path: `spawn` (this module), `command` (`Deno.Command`), or unset: automatic. */
export const LAUNCH_VAR = "QUEUECTL_LAUNCH";

/** glibc's values (bits/spawn.h, fcntl.h, poll.h, signum.h), the same on x86_64 and aarch64. */
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const POSIX_SPAWN_SETSID = 0x80;
const O_RDONLY = 0;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const F_SETFL = 4;
const POLLIN = 0x001;
const WNOHANG = 1;
const EINTR = 4;
const EAGAIN = 11;
const SIGPIPE = 13;
const SYS_PIDFD_OPEN = 434n;
/** glibc's posix_spawnattr_t is 336 bytes and posix_spawn_file_actions_t 80 on x86_64: room to spare. */
const OPAQUE_BYTES = 1024;
/** sigset_t: 1024 bits. */
const SIGSET_BYTES = 128;
const READ_CHUNK = 64 * 1024;

const SYMBOLS = {
  posix_spawnp: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  posix_spawnattr_init: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_setflags: { parameters: ["buffer", "i16"], result: "i32" },
  posix_spawnattr_setsigdefault: { parameters: ["buffer", "buffer"], result: "i32" },
  posix_spawnattr_setsigmask: { parameters: ["buffer", "buffer"], result: "i32" },
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_adddup2: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  posix_spawn_file_actions_addopen: {
    parameters: ["buffer", "i32", "buffer", "i32", "u32"],
    result: "i32",
  },
  posix_spawn_file_actions_addchdir_np: {
    parameters: ["buffer", "buffer"],
    result: "i32",
    optional: true,
  },
  sigemptyset: { parameters: ["buffer"], result: "i32" },
  sigaddset: { parameters: ["buffer", "i32"], result: "i32" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  poll_blocking: { name: "poll", parameters: ["buffer", "u64", "i32"], result: "i32" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  kill: { parameters: ["i32", "i32"], result: "i32" },
  unlink: { parameters: ["buffer"], result: "i32" },
  rmdir: { parameters: ["buffer"], result: "i32" },
  syscall: { parameters: ["i64", "i64", "i64"], result: "i64" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  gnu_get_libc_version: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

const encoder = new TextEncoder();

/** `text` as a NUL-terminated C string. */
function cString(text: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(text.length * 3 + 1);
  const { written } = encoder.encodeInto(text, bytes);
  return bytes.subarray(0, written + 1);
}

/**
 * A NULL-terminated array of pointers to `strings` (C strings), with the
 * strings it points to: both must stay reachable until the call that reads them.
 */
function cStringArray(strings: string[]): { array: BigUint64Array<ArrayBuffer>; keep: unknown[] } {
  const keep = strings.map(cString);
  const array = new BigUint64Array(keep.length + 1);
  keep.forEach((bytes, i) => {
    array[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
  });
  return { array, keep };
}

/** How a reaped shell ended. */
export interface ShellExit {
  /** The exit code, or 128 + n when signal n ended it. */
  code: number;
  /** The signal that ended it, if one did. */
  signal: Deno.Signal | null;
}

/** Signal names by number (Linux), for exit statuses. */
const SIGNAL_NAMES: Record<number, Deno.Signal> = {
  1: "SIGHUP",
  2: "SIGINT",
  3: "SIGQUIT",
  4: "SIGILL",
  5: "SIGTRAP",
  6: "SIGABRT",
  7: "SIGBUS",
  8: "SIGFPE",
  9: "SIGKILL",
  10: "SIGUSR1",
  11: "SIGSEGV",
  12: "SIGUSR2",
  13: "SIGPIPE",
  14: "SIGALRM",
  15: "SIGTERM",
  16: "SIGSTKFLT",
  17: "SIGCHLD",
  18: "SIGCONT",
  19: "SIGSTOP",
  20: "SIGTSTP",
  21: "SIGTTIN",
  22: "SIGTTOU",
  23: "SIGURG",
  24: "SIGXCPU",
  25: "SIGXFSZ",
  26: "SIGVTALRM",
  27: "SIGPROF",
  28: "SIGWINCH",
  29: "SIGIO",
  30: "SIGPWR",
  31: "SIGSYS",
};

const SIGNAL_NUMBERS = new Map(
  Object.entries(SIGNAL_NAMES).map(([number, name]) => [name, Number(number)]),
);

/** A wait status (as waitpid gives it) as an exit code and signal. */
function decodeWaitStatus(status: number): ShellExit {
  const signal = status & 0x7f;
  if (signal === 0) return { code: (status >> 8) & 0xff, signal: null };
  return { code: 128 + signal, signal: SIGNAL_NAMES[signal] ?? null };
}

/**
 * A shell started ahead of its job ({@linkcode LibcSpawner.spawnStandby}):
 * its stdin is a pipe this process writes the job's script to, and its
 * output is not watched until {@linkcode begin}.
 */
export interface StandbySpawn extends SpawnedShell {
  /** Writes `script` to the shell's stdin and closes it; false if the shell cannot take it (gone). */
  feed(script: Uint8Array<ArrayBuffer>): boolean;
  /** Starts reading its output and watching for its exit, as `spawn` does at once. */
  begin(blockingWaitMs: number): void;
  /** Whether it has exited (it is not reaped here: {@linkcode begin} reaps it). */
  exited(): boolean;
}

/** What the executor gives a started shell. */
export interface SpawnedShell {
  pid: number;
  /** Resolves once the shell has exited and been reaped (in the same turn). */
  status: Promise<ShellExit>;
  /** Resolves once both streams have ended, or reading was stopped after the shell's exit. */
  reading: Promise<void>;
  /** Stops reading output as soon as the shell has exited (leftover children may hold the pipes). */
  stopReading(): void;
}

/** What to start, and where its output goes. */
export interface SpawnRequest {
  /** The program: an absolute path, or a name looked up in this process's PATH. */
  program: string;
  args: string[];
  cwd: string;
  /** The whole environment of the child. */
  env: Record<string, string>;
  onStdout(chunk: Uint8Array): void;
  onStderr(chunk: Uint8Array): void;
  /**
   * How long, from the start, to wait in this thread (see the module's
   * documentation); 0 or undefined: never.
   */
  blockingWaitMs?: number;
}

/**
 * System calls whose failure is an answer rather than an error (the
 * process is gone, the file was removed already). Through the C library
 * they cost no `stat` before and no exception after, as Deno's do.
 */
export interface QuietCalls {
  /** Sends `signal`; whether it was sent. */
  kill(pid: number, signal: Deno.Signal): boolean;
  /** Removes a file; whether it is gone (removed now, or before). */
  unlink(path: string): boolean;
  /** Removes an empty folder; whether it is gone (removed now, or before). */
  rmdir(path: string): boolean;
}

/** errno ENOENT: no such file or directory. */
const ENOENT = 2;

/** The error of a spawn that did not start: its message says why, like Deno.Command's. */
export class SpawnError extends Error {
  constructor(message: string, readonly errno: number) {
    super(message);
  }
}

/** Starts shells through the C library; made by {@linkcode libcSpawner}. */
export class LibcSpawner implements QuietCalls {
  readonly #libc: Libc;
  readonly #attr = new Uint8Array(OPAQUE_BYTES);
  readonly #errno: Deno.UnsafePointerView;
  readonly #devNull = cString("/dev/null");
  /**
   * Every run's reads land here, then are copied out at once: reads are
   * synchronous, so runs can share it. One 64 KiB buffer per run was
   * 128 MiB of short-lived memory per 2,000 jobs, which kept the garbage
   * collector's threads busy.
   */
  readonly #readBuffer = new Uint8Array(READ_CHUNK);
  /**
   * Each variable's last `NAME=value` C string, by name. Jobs inherit the
   * same worker environment every time: encoding it anew cost ~50 µs a job,
   * as much as the rest of the launch's JavaScript. Bounded by the number
   * of names, which the worker, not the jobs, decides.
   */
  readonly #environment = new Map<string, { value: string; bytes: Uint8Array; pointer: bigint }>();

  constructor(libc: Libc) {
    this.#libc = libc;
    this.#errno = new Deno.UnsafePointerView(libc.__errno_location()!);
    // One attribute set for every spawn: a new session; SIGPIPE, which Deno
    // ignores and children would inherit ignored, back to its default; no
    // signal blocked. Other dispositions pass on as the worker got them,
    // as with Deno.Command (Rust's std resets exactly these two).
    const sigdefault = new Uint8Array(SIGSET_BYTES);
    const sigmask = new Uint8Array(SIGSET_BYTES);
    libc.sigemptyset(sigdefault);
    libc.sigaddset(sigdefault, SIGPIPE);
    libc.sigemptyset(sigmask);
    check(libc.posix_spawnattr_init(this.#attr), "posix_spawnattr_init");
    check(libc.posix_spawnattr_setsigdefault(this.#attr, sigdefault), "setsigdefault");
    check(libc.posix_spawnattr_setsigmask(this.#attr, sigmask), "setsigmask");
    check(
      libc.posix_spawnattr_setflags(
        this.#attr,
        POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK,
      ),
      "setflags",
    );
  }

  /** `env` as a NULL-terminated array of `NAME=value` C strings; see {@linkcode #environment}. */
  #environmentArray(
    env: Record<string, string>,
  ): { array: BigUint64Array<ArrayBuffer>; keep: unknown[] } {
    const names = Object.keys(env);
    const array = new BigUint64Array(names.length + 1);
    // A string replaced in the cache meanwhile must outlive this spawn all the same.
    const keep: Uint8Array[] = [];
    names.forEach((name, i) => {
      const value = env[name];
      let entry = this.#environment.get(name);
      if (entry === undefined || entry.value !== value) {
        const bytes = cString(`${name}=${value}`);
        const pointer = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
        entry = { value, bytes, pointer };
        this.#environment.set(name, entry);
      }
      keep.push(entry.bytes);
      array[i] = entry.pointer;
    });
    return { array, keep };
  }

  // Properties, not methods: handed around without their object.
  readonly kill = (pid: number, signal: Deno.Signal): boolean => {
    const number = SIGNAL_NUMBERS.get(signal);
    if (number !== undefined) return this.#libc.kill(pid, number) === 0;
    try {
      Deno.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  };

  readonly unlink = (path: string): boolean =>
    this.#libc.unlink(cString(path)) === 0 || this.#lastErrno() === ENOENT;

  readonly rmdir = (path: string): boolean =>
    this.#libc.rmdir(cString(path)) === 0 || this.#lastErrno() === ENOENT;

  #lastErrno(): number {
    return this.#errno.getInt32();
  }

  #message(errno: number): string {
    const text = this.#libc.strerror(errno);
    return text === null ? `error ${errno}` : Deno.UnsafePointerView.getCString(text);
  }

  /** Two pipes whose ends are closed on exec; [read, write, read, write]. */
  #pipes(): Int32Array<ArrayBuffer> {
    const fds = new Int32Array(4);
    if (this.#libc.pipe2(fds, O_CLOEXEC) !== 0) {
      throw new SpawnError(`cannot make a pipe: ${this.#message(this.#lastErrno())}`, 0);
    }
    if (this.#libc.pipe2(fds.subarray(2), O_CLOEXEC) !== 0) {
      const errno = this.#lastErrno();
      this.#libc.close(fds[0]);
      this.#libc.close(fds[1]);
      throw new SpawnError(`cannot make a pipe: ${this.#message(errno)}`, 0);
    }
    return fds;
  }

  /**
   * Starts `request.program` in a new session, stdin /dev/null, stdout and
   * stderr to pipes read without blocking the event loop. Throws
   * {@linkcode SpawnError} when it cannot start.
   */
  spawn(request: SpawnRequest): SpawnedShell {
    const shell = this.#start(request, false);
    shell.begin(request.blockingWaitMs ?? 0);
    return shell;
  }

  /**
   * Starts `request.program` as {@linkcode spawn} does, but with its stdin a
   * pipe for {@linkcode StandbySpawn.feed}, and unwatched until
   * {@linkcode StandbySpawn.begin}: a shell that waits for its job.
   */
  spawnStandby(request: SpawnRequest): StandbySpawn {
    return this.#start(request, true);
  }

  #start(request: SpawnRequest, stdinPipe: boolean): StandbySpawn {
    const libc = this.#libc;
    const fds = this.#pipes();
    let stdin: Int32Array<ArrayBuffer> | undefined;
    if (stdinPipe) {
      stdin = new Int32Array(2);
      if (libc.pipe2(stdin, O_CLOEXEC) !== 0) {
        const errno = this.#lastErrno();
        for (const fd of fds) libc.close(fd);
        throw new SpawnError(`cannot make a pipe: ${this.#message(errno)}`, 0);
      }
    }
    const actions = new Uint8Array(OPAQUE_BYTES);
    libc.posix_spawn_file_actions_init(actions);
    const pidOut = new Int32Array(1);
    let error = 0;
    try {
      const cwd = cString(request.cwd);
      if (stdin === undefined) {
        libc.posix_spawn_file_actions_addopen(actions, 0, this.#devNull, O_RDONLY, 0);
      } else {
        libc.posix_spawn_file_actions_adddup2(actions, stdin[0], 0);
      }
      libc.posix_spawn_file_actions_adddup2(actions, fds[1], 1);
      libc.posix_spawn_file_actions_adddup2(actions, fds[3], 2);
      libc.posix_spawn_file_actions_addchdir_np!(actions, cwd);
      const program = cString(request.program);
      const argv = cStringArray([request.program, ...request.args]);
      const envp = this.#environmentArray(request.env);
      error = libc.posix_spawnp(pidOut, program, actions, this.#attr, argv.array, envp.array);
      // Read by the call above; kept reachable until it returned.
      void [argv.keep, envp.keep];
    } finally {
      libc.posix_spawn_file_actions_destroy(actions);
      libc.close(fds[1]);
      libc.close(fds[3]);
      if (stdin !== undefined) libc.close(stdin[0]);
    }
    if (error !== 0) {
      libc.close(fds[0]);
      libc.close(fds[2]);
      if (stdin !== undefined) libc.close(stdin[1]);
      throw new SpawnError(
        `Failed to spawn '${request.program}': ${this.#message(error)}`,
        error,
      );
    }
    const pid = pidOut[0];
    const pidfd = Number(libc.syscall(SYS_PIDFD_OPEN, BigInt(pid), 0n));
    if (pidfd < 0) {
      // Cannot happen for our own unreaped child short of running out of
      // descriptors; then the shell cannot be watched: end it and say so.
      const errno = this.#lastErrno();
      Deno.kill(-pid, "SIGKILL");
      libc.waitpid(pid, new Int32Array(1), 0);
      libc.close(fds[0]);
      libc.close(fds[2]);
      if (stdin !== undefined) libc.close(stdin[1]);
      throw new SpawnError(`cannot watch the shell: ${this.#message(errno)}`, errno);
    }
    libc.fcntl(fds[0], F_SETFL, O_NONBLOCK);
    libc.fcntl(fds[2], F_SETFL, O_NONBLOCK);
    return this.#watch(pid, pidfd, fds[0], fds[2], stdin?.[1], request);
  }

  /** Writes all of `bytes` to `fd` (a blocking pipe), then closes it; false if the reader is gone. */
  #feed(fd: number, bytes: Uint8Array<ArrayBuffer>): boolean {
    let offset = 0;
    try {
      while (offset < bytes.length) {
        const n = Number(
          this.#libc.write(fd, bytes.subarray(offset), BigInt(bytes.length - offset)),
        );
        if (n > 0) offset += n;
        else if (n < 0 && this.#lastErrno() === EINTR) continue;
        else return false; // EPIPE: SIGPIPE is ignored here, so the write fails instead.
      }
      return true;
    } finally {
      this.#libc.close(fd);
    }
  }

  /** Reads the shell's output and waits for its exit; see the module's documentation. */
  #watch(
    pid: number,
    pidfd: number,
    stdoutFd: number,
    stderrFd: number,
    stdinFd: number | undefined,
    request: SpawnRequest,
  ): StandbySpawn {
    const libc = this.#libc;
    let startWatching!: (blockingWaitMs: number) => void;
    const begun = new Promise<number>((resolve) => startWatching = resolve);
    let feedable = stdinFd;
    let stopRequested = false;
    let settleStatus!: (exit: ShellExit) => void;
    const status = new Promise<ShellExit>((resolve) => settleStatus = resolve);
    // struct pollfd { int fd; short events; short revents; } × 3, reused by every poll of this run.
    const pollBuffer = new Uint8Array(24);
    const pollView = new DataView(pollBuffer.buffer);
    const chunk = this.#readBuffer;
    const waitStatus = new Int32Array(1);
    const streams = [
      { fd: stdoutFd, deliver: request.onStdout },
      { fd: stderrFd, deliver: request.onStderr },
    ];
    let watchingExit = true;

    /** Reads what `fd` holds now; false once it has ended. */
    const drain = (fd: number, deliver: (chunk: Uint8Array) => void): boolean => {
      while (true) {
        const n = Number(libc.read(fd, chunk, BigInt(READ_CHUNK)));
        if (n > 0) {
          deliver(chunk.slice(0, n));
          continue;
        }
        if (n === 0) return false;
        const errno = this.#lastErrno();
        if (errno === EAGAIN) return true;
        if (errno !== EINTR) return false;
      }
    };

    const reap = () => {
      while (true) {
        const reaped = libc.waitpid(pid, waitStatus, WNOHANG);
        if (reaped === pid) break;
        if (reaped === 0) return; // Not yet: the pidfd said so early; poll again.
        if (this.#lastErrno() !== EINTR) {
          // Someone else reaped it (nothing in this process should): no status left.
          waitStatus[0] = 0xff << 8;
          break;
        }
      }
      watchingExit = false;
      libc.close(pidfd);
      settleStatus(decodeWaitStatus(waitStatus[0]));
    };

    const reading = (async () => {
      // Never before spawn() has returned and the caller has armed its timers.
      const blockingWaitMs = await begun;
      // A monotonic clock: a wall clock stepped back would hold this thread for the whole run.
      const blockUntil = performance.now() + blockingWaitMs;
      try {
        while (streams.length > 0 || watchingExit) {
          if (!watchingExit && stopRequested) break;
          const watched = watchingExit
            ? [...streams.map((s) => s.fd), pidfd]
            : streams.map((s) => s.fd);
          watched.forEach((fd, i) => {
            pollView.setInt32(i * 8, fd, true);
            pollView.setInt16(i * 8 + 4, POLLIN, true);
            pollView.setInt16(i * 8 + 6, 0, true);
          });
          // After the exit, short slices: a stop request is seen within one.
          const sliceMs = watchingExit ? 1000 : 20;
          const blockingMs = blockUntil - performance.now();
          const ready = blockingMs > 0
            ? libc.poll_blocking(
              pollBuffer,
              BigInt(watched.length),
              Math.ceil(Math.min(blockingMs, sliceMs)),
            )
            : await libc.poll(pollBuffer, BigInt(watched.length), sliceMs);
          if (ready <= 0) continue; // Timed out, or a signal interrupted it.
          for (let i = streams.length - 1; i >= 0; i--) {
            if (pollView.getInt16(i * 8 + 6, true) === 0) continue;
            if (!drain(streams[i].fd, streams[i].deliver)) {
              libc.close(streams[i].fd);
              streams.splice(i, 1);
            }
          }
          if (watchingExit && pollView.getInt16((watched.length - 1) * 8 + 6, true) !== 0) reap();
        }
      } finally {
        for (const stream of streams) libc.close(stream.fd);
        streams.length = 0;
      }
    })();

    return {
      pid,
      status,
      reading,
      stopReading() {
        stopRequested = true;
      },
      feed: (script) => {
        if (feedable === undefined) return false;
        const fd = feedable;
        feedable = undefined;
        return this.#feed(fd, script);
      },
      begin: (blockingWaitMs) => {
        if (feedable !== undefined) {
          // Never fed: the shell's end of input, so that it ends.
          libc.close(feedable);
          feedable = undefined;
        }
        startWatching(blockingWaitMs);
      },
      exited: () => {
        pollView.setInt32(0, pidfd, true);
        pollView.setInt16(4, POLLIN, true);
        pollView.setInt16(6, 0, true);
        return libc.poll_blocking(pollBuffer, 1n, 0) === 1;
      },
    };
  }
}

function check(result: number, what: string): void {
  if (result !== 0) throw new Error(`${what} failed (${result})`);
}

let cached:
  | { spawner: LibcSpawner; problem: null }
  | { spawner: null; problem: string }
  | undefined;

/**
 * The fast launcher, or why there is none here: not Linux, no glibc, a
 * glibc older than 2.29 (no `posix_spawn_file_actions_addchdir_np`), a
 * kernel without pidfds (before 5.3), no FFI permission, or
 * {@linkcode LAUNCH_VAR} set to `command`. Decided once per thread.
 */
export function libcSpawner(): { spawner: LibcSpawner; problem: null } | {
  spawner: null;
  problem: string;
} {
  if (cached !== undefined) return cached;
  cached = probe();
  return cached;
}

/** Whether {@linkcode LAUNCH_VAR} demands the fast path (`spawn`): then its absence is an error. */
export function fastLaunchRequired(): boolean {
  return Deno.env.get(LAUNCH_VAR) === "spawn";
}

function probe(): { spawner: LibcSpawner; problem: null } | { spawner: null; problem: string } {
  if (Deno.env.get(LAUNCH_VAR) === "command") {
    return { spawner: null, problem: `${LAUNCH_VAR}=command` };
  }
  if (Deno.build.os !== "linux") return { spawner: null, problem: "not Linux" };
  let library: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    library = Deno.dlopen("libc.so.6", SYMBOLS);
  } catch (error) {
    return { spawner: null, problem: `cannot load glibc: ${(error as Error).message}` };
  }
  const libc = library.symbols;
  if (libc.posix_spawn_file_actions_addchdir_np === null) {
    return {
      spawner: null,
      problem: "glibc before 2.29 (no posix_spawn_file_actions_addchdir_np)",
    };
  }
  const pidfd = Number(libc.syscall(SYS_PIDFD_OPEN, BigInt(Deno.pid), 0n));
  if (pidfd < 0) return { spawner: null, problem: "no pidfd_open (Linux before 5.3)" };
  libc.close(pidfd);
  try {
    return { spawner: new LibcSpawner(libc), problem: null };
  } catch (error) {
    return { spawner: null, problem: (error as Error).message };
  }
}
