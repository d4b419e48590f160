/**
 * Simulated hosts (tests/hosts.ts), with real namespaces and real processes:
 * the hostname and the process-id space differ inside, the files are the
 * same, signals reach the command, and a crash ends every process at once.
 *
 * @module
 */

import assert from "node:assert/strict";
import { processExists, readIfExists, waitFor, within, withQueue } from "./helpers.ts";
import { hostTest, runOnHost, startOnHost } from "./hosts.ts";

/** The pids a process has in each pid namespace it is in, outermost first (`NSpid:`). */
function namespacePids(pid: number): number[] {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const line = status.split("\n").find((line) => line.startsWith("NSpid:"));
  assert.ok(line, `an NSpid line in /proc/${pid}/status`);
  return line.slice("NSpid:".length).trim().split(/\s+/).map(Number);
}

/** Whether process `pid` runs `sleep`. */
function isSleep(pid: number): boolean {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/comm`) === "sleep\n";
  } catch {
    return false;
  }
}

/** SIGKILL to `pid`, unless it is gone. */
function killQuietly(pid: number): void {
  try {
    Deno.kill(pid, "SIGKILL");
  } catch {
    // Gone already.
  }
}

hostTest("hosts: a command on a simulated host has its own hostname and pid space", async () => {
  const outside = Deno.hostname();
  const result = await runOnHost("qhost-a", ["sh", "-c", 'hostname; echo "$$"; cat /proc/1/comm']);
  assert.equal(result.code, 0, result.stderr);
  const [hostname, shellPid, init] = result.stdout.trim().split("\n");
  assert.equal(hostname, "qhost-a");
  assert.notEqual(hostname, outside);
  assert.equal(Deno.hostname(), outside, "the hostname outside is untouched");
  assert.ok(Number(shellPid) < 10, `the shell's pid inside is small: ${shellPid}`);
  assert.equal(init, "perl", "pid 1 inside is the host's init");
});

hostTest(
  "hosts: a simulated host shares the file system, and passes the exit code on",
  () =>
    withQueue(async ({ dir }) => {
      const result = await runOnHost("qhost-b", [
        "sh",
        "-c",
        'echo written > "$1"; exit 7',
        "sh",
        `${dir}/f`,
      ]);
      assert.equal(result.code, 7, result.stderr);
      assert.equal(await Deno.readTextFile(`${dir}/f`), "written\n");
    }),
);

hostTest("hosts: two hosts at once each number their processes from 1", async () => {
  const hosts = ["qhost-c", "qhost-d"].map((name) => startOnHost(name, ["sleep", "1000"]));
  try {
    const inits = await Promise.all(hosts.map((host) => host.initPid()));
    assert.notEqual(inits[0], inits[1]);
    for (const init of inits) {
      const pids = namespacePids(init);
      assert.equal(pids.length, 2, `in two pid namespaces: ${pids}`);
      assert.equal(pids[0], init, "its pid outside");
      assert.equal(pids[1], 1, "pid 1 inside");
    }
    // Found by name: the init's first child, for a moment, is the `hostname` it runs.
    const sleepers = await Promise.all(
      hosts.map((host) => waitFor("the sleep", async () => (await host.processes()).find(isSleep))),
    );
    for (const sleeper of sleepers) {
      const [outside, inside] = namespacePids(sleeper);
      assert.ok(inside > 1 && inside < 10 && inside !== outside, `the command inside: ${inside}`);
    }
  } finally {
    for (const host of hosts) killQuietly(host.pid);
  }
});

hostTest(
  "hosts: crash() ends every process on the host at once, none cleaning up",
  () =>
    withQueue(async ({ dir }) => {
      // A sleep, a subshell and its sleep under the command; a shell that would note any signal
      // it could catch, or its own end, in a file.
      const script = 'trap "echo caught >> $0" TERM INT HUP EXIT; ' +
        "sleep 1000 & (sleep 1000; echo never) & sleep 1000; echo never";
      const host = startOnHost("qhost-e", ["sh", "-c", script, `${dir}/trapped`]);
      try {
        const pids = await waitFor("six processes on the host", async () => {
          const pids = await host.processes();
          return pids.length >= 6 ? pids : undefined;
        });
        // init, sh, sleep, subshell, its sleep, sleep
        assert.equal(pids.length, 6, `${pids}`);
        await within(host.crash(), 10_000, "the host's end");
        const gone = () => pids.every((pid) => !processExists(pid));
        await waitFor("every process on the host gone", gone, { timeoutMs: 5_000 });
        assert.equal(host.stdout(), "", "nothing ran on after the crash");
        assert.equal(await readIfExists(`${dir}/trapped`), "", "no trap ran");
      } finally {
        // Should crash() have failed: unshare's --kill-child takes the host down with it.
        killQuietly(host.pid);
      }
    }),
);

hostTest("hosts: signal() reaches the command through the host's init", async () => {
  const host = startOnHost("qhost-f", [
    "sh",
    "-c",
    "trap 'echo got TERM; exit 3' TERM; echo ready; sleep 1000 & wait",
  ]);
  try {
    await waitFor("the trap set", () => host.stdout().includes("ready"));
    await host.signal("SIGTERM");
    const status = await host.status();
    assert.equal(status.code, 3, host.stderr());
    assert.equal(host.stdout(), "ready\ngot TERM\n");
  } finally {
    killQuietly(host.pid);
  }
});
