/**
 * `queuectl config get|set|list`: queue-wide settings.
 *
 * @module
 */

import {
  CONFIG_KEYS,
  configField,
  configKey,
  configToJson,
  describeConfigKey,
  formatConfigValue,
  parseConfigValue,
} from "../../config.ts";
import { UsageError } from "../../errors.ts";
import type { CommandContext } from "../context.ts";
import { printJson, writeOut } from "../output.ts";

function expectArgs(positionals: string[], names: string[], command: string): void {
  if (positionals.length < names.length) {
    throw new UsageError(
      `missing ${names[positionals.length]}: queuectl config ${command} ${
        names.map((n) => `<${n}>`).join(" ")
      }`,
    );
  }
  if (positionals.length > names.length) {
    throw new UsageError(
      `config ${command} takes ${
        names.length === 0 ? "no arguments" : names.map((n) => `<${n}>`).join(" ")
      }`,
    );
  }
}

/** Runs `config get`, `config set` or `config list`. */
export async function run({ path, args, openStore }: CommandContext): Promise<number> {
  const command = path[1];
  const positionals = args.positionals;
  if (command === "get") expectArgs(positionals, ["key"], command);
  else if (command === "set") expectArgs(positionals, ["key", "value"], command);
  else expectArgs(positionals, [], command);
  // Validate before opening, so that a refused command touches nothing.
  const key = command === "list" ? undefined : configKey(positionals[0]);
  const value = command === "set" ? parseConfigValue(key!, positionals[1]) : undefined;

  const store = await openStore();
  try {
    if (command === "set") {
      // The store takes the setting's field; the user's spelling stays here, at the edge.
      await store.setConfig(configField(key!), value!);
      // What was stored, as config get prints it: `max_retries 05` reads back as max-retries = 5.
      writeOut(`${key} = ${formatConfigValue(key!, await store.getConfig())}\n`);
      return 0;
    }
    const config = await store.getConfig();
    if (command === "get") {
      writeOut(formatConfigValue(key!, config) + "\n");
    } else if (args.options.json) {
      printJson(configToJson(config));
    } else {
      const width = Math.max(...CONFIG_KEYS.map((k) => k.length));
      writeOut(
        CONFIG_KEYS.map((key) =>
          `${key.padEnd(width)}  ${formatConfigValue(key, config).padEnd(6)}  # ${
            describeConfigKey(key)
          }`
        ).join("\n") + "\n",
      );
    }
    return 0;
  } finally {
    await store.close();
  }
}
