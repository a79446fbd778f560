"""Secrets on the controller: a masked type, where the token comes from, and keeping every
secret out of the environments of fleetbench's children.

ansible-runner copies the whole inherited environment into its artifacts
(``artifacts/<id>/command``) and hands it to ansible-playbook, its workers and ssh; a
variable in fleetbench's environment is therefore on disk and in ``/proc/<pid>/environ``
of every child. fleetbench takes secrets out of its own environment as it starts
(:func:`withhold_environment`) and gives its children an environment filtered again
(:func:`child_environment`).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path

from fleetbench.errors import BadInput

# Variable names that hold a secret value. Names of files, folders and sockets that hold
# one (ANSIBLE_PRIVATE_KEY_FILE, SSH_AUTH_SOCK) are not secrets and stay: ssh needs them.
_SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY",
    re.IGNORECASE,
)
_NAMES_A_PLACE = re.compile(r"_(FILE|PATH|DIR|SOCK|SOCKET)$", re.IGNORECASE)
# The Hugging Face token, under the names huggingface_hub reads (newest first).
HF_TOKEN_NAMES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
# What Hugging Face tokens look like ("hf_" and letters, today 37 characters).
_HF_TOKEN_SHAPE = re.compile(r"^hf_[A-Za-z0-9]{8,}$")


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


def is_secret_name(name: str) -> bool:
    """True for an environment variable whose value is a secret (``HF_TOKEN``,
    ``AWS_SECRET_ACCESS_KEY``), false for one naming where a secret is kept."""
    return bool(_SECRET_NAME.search(name)) and not _NAMES_A_PLACE.search(name)


def withhold_environment(environ: MutableMapping[str, str] | None = None) -> dict[str, Secret]:
    """Take every secret variable out of ``environ`` (default: this process's own), so
    that no child process inherits it; returns them, masked, by name."""
    env = os.environ if environ is None else environ
    taken = {name: Secret(env[name]) for name in list(env) if is_secret_name(name)}
    for name in taken:
        del env[name]
    return taken


def child_environment(environ: Mapping[str, str],
                      secrets: Iterable[Secret | None] = ()) -> dict[str, str]:
    """``environ`` without secret variables, nor any variable holding one of ``secrets``."""
    values = [s.reveal() for s in secrets if s]
    return {name: value for name, value in environ.items()
            if not is_secret_name(name) and not any(v in value for v in values)}


def load_hf_token(token_file: Path | None,
                  environ: Mapping[str, str | Secret] | None = None) -> Secret | None:
    """The Hugging Face token from ``--hf-token-file`` or ``HF_TOKEN``; None when neither.

    A token file that others may read is refused, the way ssh refuses such a private key.
    """
    if token_file is not None:
        return _token_from_file(Path(token_file).expanduser())
    source: Mapping[str, str | Secret] = os.environ if environ is None else environ
    for name in HF_TOKEN_NAMES:
        value = source.get(name)
        text = (value.reveal() if isinstance(value, Secret) else value or "").strip()
        if text:
            return Secret(text)
    return None


def _token_from_file(path: Path) -> Secret:
    try:
        with path.open(encoding="utf-8") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if stat.S_IMODE(mode) & 0o077:
                raise BadInput(
                    f"--hf-token-file {path} is open to other users (mode "
                    f"{stat.S_IMODE(mode):04o}) — a token must be private: chmod 600 {path}"
                )
            text = handle.read().strip()
    except OSError as exc:
        # A token typed where its file's path belongs must not be echoed back.
        shown = "the value given" if _HF_TOKEN_SHAPE.match(str(path.name)) else str(path)
        raise BadInput(
            f"--hf-token-file {shown} cannot be read ({exc.strerror}) — pass a "
            "readable file holding the token, not the token itself"
        ) from None
    except UnicodeDecodeError:
        raise BadInput(f"--hf-token-file {path} is not text — put the token in it") from None
    if not text:
        raise BadInput(f"--hf-token-file {path} is empty — put the token in it")
    return Secret(text)
