"""bench/epoch.py runs end to end (one round of one step), so its table never rots; CI runs this
with the benchmarks untimed (``pytest bench --benchmark-disable``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("epoch.py")


def test_epoch_script_prints_the_step_table():
    command = [sys.executable, str(SCRIPT), "--shape", "mnist", "--steps", "1", "--rounds", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [line.split(" | ")[0] for line in result.stdout.splitlines() if line.startswith("| ")]
    assert rows[1:4] == [
        "| nerva-xp step",
        "| nerva-xp step, --fold-updates",
        "| bare GEMMs (floor)",
    ]
    assert "× the bare step loop" in result.stdout
