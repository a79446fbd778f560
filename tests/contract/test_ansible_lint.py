"""Everything ansible-lint finds in the repository passes its production profile (see
.ansible-lint), as a bare `ansible-lint` in the checkout runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ansible_lint_production_profile() -> None:
    lint = Path(sys.executable).with_name("ansible-lint")
    assert lint.exists(), "ansible-lint is part of the test extras: pip install -e '.[test]'"
    done = subprocess.run(
        [str(lint), "--offline", "--nocolor", "-q"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
        env={"PATH": f"{lint.parent}:/usr/bin:/bin", "HOME": str(Path.home())},
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
