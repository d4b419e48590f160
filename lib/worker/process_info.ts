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
 * null where that cannot be read. With the pid it names one process for
 * good: a pid can be reused, a (pid, start) pair cannot.
 */
export function processStartTime(pid: number): string | null {
  if (Deno.build.os !== "linux") return null;
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[19] ?? null;
  } catch {
    return null;
  }
}
