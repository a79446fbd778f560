"""Controller scratch folders: a killed controller's are removed by the next one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fleetbench import scratch


def test_folder_sweeps_a_dead_controllers_and_removes_its_own(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    left = tmp_path / f"fleetbench-mad-{int(done.stdout)}-abc"  # its controller is gone
    left.mkdir()
    # Not named after a controller (all digits, no dash): never ours to judge.
    unnamed = tmp_path / "fleetbench-mad-12345678"
    unnamed.mkdir()
    with scratch.folder("fleetbench-mad-", tmp_path) as made:
        assert made.is_dir() and made.stat().st_mode & 0o777 == 0o700
        (made / "mad.tar.gz").write_bytes(b"x")
        assert not left.exists()
    assert not made.exists()
    assert unnamed.exists()
