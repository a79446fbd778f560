"""One module per sub-command; each defines ``register(subparsers)``."""

from __future__ import annotations

from pathlib import Path


def user_path(text: str) -> Path:
    """A path the user typed, made absolute against the current directory once, up front.

    The run's steps work in other folders (ansible-runner's private folder, the collected
    archives' destination): a relative path handed to them would name a different place.
    ``~`` is expanded the way a shell would.
    """
    return Path(text).expanduser().absolute()
