"""``python -m fleetbench``."""

from __future__ import annotations

from fleetbench.cli import console_main

console_main()
