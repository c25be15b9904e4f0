#!/usr/bin/env bash
# Install edgekit-runtime on a Raspberry Pi (or another Debian-based board) as a systemd service.
#
#   sudo bash install.sh --from ./edgekit_runtime-0.1.0-py3-none-any.whl   # a wheel built on the host
#   sudo bash install.sh                          # edgekit-runtime from the package index
#   bash install.sh --check                       # say what would be installed here; change nothing
#
# Options:
#   --backend auto|onnx|litert   the engine: auto is onnxruntime on 64-bit OSes, LiteRT on 32-bit Arm
#   --from SPEC                  what pip installs: a wheel, a source folder (runtime/) or a name [edgekit-runtime]
#   --prefix DIR                 where the virtual environment and bundles go [/opt/edgekit]
#   --no-service                 only the virtual environment: no user, no /etc/edgekit, no systemd unit
#   --check                      print the plan (or why it cannot work) and exit
#
# Which wheels exist where is in README.md ("Wheels"): onnxruntime and ai-edge-litert publish aarch64 wheels
# for Python 3.11 to 3.13 and nothing for 32-bit Arm; tflite-runtime has a 32-bit Arm wheel for Python 3.11
# only, built against NumPy 1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
backend=auto
spec=edgekit-runtime
prefix=/opt/edgekit
service=1
check=0
python="${PYTHON:-python3}"
piwheels=https://www.piwheels.org/simple

die() { echo "error: $*" >&2; exit 1; }
say() { echo "==> $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --backend) backend="${2:?--backend needs auto, onnx or litert}"; shift 2 ;;
    --from) spec="${2:?--from needs a wheel, a folder or a name}"; shift 2 ;;
    --prefix) prefix="${2:?--prefix needs a folder}"; shift 2 ;;
    --no-service) service=0; shift ;;
    --check) check=1; shift ;;
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see: bash install.sh --help)" ;;
  esac
done
case "$backend" in auto|onnx|litert) ;; *) die "--backend '$backend': use auto, onnx or litert" ;; esac

# The userland's architecture decides the wheels: 32-bit Pi OS runs a 64-bit kernel on a Pi 4, so uname -m
# says aarch64 while dpkg (and pip) say armhf. EDGEKIT_ARCH and EDGEKIT_PYTHON_VERSION stand in for them in tests.
command -v "$python" >/dev/null || die "no $python: sudo apt-get install python3"
arch="${EDGEKIT_ARCH:-$(dpkg --print-architecture 2>/dev/null || uname -m)}"
pyver="${EDGEKIT_PYTHON_VERSION:-$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')}"
pyminor="${pyver#3.}"
if [ "${pyver%%.*}" != 3 ] || ! [ "$pyminor" -ge 10 ] 2>/dev/null; then
  die "Python $pyver is too old: edgekit-runtime needs 3.10 or newer"
fi

index_args=()
extra_reqs=()
case "$arch" in
  arm64|aarch64|amd64|x86_64)
    [ "$backend" = auto ] && backend=onnx
    ;;
  armhf|armv7l)
    [ "$backend" = onnx ] && die "there is no onnxruntime wheel for 32-bit Arm ($arch): use --backend litert with .tflite bundles, or install the 64-bit Raspberry Pi OS"
    backend=litert
    # ai-edge-litert has no 32-bit Arm wheel; tflite-runtime has one for Python 3.11 only, built against NumPy 1
    [ "$pyminor" -le 11 ] || die "no LiteRT or tflite-runtime wheel for 32-bit Arm with Python $pyver: install the 64-bit Raspberry Pi OS"
    extra_reqs=("tflite-runtime" "numpy<2")
    # PyPI has no 32-bit Arm wheels of numpy, uvloop, httptools or cffi; piwheels builds them for Pi OS
    index_args=(--extra-index-url "$piwheels")
    ;;
  armel|armv6l)
    die "no inference engine has wheels for armv6 (Pi Zero W, Pi 1): use a Pi Zero 2 W or newer with the 64-bit OS"
    ;;
  *)
    die "untested architecture '$arch': install by hand with pip install 'edgekit-runtime[onnx]'"
    ;;
esac

if [ "$backend" = onnx ]; then
  target="${spec}[onnx]"
elif [ ${#extra_reqs[@]} -gt 0 ]; then
  target="$spec"  # the runtime, and tflite-runtime beside it
else
  target="${spec}[litert]"
fi
venv="$prefix/venv"

say "architecture $arch, Python $pyver: backend $backend"
say "pip install ${index_args[*]:+${index_args[*]} }$(printf "'%s' " "$target" "${extra_reqs[@]}")into $venv"
if [ "$service" = 1 ]; then
  say "service: user edgekit, /etc/edgekit/edgekit-runtime.toml, /etc/systemd/system/edgekit-runtime.service"
fi
[ "$check" = 1 ] && exit 0

if [ "$service" = 1 ] && [ "$(id -u)" -ne 0 ]; then
  die "installing the service needs root: sudo bash install.sh (or --no-service for the environment alone)"
fi

if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
  say "installing python3-venv"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
mkdir -p "$prefix"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
# pip's own account of a failure is pages long: keep it in a log, and say in one line what it means here
piplog="$prefix/pip-install.log"
if ! "$venv/bin/python" -m pip install -q "${index_args[@]}" "$target" "${extra_reqs[@]}" >"$piplog" 2>&1; then
  case "$arch" in
    armhf|armv7l)
      die "pip could not install $target for 32-bit Arm with Python $pyver (its log: $piplog): numpy, uvloop, httptools and msgspec come from piwheels.org, which must be reachable; or install the 64-bit Raspberry Pi OS" ;;
    *)
      die "pip could not install $target for $arch with Python $pyver (its log: $piplog): check the network and the package index, then run install.sh again" ;;
  esac
fi
say "installed: $("$venv/bin/edgekit-runtime" --version)"

if [ "$service" = 1 ]; then
  id edgekit >/dev/null 2>&1 || useradd --system --home-dir /var/lib/edgekit-runtime --no-create-home \
    --shell /usr/sbin/nologin edgekit
  install -d -m 0755 /etc/edgekit /etc/edgekit/trusted "$prefix/bundles"
  if [ ! -e /etc/edgekit/edgekit-runtime.toml ]; then
    install -m 0640 -g edgekit "$here/edgekit-runtime.toml" /etc/edgekit/edgekit-runtime.toml
  else
    say "kept /etc/edgekit/edgekit-runtime.toml"
  fi
  install -m 0644 "$here/edgekit-runtime.service" /etc/systemd/system/edgekit-runtime.service
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable edgekit-runtime.service
  else
    say "systemd is not running here: run 'systemctl enable edgekit-runtime' on the device"
  fi
fi

"$venv/bin/edgekit-runtime" doctor || say "doctor found a problem: fix it before starting the service"
if [ "$service" = 1 ]; then
  say "next: copy a bundle to $prefix/bundles/ and its signer's .pub to /etc/edgekit/trusted/, check"
  say "/etc/edgekit/edgekit-runtime.toml, then: sudo systemctl start edgekit-runtime"
fi
