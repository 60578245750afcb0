"""Run every ONNX backend test case through bare ONNX Runtime, ``apply_onnx_model`` and the
prediction engine; print the counts and the failures grouped by cause, write
bench/results/onnx_backend.json (the work is in tests/onnx_backend.py).

    python bench/onnx_backend_report.py [-j JOBS] [-k NAME_PART] [--xfail FILE]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.onnx_backend import main

if __name__ == "__main__":
    sys.exit(main())
