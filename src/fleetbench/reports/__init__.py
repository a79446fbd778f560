"""MAD benchmark reports: canonical records and the parsers of every MAD era."""

from __future__ import annotations

from fleetbench.reports.parse import (
    FORMATS,
    MalformedReport,
    UnknownReportFormat,
    detect_format,
    parse_file,
    parse_text,
    parse_tree,
)
from fleetbench.reports.records import (
    METRIC_UNITS,
    METRICS,
    SCENARIOS,
    Record,
    latest_per_configuration,
)

__all__ = [
    "FORMATS",
    "METRICS",
    "METRIC_UNITS",
    "SCENARIOS",
    "MalformedReport",
    "Record",
    "UnknownReportFormat",
    "detect_format",
    "latest_per_configuration",
    "parse_file",
    "parse_text",
    "parse_tree",
]
