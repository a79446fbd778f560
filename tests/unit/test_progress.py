"""The per-host lines of the progress display print messages as text."""

from __future__ import annotations

import io

from rich.console import Console

from fleetbench.progress import FleetProgress


def test_a_host_line_prints_brackets_of_a_message_as_they_are() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=300, color_system=None)
    detail = "host key of gpu01 ([192.0.2.15]:2222) changed; ssh said [/] and [bold]"
    with FleetProgress(1, "run", console) as progress:
        progress.host_done("gpu01", "failed:hostkey", detail)
    assert f"✗ gpu01 failed:hostkey {detail}" in out.getvalue()
