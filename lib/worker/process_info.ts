/**
 * Facts about processes on this host. Apart from the rescuer so that
 * `enqueue`, which pokes workers, loads none of the worker code.
 *
 * @module
 */

/** This machine's name, as worker records store it. */
export function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost";
  }
}

/**
 * When process `pid` started, as Linux counts it (clock ticks since boot), or
 * null where that cannot be read or the process has exited. With the pid it
 * names one process for good: a pid can be reused, a (pid, start) pair cannot.
 */
export function processStartTime(pid: number): string | null {
  const probe = probeProcess(pid);
  return probe.state === "running" ? probe.start : null;
}

/** What /proc tells of a process: running (with its start time), gone, or nothing. */
export type ProcessProbe =
  | { state: "running"; start: string }
  | { state: "gone" }
  | { state: "unknown" };

/**
 * Looks process `pid` up on this host (Linux). A zombie is `gone`: it has
 * exited, and only its parent has yet to reap it. `unknown` where /proc
 * cannot be read (another OS, no /proc, a process hidden from this user).
 */
export function probeProcess(pid: number): ProcessProbe {
  if (Deno.build.os !== "linux") return { state: "unknown" };
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch (error) {
    return error instanceof Deno.errors.NotFound ? { state: "gone" } : { state: "unknown" };
  }
  // After the command name: field 3 (the state) first, field 22 (the start time) 19 further.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  if (fields[0] === "Z" || fields[0] === "X") return { state: "gone" };
  const start = fields[19];
  return start === undefined ? { state: "unknown" } : { state: "running", start };
}
