"""`schedules/` sits below the Lightning layer: importing it, its checks and checkpoint format, loads no Lightning."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
import lightning_lrsched.schedules
import lightning_lrsched.schedules.checkpoint
import lightning_lrsched.schedules.checks
print(sorted(m for m in sys.modules if m.split(".")[0] in ("lightning", "pytorch_lightning")))
"""


def test_schedules_and_their_checks_import_no_lightning():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
