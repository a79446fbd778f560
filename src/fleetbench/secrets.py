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

import json
import os
import re
import stat
import sys
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
# The pipe that hands withheld secrets to the re-executed program (its number, not a secret).
_HANDOVER_FD = "FLEETBENCH_SECRETS_FD"
_PIPE_CAPACITY = 60000  # below Linux's 64 KiB pipe buffer: written before the reader runs
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
    that no child process inherits it; returns them, masked, by name, with those
    :func:`restart_without_secrets` handed over."""
    env = os.environ if environ is None else environ
    taken = _handed_over(env)
    taken.update({name: Secret(env[name]) for name in list(env) if is_secret_name(name)})
    for name in list(env):
        if is_secret_name(name):
            del env[name]
    return taken


def restart_without_secrets(argv: list[str]) -> None:
    """Start this program again, in this process, with no secret in its environment.

    Taking a variable out of ``os.environ`` leaves it in the environment block the process
    was started with, which ``/proc/<pid>/environ`` shows for this process and for every
    child it forks. So the secrets go through a pipe instead (in memory, never on disk)
    and the program is executed again with the rest of its environment; the new image
    reads them back in :func:`withhold_environment`. Returns only when there is nothing to
    withhold (or the platform cannot re-execute).
    """
    names = [name for name in os.environ if is_secret_name(name)]
    if not names or not hasattr(os, "execve") or _HANDOVER_FD in os.environ:
        return
    payload = json.dumps({name: os.environ[name] for name in names}).encode()
    if len(payload) > _PIPE_CAPACITY:
        return  # would block before the reader exists; the in-process withholding remains
    read_end, write_end = os.pipe()
    os.write(write_end, payload)
    os.close(write_end)
    os.set_inheritable(read_end, True)
    env = {k: v for k, v in os.environ.items() if not is_secret_name(k)}
    env[_HANDOVER_FD] = str(read_end)
    os.execve(sys.executable, [sys.executable, *argv], env)  # noqa: S606 - this very program


def _handed_over(env: MutableMapping[str, str]) -> dict[str, Secret]:
    fd_text = env.pop(_HANDOVER_FD, None)
    if fd_text is None or not fd_text.isdigit():
        return {}
    chunks = []
    try:
        while chunk := os.read(int(fd_text), 65536):
            chunks.append(chunk)
        os.close(int(fd_text))
    except OSError:
        return {}
    values = json.loads(b"".join(chunks) or b"{}")
    return {str(k): Secret(str(v)) for k, v in values.items()}


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
            return _checked(text, name)
    return None


#: Shorter than any Hugging Face token ("hf_" and 34 characters): a typo or a placeholder.
#: It would also be masked wherever its characters appear in output.
MIN_TOKEN_LENGTH = 8


def _checked(text: str, source: str) -> Secret:
    if len(text) < MIN_TOKEN_LENGTH:
        raise BadInput(f"{source} holds {len(text)} character(s), too short for a Hugging "
                       f"Face token — set it to the token itself (hf_…), or unset it for "
                       "models that are not gated")
    return Secret(text)


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
    return _checked(text, f"--hf-token-file {path}")
