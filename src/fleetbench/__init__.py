"""fleetbench: the MI300X vLLM benchmark workflow on a whole fleet of GPU hosts."""

from __future__ import annotations

__version__ = "0.1.0"
