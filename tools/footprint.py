"""What the device install costs: each distribution's installed size, and RSS after loading a bundle.

    python tools/footprint.py --venv /tmp/rtvenv --bundle out/digits-cnn/cnn-1.0.0.edgebundle

``--venv`` is a virtual environment with only ``edgekit-runtime[onnx]`` (or ``[litert]``) installed, as a
device would have it; the script runs that environment's Python to list sizes (from each distribution's
RECORD) and, in a fresh process, to load the bundle and read ``VmRSS`` and ``VmHWM`` from /proc.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

_SIZES = r"""
import json, importlib.metadata as md
out = {}
for dist in md.distributions():
    total = 0
    for f in dist.files or []:
        try:
            total += f.locate().stat().st_size
        except OSError:
            pass
    out[dist.metadata["Name"]] = [dist.version, total]
print(json.dumps(out))
"""

_RSS = r"""
import json, sys, time
start = time.perf_counter()
import edgekit_runtime
imported = time.perf_counter()
model = edgekit_runtime.load(sys.argv[1])
loaded = time.perf_counter()
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
kib = lambda key: int(status[key].split()[0])
print(json.dumps({
    "import_s": imported - start, "load_s": loaded - imported, "rss_kib": kib("VmRSS"), "peak_kib": kib("VmHWM"),
    "model": f"{model.name} {model.version}", "backend": model.backend.name,
}))
"""


def main() -> int:
    """Print the table; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, required=True, help="a venv with only edgekit-runtime installed")
    parser.add_argument("--bundle", type=Path, required=True, help="the bundle to load")
    parser.add_argument("--runs", type=int, default=5, help="load measurements (fresh process each)")
    args = parser.parse_args()
    python = str(args.venv / "bin" / "python")
    sizes: dict[str, list[object]] = json.loads(
        subprocess.run([python, "-c", _SIZES], capture_output=True, text=True, check=True).stdout
    )
    skip = {"pip", "setuptools", "wheel"}
    rows = sorted(((n, v, int(str(s))) for n, (v, s) in sizes.items() if n not in skip), key=lambda r: -r[2])
    print("| distribution | version | installed |")
    print("|---|---|---:|")
    for name, version, size in rows:
        print(f"| {name} | {version} | {size / 2**20:.1f} MiB |")
    print(f"| **total** | | **{sum(r[2] for r in rows) / 2**20:.1f} MiB** |")
    runs = [
        json.loads(
            subprocess.run([python, "-c", _RSS, str(args.bundle)], capture_output=True, text=True, check=True).stdout
        )
        for _ in range(args.runs)
    ]
    median = sorted(runs, key=lambda r: r["rss_kib"])[len(runs) // 2]
    loads = sorted(r["import_s"] + r["load_s"] for r in runs)
    print(
        f"\n{median['model']} ({median['backend']}): RSS after load {median['rss_kib'] / 1024:.1f} MiB "
        f"(peak {median['peak_kib'] / 1024:.1f} MiB); import + verify + load + self-test "
        f"{loads[len(loads) // 2]:.2f} s median of {len(runs)} fresh processes (min {loads[0]:.2f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
