"""A masked type for secrets: its ``repr`` and ``str`` never show the value."""

from __future__ import annotations

import os
from pathlib import Path

from fleetbench.errors import BadInput


class Secret:
    """A secret value that does not leak through logs, reprs, tracebacks or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The value itself; call only where it is handed to its one consumer."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not picklable")


def load_hf_token(token_file: Path | None, environ: dict[str, str] | None = None) -> Secret | None:
    """The Hugging Face token from ``--hf-token-file`` or ``HF_TOKEN``; None when neither."""
    if token_file is not None:
        try:
            text = Path(token_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise BadInput(
                f"--hf-token-file {token_file} cannot be read ({exc.strerror}) — pass a "
                "readable file holding the token"
            ) from None
        if not text:
            raise BadInput(f"--hf-token-file {token_file} is empty — put the token in it")
        return Secret(text)
    value = (environ if environ is not None else os.environ).get("HF_TOKEN", "").strip()
    return Secret(value) if value else None
