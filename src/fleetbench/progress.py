"""Live per-host progress on a terminal (stderr), silent when stderr is not a terminal."""

from __future__ import annotations

from collections import Counter
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

_MARKS = {"ok": "[green]✓[/]", "failed": "[red]✗[/]", "unreachable": "[red]⚠[/]",
          "skipped": "[yellow]-[/]"}


class FleetProgress:
    """A bar of finished hosts, a line per host as it finishes, the step each host is on."""

    def __init__(self, total_hosts: int, title: str, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            disable=not self.console.is_terminal,
            transient=False,
        )
        self._title = title
        self._task = self._progress.add_task(title, total=total_hosts)
        self._counts: Counter[str] = Counter()
        self._done: set[str] = set()
        self._waiting: dict[str, set[str]] = {}

    def __enter__(self) -> FleetProgress:
        self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()

    def step(self, host: str, step: str) -> None:
        """``host`` started ``step``."""
        self._progress.update(self._task, description=f"{self._title} · {host}: {step}")

    def watching(self, host: str, text: str) -> None:
        """``host``'s slots run detached: ``text`` says how far (or that it is out of reach).

        A host going out of reach, or coming back, gets a line of its own."""
        if text.startswith(("waiting:", "reachable again")) and host not in self._waiting.get(
                text.split(" ", 1)[0], set()):
            for seen in self._waiting.values():
                seen.discard(host)
            self._waiting.setdefault(text.split(" ", 1)[0], set()).add(host)
            if self.console.is_terminal:
                self._progress.console.print(f"[yellow]…[/] {escape(f'{host} {text}')}",
                                             markup=True, highlight=False)
        self.step(host, text)

    def host_done(self, host: str, status: str, detail: str = "") -> None:
        """``host`` finished with ``status`` (ok, failed…, unreachable, skipped…)."""
        if host in self._done:
            return
        self._done.add(host)
        kind = status.split(":", 1)[0]
        self._counts[kind] += 1
        mark = _MARKS.get(kind, "?")
        if self.console.is_terminal:
            # Host names, statuses and details are text (an SSH message may hold "[…]").
            self._progress.console.print(
                f"{mark} {escape(f'{host} {status} {detail}'.rstrip())}", markup=True,
                highlight=False)
        summary = " ".join(f"{k} {v}" for k, v in sorted(self._counts.items()))
        self._progress.update(self._task, advance=1, description=f"{self._title} · {summary}")
