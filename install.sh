#!/bin/sh
# Installs the queuectl binary of a release for this machine, without root:
#
#   curl -fsSL <this script's address> | sh                  # the latest release, into ~/.local/bin
#   sh install.sh --version 0.1.0 --dir /opt/tools/bin       # a given release, a given directory
#
# It finds the archive for this OS and CPU in the release's SHA256SUMS, downloads
# it, checks its SHA-256 against that file, and only then puts `queuectl` in place.
# Settings by environment instead of options: QUEUECTL_VERSION, QUEUECTL_INSTALL_DIR;
# QUEUECTL_RELEASES_URL replaces the releases address (a mirror, or a local test).
set -eu

releases="${QUEUECTL_RELEASES_URL:-https://github.com/${QUEUECTL_REPO:-queuectl/queuectl}/releases}"
version="${QUEUECTL_VERSION:-}"
dir="${QUEUECTL_INSTALL_DIR:-${HOME:?HOME is not set: give the directory with --dir}/.local/bin}"

say() { printf 'install.sh: %s\n' "$*"; }
fail() {
  printf 'install.sh: %s\n' "$1" >&2
  exit "${2:-1}"
}

usage() {
  cat <<'EOF'
Usage: install.sh [--version X.Y.Z] [--dir DIRECTORY]
Installs queuectl (default: the latest release, into ~/.local/bin). Never needs root.
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --version | --dir)
      if [ $# -lt 2 ] || [ -z "$2" ]; then fail "option '$1' needs a value" 2; fi
      if [ "$1" = --version ]; then version="$2"; else dir="$2"; fi
      shift 2
      ;;
    --version=*) version="${1#*=}" && shift ;;
    --dir=*) dir="${1#*=}" && shift ;;
    -h | --help) usage && exit 0 ;;
    *) fail "unknown option '$1' (see install.sh --help)" 2 ;;
  esac
done
version="${version#v}"

# The names are Deno's compile targets, as the release archives use them.
os=$(uname -s)
arch=$(uname -m)
case "$os" in
  Linux) os_part=unknown-linux-gnu ;;
  Darwin) os_part=apple-darwin ;;
  MINGW* | MSYS* | CYGWIN*)
    fail "on Windows download queuectl-<version>-x86_64-pc-windows-msvc.zip from $releases" ;;
  *) fail "no queuectl release for this platform ($os $arch)" ;;
esac
case "$arch" in
  x86_64 | amd64) arch_part=x86_64 ;;
  aarch64 | arm64) arch_part=aarch64 ;;
  *) fail "no queuectl release for this platform ($os $arch)" ;;
esac
target="$arch_part-$os_part"
if [ "$os" = Linux ] && ls /lib/ld-musl-* >/dev/null 2>&1 && ! ls /lib*/ld-linux* >/dev/null 2>&1; then
  fail "the Linux binaries need glibc; this system has only musl"
fi

if command -v curl >/dev/null 2>&1; then
  fetch() { curl -fsSL --retry 2 -o "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
  fetch() { wget -q -O "$2" "$1"; }
else
  fail "needs curl or wget to download"
fi
if command -v sha256sum >/dev/null 2>&1; then
  sha256() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then
  sha256() { shasum -a 256 "$1" | cut -d' ' -f1; }
else
  fail "needs sha256sum or shasum to check the download"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/queuectl-install.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ -n "$version" ]; then
  sums_url="$releases/download/v$version/SHA256SUMS"
else
  sums_url="$releases/latest/download/SHA256SUMS"
fi
fetch "$sums_url" "$work/SHA256SUMS" || fail "could not download $sums_url"

# SHA256SUMS names every archive of the release: the one for this target gives the
# version too, so that "latest" needs no other request.
line=$(grep -E "^[0-9a-f]{64} [ *]queuectl-[^ ]+-$target\.tar\.gz$" "$work/SHA256SUMS" | head -n 1)
[ -n "$line" ] || fail "the release at $sums_url has no archive for $target"
expected=${line%% *}
archive=${line##* }
archive=${archive#\*}
found_version=${archive#queuectl-}
found_version=${found_version%-"$target".tar.gz}
if [ -n "$version" ] && [ "$found_version" != "$version" ]; then
  fail "$sums_url lists $archive, not version $version"
fi

archive_url="$releases/download/v$found_version/$archive"
fetch "$archive_url" "$work/$archive" || fail "could not download $archive_url"
actual=$(sha256 "$work/$archive")
if [ "$actual" != "$expected" ]; then
  fail "checksum mismatch for $archive (expected $expected, got $actual): nothing installed"
fi

mkdir -p "$work/unpacked"
tar -xzf "$work/$archive" -C "$work/unpacked" queuectl ||
  fail "$archive holds no queuectl binary"

if [ ! -d "$dir" ]; then
  mkdir -p "$dir" || fail "could not create $dir: choose another directory with --dir"
  say "created $dir"
fi
# Copied beside the target, then renamed over it: a running queuectl keeps its file.
staged="$dir/.queuectl.install.$$"
cp "$work/unpacked/queuectl" "$staged" 2>/dev/null ||
  fail "cannot write to $dir: choose another directory with --dir"
chmod 755 "$staged"
mv -f "$staged" "$dir/queuectl"
say "installed queuectl $found_version ($target) to $dir/queuectl"
"$dir/queuectl" --version || fail "$dir/queuectl does not run on this machine"

case ":$PATH:" in
  *":$dir:"*) ;;
  *) say "$dir is not on your PATH; add it, e.g.: export PATH=\"$dir:\$PATH\"" ;;
esac
