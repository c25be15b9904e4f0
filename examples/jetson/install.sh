#!/usr/bin/env bash
# Install edgekit-runtime on an NVIDIA Jetson (Orin with JetPack 6) as a systemd service, on the GPU.
#
#   sudo bash install.sh --from ./edgekit_runtime-0.1.0-py3-none-any.whl   # a wheel built on the host
#   sudo bash install.sh                          # edgekit-runtime from the package index
#   bash install.sh --check                       # say what would be installed here; change nothing
#
# Options:
#   --backend auto|gpu|cpu   gpu: NVIDIA's onnxruntime-gpu (TensorRT, CUDA, then the CPU); cpu: PyPI's onnxruntime;
#                            auto: gpu where NVIDIA publishes a wheel for this JetPack, else cpu
#   --from SPEC              what pip installs: a wheel, a source folder (runtime/) or a name [edgekit-runtime]
#   --prefix DIR             where the virtual environment and bundles go [/opt/edgekit]
#   --index URL              where onnxruntime-gpu comes from [NVIDIA's index for this JetPack]
#   --no-service             only the virtual environment: no user, no /etc/edgekit, no systemd unit
#   --check                  print the plan (or why it cannot work) and exit
#
# /etc/nv_tegra_release says which Jetson Linux (L4T) this is: "# R36 (release), REVISION: 4.0, ..." is L4T
# 36.4.0, JetPack 6.1. L4T R36.4 and later R36 releases (JetPack 6.1, 6.2) have CUDA 12.6, for which NVIDIA's
# Jetson AI Lab publishes onnxruntime-gpu wheels (PyPI's onnxruntime-gpu is built for x86-64 only). JetPack 6.0
# (R36.2, R36.3) has CUDA 12.2, and JetPack 5 (R35) Python 3.8, which edgekit-runtime does not support.
# EDGEKIT_ROOT (a folder standing in for /), EDGEKIT_ARCH and EDGEKIT_PYTHON_VERSION stand in for this machine
# in tests.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
backend=auto
spec=edgekit-runtime
prefix=/opt/edgekit
index=""
service=1
check=0
python="${PYTHON:-python3}"
root="${EDGEKIT_ROOT:-}"
jp6_index=https://pypi.jetson-ai-lab.io/jp6/cu126
ort_gpu="onnxruntime-gpu>=1.20"
cuda_libs=/usr/local/cuda/lib64

die() { echo "error: $*" >&2; exit 1; }
say() { echo "==> $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --backend) backend="${2:?--backend needs auto, gpu or cpu}"; shift 2 ;;
    --from) spec="${2:?--from needs a wheel, a folder or a name}"; shift 2 ;;
    --prefix) prefix="${2:?--prefix needs a folder}"; shift 2 ;;
    --index) index="${2:?--index needs a URL}"; shift 2 ;;
    --no-service) service=0; shift ;;
    --check) check=1; shift ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see: bash install.sh --help)" ;;
  esac
done
case "$backend" in auto|gpu|cpu) ;; *) die "--backend '$backend': use auto, gpu or cpu" ;; esac

# Which Jetson Linux, hence which JetPack, CUDA and wheels
release_file="$root/etc/nv_tegra_release"
l4t=""
if [ -e "$release_file" ]; then
  l4t="$(sed -n 's/^# R\([0-9][0-9]*\) (release), REVISION: \([0-9][0-9.]*\),.*/\1.\2/p' "$release_file" | head -n 1)"
  [ -n "$l4t" ] || die "$release_file does not read like a Jetson Linux release ('# R36 (release), REVISION: 4.0, ...'): use --backend cpu, or --backend gpu --index URL"
fi
l4t_major="${l4t%%.*}"
l4t_rest="${l4t#*.}"
l4t_minor="${l4t_rest%%.*}"
gpu_index=""
no_gpu=""  # why this release gets no GPU build, where it gets none
case "$l4t_major" in
  "") ;;
  36)
    if [ "$l4t_minor" -ge 4 ]; then
      jetpack="JetPack 6 (CUDA 12.6)"
      gpu_index="$jp6_index"
    else
      jetpack="JetPack 6.0 (CUDA 12.2)"
      no_gpu="NVIDIA's onnxruntime-gpu wheels for JetPack 6 ($jp6_index) need CUDA 12.6: upgrade to JetPack 6.1 or newer (L4T R36.4), or use --backend gpu --index URL"
    fi
    ;;
  34|35)
    jetpack="JetPack 5 (CUDA 11.4)"
    if [ "$backend" != cpu ] && [ -z "$index" ]; then
      die "L4T $l4t is JetPack 5 (Ubuntu 20.04, Python 3.8, CUDA 11.4): NVIDIA publishes no onnxruntime-gpu for the Python 3.10+ edgekit-runtime needs: upgrade to JetPack 6.1 or newer, or use --backend cpu with a Python 3.10+ (PYTHON=python3.10)"
    fi
    ;;
  *)
    jetpack="a release this script does not know"
    no_gpu="no onnxruntime-gpu index is known here for L4T $l4t: use --backend gpu --index URL"
    ;;
esac
[ -n "$index" ] && gpu_index="$index"

if [ "$backend" = auto ]; then
  if [ -n "$gpu_index" ]; then backend=gpu; else backend=cpu; fi
fi
if [ "$backend" = gpu ]; then
  [ -n "$l4t" ] || die "--backend gpu: this is not a Jetson (no $release_file): on a PC with an NVIDIA GPU, pip install onnxruntime-gpu from PyPI; here, use --backend cpu"
  [ -n "$gpu_index" ] || die "--backend gpu: L4T $l4t is $jetpack: $no_gpu"
  cpu_why=""
elif [ -z "$l4t" ]; then
  cpu_why="not a Jetson (no $release_file)"
elif [ -n "$gpu_index" ]; then
  cpu_why="--backend cpu (the default here is NVIDIA's onnxruntime-gpu)"
else
  cpu_why="${no_gpu:-L4T $l4t is $jetpack}"
fi

# The userland's architecture decides the wheels (a Jetson's is arm64); EDGEKIT_ARCH and EDGEKIT_PYTHON_VERSION
# stand in for them in tests.
arch="${EDGEKIT_ARCH:-$(dpkg --print-architecture 2>/dev/null || uname -m)}"
case "$arch" in
  arm64|aarch64) ;;
  amd64|x86_64) [ "$backend" = cpu ] || die "NVIDIA's Jetson wheels are for arm64, and this is $arch: use --backend cpu" ;;
  *) die "untested architecture '$arch': install by hand with pip install 'edgekit-runtime[onnx]'" ;;
esac
command -v "$python" >/dev/null || die "no $python: sudo apt-get install python3"
pyver="${EDGEKIT_PYTHON_VERSION:-$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')}"
pyminor="${pyver#3.}"
if [ "${pyver%%.*}" != 3 ] || ! [ "$pyminor" -ge 10 ] 2>/dev/null; then
  die "Python $pyver is too old: edgekit-runtime needs 3.10 or newer (JetPack 6 has 3.10; elsewhere PYTHON=python3.10 bash install.sh)"
fi

index_args=()
if [ "$backend" = gpu ]; then
  # edgekit-runtime without its [onnx] extra: that would bring PyPI's CPU onnxruntime, which installs the same
  # module as onnxruntime-gpu
  index_args=(--extra-index-url "$gpu_index")
  reqs=("$spec" "$ort_gpu")
  what="NVIDIA's onnxruntime-gpu: TensorRT, then CUDA, then the CPU"
else
  reqs=("${spec}[onnx]")
  what="onnxruntime from PyPI, CPU only"
fi
venv="$prefix/venv"

if [ -n "$l4t" ]; then say "Jetson: L4T $l4t, $jetpack"; fi
say "architecture $arch, Python $pyver: backend $backend ($what)"
if [ -n "$cpu_why" ]; then say "the GPU is not used: $cpu_why"; fi
say "pip install ${index_args[*]:+${index_args[*]} }$(printf "'%s' " "${reqs[@]}")into $venv"
if [ "$service" = 1 ]; then
  say "service: user edgekit (groups video, render), /etc/edgekit/edgekit-runtime.toml, /etc/systemd/system/edgekit-runtime.service"
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
if [ "$backend" = gpu ] && "$venv/bin/python" -m pip show -q onnxruntime 2>/dev/null; then
  say "removing PyPI's CPU onnxruntime first: it and onnxruntime-gpu install the same module"
  "$venv/bin/python" -m pip uninstall -q -y onnxruntime
fi
"$venv/bin/python" -m pip install -q "${index_args[@]}" "${reqs[@]}"
say "installed: $("$venv/bin/edgekit-runtime" --version)"

if [ "$service" = 1 ]; then
  # The GPU's device nodes (/dev/nvhost-*, /dev/nvmap, /dev/nvgpu/*) belong to the video group, its render
  # nodes (/dev/dri/renderD*) to render: the service's user is in both (the unit names them too).
  for group in video render; do
    getent group "$group" >/dev/null || groupadd --system "$group"
  done
  id edgekit >/dev/null 2>&1 || useradd --system --home-dir /var/lib/edgekit-runtime --no-create-home \
    --shell /usr/sbin/nologin edgekit
  usermod --append --groups video,render edgekit
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

target_args=()
[ -n "$l4t" ] && target_args=(--target jetson-orin)
LD_LIBRARY_PATH="$cuda_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$venv/bin/edgekit-runtime" doctor "${target_args[@]}" \
  || say "doctor found a problem: fix it before starting the service"
if [ "$service" = 1 ]; then
  say "next: copy a bundle to $prefix/bundles/ and its signer's .pub to /etc/edgekit/trusted/, check"
  say "/etc/edgekit/edgekit-runtime.toml, then: sudo systemctl start edgekit-runtime (the first start builds"
  say "TensorRT's engines: minutes; journalctl -fu edgekit-runtime)"
fi
