# shellcheck shell=bash
# Shared by every script in scripts/: where the project's Python lives and how to run a command with it.
#
# Home Assistant 2026.10 needs Python >= 3.14.2. When the host has one (and mosquitto >= 2.1 with its headers),
# the venv is `.venv` in the checkout. Otherwise the toolchain is a Debian testing root made with mmdebstrap,
# cached outside the checkout under a key derived from its package list, and every command runs chrooted into it
# inside a private mount namespace, with the checkout (and ../shared) bind-mounted at their own paths.

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SHARED_DIR=$(cd "$TOP/.." && pwd)/shared
CACHE_DIR=${TENCENT_IOT_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tencent-iot-gateway/toolchain}

# What the root is bootstrapped with: everything the tests, the emulator's broker plugin and the Python
# requirements need (g++ builds the two HA voice components' wheels that PyPI has no build of for this Python).
ROOT_PACKAGES="python3,python3-venv,python3-dev,ca-certificates,mosquitto,mosquitto-dev,libmosquitto-dev,gcc,g++,libc6-dev,libssl-dev"
# Installed by apt inside the bootstrapped root while the Python requirements install beside it, as neither needs
# the other. Chromium is for the browser tests, with a CJK font (fonts-wqy-zenhei) for their Simplified Chinese
# pages and screenshots; libturbojpeg serves HA's camera component (which its frontend loads), git is for the
# test of scripts/release.
ROOT_APT_PACKAGES="chromium fonts-dejavu-core fonts-wqy-zenhei git libturbojpeg0"
ROOT_SUITE=testing
ROOT_FORMAT=2 # bump when the way a root is assembled changes
# uv installs requirements_test.txt into the root's venv (much faster than pip); the version is pinned here, and
# its wheel cache lives beside the roots so that a new root or a changed pin downloads only what is new.
UV_VERSION=0.13.9
UV_CACHE="$CACHE_DIR/uv"

ROOT_KEY=$(printf '%s|%s|%s|%s' "$ROOT_SUITE" "$ROOT_PACKAGES" "$ROOT_APT_PACKAGES" "$ROOT_FORMAT" | sha256sum | cut -c1-16)
ROOT_DIR="$CACHE_DIR/root-$ROOT_KEY"
ROOT_VENV=/opt/venv
ROOT_PATH="$ROOT_VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# The stamp records what the environment was built from; a different stamp means "run scripts/setup again".
wanted_stamp() {
  local inputs=("$TOP/requirements_test.txt" "$TOP/scripts/lib/toolchain.sh")
  shopt -s nullglob
  inputs+=("$TOP"/tencent_iot_emulator/broker_plugin/*.c)
  shopt -u nullglob
  cat "${inputs[@]}" | sha256sum | cut -c1-64
}

python_is_new_enough() { # $1 = interpreter
  "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 14, 2) else 1)' 2>/dev/null
}

host_python() {
  local candidate
  for candidate in python3.14 python3; do
    if command -v "$candidate" >/dev/null && python_is_new_enough "$candidate"; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

host_has_broker() {
  command -v mosquitto >/dev/null &&
    mosquitto -h 2>/dev/null | head -1 | grep -Eq 'mosquitto version (2\.[1-9]|[3-9])' &&
    [ -f /usr/include/mosquitto.h ] && command -v gcc >/dev/null
}

# "host" when this machine can run everything itself, "root" otherwise.
toolchain_mode() {
  if [ "${TENCENT_IOT_FORCE_ROOT:-0}" != 1 ] && host_python >/dev/null && host_has_broker; then
    echo host
  else
    echo root
  fi
}

stamp_file() {
  if [ "$(toolchain_mode)" = host ]; then echo "$TOP/.venv/.setup-stamp"; else echo "$ROOT_DIR$ROOT_VENV/.setup-stamp"; fi
}

PLUGIN_SOURCE="$TOP/tencent_iot_emulator/broker_plugin/tencent_auth.c"
PLUGIN_BINARY="$TOP/build/tencent_auth_plugin.so"

# The toolchain is shared between checkouts; the compiled broker plugin belongs to each checkout.
requirements_are_current() {
  local file
  file=$(stamp_file)
  [ -f "$file" ] && [ "$(cat "$file")" = "$(wanted_stamp)" ]
}

plugin_is_current() {
  [ ! -f "$PLUGIN_SOURCE" ] || { [ -f "$PLUGIN_BINARY" ] && [ "$PLUGIN_BINARY" -nt "$PLUGIN_SOURCE" ]; }
}

environment_is_current() {
  requirements_are_current && plugin_is_current
}

ensure_environment() {
  environment_is_current && return 0
  # A checkout whose toolchain is current only lacks its own broker plugin: scripts/setup says so itself.
  requirements_are_current ||
    log "The toolchain is missing or older than requirements_test.txt and scripts/lib/toolchain.sh: running scripts/setup first."
  "$TOP/scripts/setup" >&2 </dev/null || exit $?
}

# Runs "$@" chrooted into the root at $1 (not necessarily $ROOT_DIR: setup fills a root before it takes its name).
in_root() {
  local root=$1 workdir=$PWD
  shift
  # A private mount namespace: the bind mounts vanish with the process, however it ends.
  unshare --mount --propagation private -- "$TOP/scripts/lib/enter-root" "$root" "$TOP" "$SHARED_DIR" "$workdir" "$ROOT_PATH" "$@"
}

# Runs "$@" in the project's environment, venv active, from the current directory.
in_environment() {
  if [ "$(toolchain_mode)" = host ]; then
    PATH="$TOP/.venv/bin:$PATH" VIRTUAL_ENV="$TOP/.venv" "$@"
    return $?
  fi
  in_root "$ROOT_DIR" "$@"
}
