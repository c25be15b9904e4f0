"""The conversion path imports no TensorFlow: none in sys.modules, and none imported even where one is importable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = """
import json, sys
import numpy as np
import onnx
from edgekit.tflite import TFLiteConfig, convert

def loaded():
    return sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "tf_keras", "keras", "ai_edge_litert"})

model = onnx.load(sys.argv[1])
sizes = [len(convert(model, TFLiteConfig(variant=v)).data) for v in ("fp32", "fp16")]
float_loaded = loaded()
calibration = [{"input": np.load(sys.argv[2])["input"][:20]}]
sizes.append(len(convert(model, TFLiteConfig(variant="int8"), calibration=calibration).data))
print(json.dumps({"sizes": sizes, "float": float_loaded, "int8": loaded()}))
"""


def test_converting_imports_no_tensorflow(digits, tmp_path):
    # a 'tensorflow' that fails loudly on import sits first on the path: any import of it would crash the run
    stub = tmp_path / "stub" / "tensorflow"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise RuntimeError('the TFLite writer imported tensorflow')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "stub"), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(digits / "cnn.onnx"), str(digits / "cnn_calib.npz")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["float"] == []  # FP32 and FP16: no TensorFlow, and not even the LiteRT interpreter
    assert result["int8"] == ["ai_edge_litert"]  # INT8 calibrates in LiteRT: still no TensorFlow
    assert all(size > 0 for size in result["sizes"])
