"""How the fleet report prints values for people, and the Jinja environment that prints them.

Every output with text for people (the HTML page, the Markdown summary, ``fleetbench
history``) formats numbers, percentages and digests with these functions, so a value
reads the same everywhere.
"""

from __future__ import annotations

import math
from functools import cache

import jinja2


@cache
def environment() -> jinja2.Environment:
    """The report templates' environment (``templates/``), with the filters below."""
    # One per process: compiling the templates took longer than rendering a small page.
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("fleetbench.reports", "templates"),
        # HTML templates escape everything they print; the Markdown one escapes by hand.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = format_number
    env.filters["pct"] = format_percent
    env.filters["short_digest"] = short_digest
    env.filters["md"] = markdown_cell
    return env


def format_number(value: float | None) -> str:
    """A measurement for people: ``15,152``, ``1,570``, ``36.4``, ``12.3``; ``—`` when None."""
    if value is None:
        return "—"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def format_percent(value: float | None, signed: bool = False) -> str:
    """``5.3 %``; ``+5.3 %`` when ``signed``; ``—`` when None."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value * 100:+.1f} %" if signed else f"{value * 100:.1f} %"


def short_digest(value: str | None) -> str:
    """The first 12 hex digits of an image digest or commit (``?`` when unknown)."""
    if not value:
        return "?"
    return value.removeprefix("sha256:")[:12]


def markdown_cell(value: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")
