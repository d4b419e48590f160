/**
 * `queuectl migrate`: brings the database's schema up to date for this
 * queuectl, under the database's write lock, and says what it did. Other
 * commands migrate an older database on their own too (see openStore); this
 * one does nothing else, so that an upgrade can be done, and seen, apart.
 *
 * @module
 */

import { migrateStore } from "../../store/mod.ts";
import type { CommandContext } from "../context.ts";
import { writeOut } from "../output.ts";

/** Runs `migrate`. */
export async function run({ location }: CommandContext): Promise<number> {
  const { from, to } = await migrateStore(location);
  if (from === to) writeOut(`database at version ${to}, nothing to do\n`);
  else if (from === 0) writeOut(`created a new database at version ${to}\n`);
  else writeOut(`migrated from version ${from} to ${to}\n`);
  return 0;
}
