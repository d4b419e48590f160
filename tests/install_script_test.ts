/**
 * install.sh against fake release files served on loopback, laid out as the
 * releases are (`latest/download/SHA256SUMS`, `download/v<version>/<archive>`).
 * The "binary" in each archive is a shell script that prints a version line, so
 * that the installer's own run of `queuectl --version` can be seen. A platform
 * other than this one is faked with a `uname` script first on PATH.
 *
 * @module
 */

import assert from "node:assert/strict";
import { pathExists } from "./helpers.ts";

const SCRIPT = new URL("../install.sh", import.meta.url).pathname;
const decoder = new TextDecoder();

/** This machine's release target, as install.sh names it. */
function hostTarget(): string {
  const arch = Deno.build.arch;
  return Deno.build.os === "darwin" ? `${arch}-apple-darwin` : `${arch}-unknown-linux-gnu`;
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function run(command: string, args: string[], cwd?: string): Promise<void> {
  const result = await new Deno.Command(command, { args, cwd, stderr: "piped" }).output();
  assert.equal(result.code, 0, `${command} ${args.join(" ")}: ${decoder.decode(result.stderr)}`);
}

/** A release's files: its archives by target and the SHA256SUMS text to serve. */
interface FakeRelease {
  version: string;
  targets: string[];
  /** Replaces the served SHA256SUMS (to make it lie). */
  sums?: (honest: string) => string;
}

/** Fake releases on a loopback server; `requests` records every path asked for. */
interface FakeServer {
  url: string;
  requests: string[];
  close(): Promise<void>;
}

async function serveReleases(root: string, releases: FakeRelease[]): Promise<FakeServer> {
  const files = new Map<string, Uint8Array<ArrayBuffer>>();
  for (const release of releases) {
    const sums: string[] = [];
    for (const target of release.targets) {
      const stage = await Deno.makeTempDir({ dir: root });
      await Deno.writeTextFile(
        `${stage}/queuectl`,
        `#!/bin/sh\necho "queuectl ${release.version} (fake, ${target})"\n`,
        { mode: 0o755 },
      );
      const name = `queuectl-${release.version}-${target}.tar.gz`;
      await run("tar", ["-czf", name, "queuectl"], stage);
      const bytes = await Deno.readFile(`${stage}/${name}`);
      files.set(`/releases/download/v${release.version}/${name}`, bytes);
      sums.push(`${await sha256(bytes)}  ${name}`);
    }
    const honest = sums.join("\n") + "\n";
    const text = new TextEncoder().encode(release.sums ? release.sums(honest) : honest);
    files.set(`/releases/download/v${release.version}/SHA256SUMS`, text);
    // The first release listed is the latest.
    if (release === releases[0]) files.set("/releases/latest/download/SHA256SUMS", text);
  }
  const requests: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const path = new URL(request.url).pathname;
    requests.push(path);
    const body = files.get(path);
    return body ? new Response(body) : new Response("not found", { status: 404 });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/releases`,
    requests,
    close: () => server.shutdown(),
  };
}

interface InstallResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs install.sh with a home of its own, optionally as another user or with a fake uname. */
async function install(
  args: string[],
  options: { server: FakeServer; home: string; fakeUname?: [string, string]; user?: number },
): Promise<InstallResult> {
  let path = "/usr/local/bin:/usr/bin:/bin";
  if (options.fakeUname) {
    const bin = `${options.home}/fake-bin`;
    await Deno.mkdir(bin, { recursive: true });
    const [os, arch] = options.fakeUname;
    await Deno.writeTextFile(
      `${bin}/uname`,
      `#!/bin/sh\ncase "$1" in -s) echo ${os} ;; -m) echo ${arch} ;; *) exit 1 ;; esac\n`,
      { mode: 0o755 },
    );
    path = `${bin}:${path}`;
  }
  const env = { HOME: options.home, PATH: path, QUEUECTL_RELEASES_URL: options.server.url };
  const command = options.user === undefined
    ? new Deno.Command("sh", { args: [SCRIPT, ...args], env, clearEnv: true })
    : new Deno.Command("setpriv", {
      args: [
        `--reuid=${options.user}`,
        `--regid=${options.user}`,
        "--clear-groups",
        "sh",
        SCRIPT,
        ...args,
      ],
      env,
      clearEnv: true,
    });
  const result = await command.output();
  return {
    code: result.code,
    stdout: decoder.decode(result.stdout),
    stderr: decoder.decode(result.stderr),
  };
}

/** Runs `fn` with a temp dir (readable by everyone, for the unprivileged user) and a server. */
async function withReleases(
  releases: FakeRelease[],
  fn: (server: FakeServer, root: string) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "queuectl-install-" });
  await Deno.chmod(root, 0o755);
  const server = await serveReleases(root, releases);
  try {
    await fn(server, root);
  } finally {
    await server.close();
    await Deno.remove(root, { recursive: true });
  }
}

const IS_ROOT = Deno.uid() === 0;
/** An unprivileged user to install as, when the tests run as root: `nobody`. */
const NOBODY = 65534;

Deno.test("install.sh installs the latest release into ~/.local/bin, created, without root", () =>
  withReleases([
    { version: "0.3.0", targets: [hostTarget(), "aarch64-apple-darwin"] },
    { version: "0.2.0", targets: [hostTarget()] },
  ], async (server, root) => {
    const home = `${root}/home`;
    await Deno.mkdir(home);
    // As root, the install runs as nobody: it must need no more than the user's own home.
    if (IS_ROOT) await Deno.chown(home, NOBODY, NOBODY);
    const result = await install([], { server, home, user: IS_ROOT ? NOBODY : undefined });
    assert.equal(result.code, 0, result.stderr);
    const dir = `${home}/.local/bin`;
    const installed = await Deno.stat(`${dir}/queuectl`);
    assert.ok((installed.mode! & 0o111) !== 0, "the binary is executable");
    if (IS_ROOT) assert.equal(installed.uid, NOBODY, "installed as the user, not as root");
    assert.equal(
      result.stdout,
      [
        `install.sh: created ${dir}`,
        `install.sh: installed queuectl 0.3.0 (${hostTarget()}) to ${dir}/queuectl`,
        `queuectl 0.3.0 (fake, ${hostTarget()})`,
        `install.sh: ${dir} is not on your PATH; add it, e.g.: export PATH="${dir}:$PATH"`,
        "",
      ].join("\n"),
    );
    assert.equal(result.stderr, "");
    assert.deepEqual(server.requests, [
      "/releases/latest/download/SHA256SUMS",
      `/releases/download/v0.3.0/queuectl-0.3.0-${hostTarget()}.tar.gz`,
    ]);
  }));

Deno.test("install.sh --version and --dir install that release into that directory", () =>
  withReleases([
    { version: "0.3.0", targets: [hostTarget()] },
    { version: "0.2.0", targets: [hostTarget()] },
  ], async (server, root) => {
    const dir = `${root}/tools/deep/bin`;
    const result = await install(["--version", "v0.2.0", "--dir", dir], { server, home: root });
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      new RegExp(`installed queuectl 0\\.2\\.0 .* to ${dir}/queuectl\\n`),
    );
    const ran = await new Deno.Command(`${dir}/queuectl`, { args: ["--version"] }).output();
    assert.equal(decoder.decode(ran.stdout), `queuectl 0.2.0 (fake, ${hostTarget()})\n`);
    assert.equal(server.requests[0], "/releases/download/v0.2.0/SHA256SUMS");
    assert.ok(!(await pathExists(`${root}/.local`)), "nothing went to the default directory");
  }));

Deno.test("install.sh refuses an archive whose checksum does not match, leaving the old binary", () =>
  withReleases([{
    version: "0.3.0",
    targets: [hostTarget()],
    sums: (honest) => honest.replace(/^[0-9a-f]/, (c) => c === "0" ? "1" : "0"),
  }], async (server, root) => {
    const dir = `${root}/bin`;
    await Deno.mkdir(dir);
    await Deno.writeTextFile(`${dir}/queuectl`, "the old one\n");
    const result = await install(["--dir", dir], { server, home: root });
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /^install\.sh: checksum mismatch for queuectl-0\.3\.0-\S+\.tar\.gz \(expected [0-9a-f]{64}, got [0-9a-f]{64}\): nothing installed\n$/,
    );
    assert.equal(await Deno.readTextFile(`${dir}/queuectl`), "the old one\n");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["queuectl"]);
  }));

Deno.test("install.sh refuses a platform without a release, before downloading anything", () =>
  withReleases([{ version: "0.3.0", targets: [hostTarget()] }], async (server, root) => {
    for (
      const [os, arch, message] of [
        ["SunOS", "x86_64", "no queuectl release for this platform (SunOS x86_64)"],
        ["Linux", "riscv64", "no queuectl release for this platform (Linux riscv64)"],
        [
          "MINGW64_NT-10.0",
          "x86_64",
          "on Windows download queuectl-<version>-x86_64-pc-windows-msvc.zip",
        ],
      ]
    ) {
      const result = await install([], { server, home: root, fakeUname: [os, arch] });
      assert.equal(result.code, 1, `${os} ${arch}`);
      assert.ok(result.stderr.startsWith(`install.sh: ${message}`), result.stderr);
      assert.equal(result.stderr.split("\n").length, 2, "one line");
    }
    assert.deepEqual(server.requests, []);
    // A known platform the release has no archive for (here only the host's is built).
    const other = Deno.build.arch === "x86_64" ? "aarch64" : "x86_64";
    const result = await install([], { server, home: root, fakeUname: ["Linux", other] });
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      `install.sh: the release at ${server.url}/latest/download/SHA256SUMS has no archive for ${other}-unknown-linux-gnu\n`,
    );
    assert.ok(!(await pathExists(`${root}/.local`)), "no directory was created");
  }));

Deno.test("install.sh refuses bad options with exit 2, and a directory it cannot write", () =>
  withReleases([{ version: "0.3.0", targets: [hostTarget()] }], async (server, root) => {
    const unknown = await install(["--prefix", "/x"], { server, home: root });
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stderr, "install.sh: unknown option '--prefix' (see install.sh --help)\n");
    const bare = await install(["--dir"], { server, home: root });
    assert.equal(bare.code, 2);
    assert.equal(bare.stderr, "install.sh: option '--dir' needs a value\n");
    assert.deepEqual(server.requests, []);
    if (!IS_ROOT) return;
    // nobody cannot write to a directory of root's: refused in one line, not retried with sudo.
    const dir = `${root}/root-only`;
    await Deno.mkdir(dir, { mode: 0o755 });
    const home = `${root}/home`;
    await Deno.mkdir(home);
    await Deno.chown(home, NOBODY, NOBODY);
    const result = await install(["--dir", dir], { server, home, user: NOBODY });
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      `install.sh: cannot write to ${dir}: choose another directory with --dir\n`,
    );
  }));

const HAS_SHELLCHECK =
  (await new Deno.Command("sh", { args: ["-c", "command -v shellcheck"], stdout: "null" }).output())
    .success;

Deno.test({
  name: "install.sh is clean under shellcheck",
  ignore: !HAS_SHELLCHECK,
  fn: async () => {
    const result = await new Deno.Command("shellcheck", { args: [SCRIPT] }).output();
    assert.equal(result.code, 0, decoder.decode(result.stdout));
  },
});
