/**
 * The Web Worker that claims and runs jobs, one at a time, on its own
 * database connection. Started by the supervisor with a `start` message; the
 * work itself is a {@linkcode JobRunner}'s, and this module only turns
 * messages into its calls and its end into messages.
 *
 * @module
 */

import type { DbLocation } from "../db_location.ts";
import { openStore } from "../store/mod.ts";
import { JobRunner } from "./job_runner.ts";
import type { FromWorker, ToWorker } from "./messages.ts";

interface WorkerScope {
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;

/** Made by the `start` message; messages before it have nothing to act on. */
let runner: JobRunner | undefined;

scope.onmessage = (event) => {
  const message = event.data;
  if (message.type === "start") {
    // Made at once, not once the store is open: a stop or kill may come meanwhile.
    runner = new JobRunner({
      processId: message.processId,
      index: message.index,
      once: message.once,
      wakeable: message.wakeable,
      runsDir: message.runsDir,
      cgroups: message.cgroups,
      queues: message.queues,
    });
    serve(runner, message.location, message.writeTurns).catch((error) => {
      scope.postMessage({ type: "fatal", message: (error as Error).message });
    });
  } else if (message.type === "wake") {
    runner?.wake();
  } else if (message.type === "stop") {
    runner?.stop();
  } else if (message.type === "kill") {
    runner?.kill();
  } else if (message.type === "killJob") {
    runner?.killJob(message.claimToken, message.mode);
  }
};

/** Opens this worker's own connection, runs until stopped, and says so. */
async function serve(
  runner: JobRunner,
  location: DbLocation,
  writeTurns: SharedArrayBuffer,
): Promise<void> {
  // Claims, outcomes and live output, one at a time: two connections suffice.
  const store = await openStore(location, { connections: 2, writeTurns });
  const end = await runner.start(store);
  if (end === "done") scope.postMessage({ type: "done" });
  await store.close();
  scope.postMessage({ type: "stopped" });
  scope.close();
}
