#!/usr/bin/env bash
# Makes WebGPU run for real on a machine without a GPU: installs Mesa's lavapipe Vulkan
# driver (a CPU implementation Dawn accepts as an adapter) from Debian bookworm-backports,
# since bookworm's own Mesa 22.3 lacks features Dawn needs. `--browser` also installs
# Chromium for browser tests. Idempotent; needs root and apt. Prints the XDG_RUNTIME_DIR
# to export (Dawn wants one).
set -euo pipefail

want_browser=0
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=1 ;;
    -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup-webgpu: unknown option '$arg' (usage: setup-webgpu.sh [--browser])" >&2; exit 2 ;;
  esac
done

runtime_dir=/tmp/xdg-runtime

lavapipe_ok() {
  ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 &&
    dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -qE '^(2[4-9]|[3-9][0-9])\.'
}
browser_ok() { [ "$want_browser" = 0 ] || command -v chromium >/dev/null; }

if ! lavapipe_ok || ! browser_ok; then
  if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
    cat > /etc/apt/sources.list.d/backports.sources <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt_get() { apt-get -o DPkg::Lock::Timeout=600 "$@"; }
  apt_get update -qq
  lavapipe_ok || apt_get install -y -qq -t bookworm-backports mesa-vulkan-drivers >/dev/null
  browser_ok || apt_get install -y -qq chromium >/dev/null
fi

lavapipe_ok || { echo "setup-webgpu: lavapipe (Mesa >= 24) is still missing after the install" >&2; exit 1; }
mkdir -p "$runtime_dir" && chmod 700 "$runtime_dir"
echo "setup-webgpu: lavapipe $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers) ready; export XDG_RUNTIME_DIR=$runtime_dir"
