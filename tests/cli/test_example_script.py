"""The plain-Python example runs end to end: module, data, all three callbacks, a real Trainer."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_example_script_trains_and_reports(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_classifier.py"), "--epochs", "2", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Epoch 2/2  loss " in result.stdout
    assert "steps whose LR differed from the plan: 0" in result.stdout
    metrics = (tmp_path / "warmup_cosine" / "version_0" / "metrics.csv").read_text()
    assert "lr-warmup_cosine" in metrics.splitlines()[0]
