"""SSH host key failures, told apart from other unreachable hosts in one line.

When a host's key does not match ``known_hosts`` (the host was reinstalled, or someone
is in the middle), is missing from it, or is revoked, SSH refuses the connection and
Ansible reports the host unreachable with SSH's whole banner ("@@@@ WARNING: REMOTE HOST
IDENTIFICATION HAS CHANGED! …") as its message. :func:`unreachable_status` turns such a
message into the status ``failed:hostkey`` and one line that says what happened and what
to do; every other unreachable host stays ``unreachable`` with its message.

Nothing here accepts a key: host key checking stays on, and the fix names the admin's
own source of keys.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

#: The status of a host whose SSH host key could not be verified.
HOSTKEY_STATUS = "failed:hostkey"
UNREACHABLE = "unreachable"

CHANGED = "changed"
UNKNOWN = "unknown"
REVOKED = "revoked"
UNVERIFIED = "unverified"

_CHANGED = re.compile(r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for \S+ has changed")
_CHANGED_ADDRESS = re.compile(r"Host key for (?P<address>\S+) has changed")
_UNKNOWN = re.compile(r"No (?:\S+ )?host key is known for (?P<address>\S+)")
_REVOKED = re.compile(r"Host key \S+ \S+ revoked by file (?P<file>\S.*?)\s*$", re.MULTILINE)
_FAILED = "Host key verification failed"
_OFFENDING = re.compile(r"Offending \S+ key in (?P<file>\S.*?):\d+\s*$", re.MULTILINE)
_ADD_IN = re.compile(r"Add correct host key in (?P<file>\S.*?) to get rid of this message")
# Ansible's wrapper names the address it gave SSH (without the port).
_ANSIBLE_HOST = re.compile(r'remote host "(?P<address>[^"]+)"')


@dataclass(frozen=True)
class HostKeyFailure:
    """What SSH said about a host's key: ``kind`` (changed, unknown, revoked, unverified),
    the address as SSH names it (``192.0.2.15``, ``[192.0.2.15]:2222`` when the port is not 22)
    and the known_hosts (or revocation) file it names, if any."""

    kind: str
    address: str | None = None
    file: str | None = None

    def line(self, host: str) -> str:
        """One line for the admin: what happened to ``host``'s key and the fix."""
        where = f"{host} ({self.address})" if self.address and self.address != host else host
        target = self.address or host
        if self.kind == CHANGED:
            keygen = ["ssh-keygen", *(["-f", self.file] if self.file and not _default(self.file)
                                      else []), "-R", target]
            return (f"host key of {where} changed — if the host was reinstalled: "
                    f"{shlex.join(keygen)}, then add the new key from your provisioning "
                    "source")
        if self.kind == UNKNOWN:
            return (f"host key of {where} is not in known_hosts — add the host's key from "
                    "your provisioning source (host key checking stays on)")
        if self.kind == REVOKED:
            revoked = f" in {self.file}" if self.file else ""
            return (f"host key of {where} is revoked{revoked} — give the host a new key and "
                    "add it from your provisioning source")
        return (f"host key of {where} could not be verified — compare its known_hosts entry "
                "with your provisioning source")


def host_key_failure(message: str) -> HostKeyFailure | None:
    """The host key failure SSH reports in ``message`` (an unreachable host's), or None."""
    changed = _CHANGED.search(message)
    if changed:
        named = _CHANGED_ADDRESS.search(message)
        offending = _OFFENDING.search(message) or _ADD_IN.search(message)
        return HostKeyFailure(CHANGED, _address(message, named),
                              offending.group("file") if offending else None)
    unknown = _UNKNOWN.search(message)
    if unknown:
        return HostKeyFailure(UNKNOWN, _address(message, unknown))
    revoked = _REVOKED.search(message)
    if revoked:
        return HostKeyFailure(REVOKED, _address(message, None), revoked.group("file"))
    if _FAILED in message:
        return HostKeyFailure(UNVERIFIED, _address(message, None))
    return None


def _address(message: str, named: re.Match[str] | None) -> str | None:
    if named is not None:
        return named.group("address")
    wrapper = _ANSIBLE_HOST.search(message)
    return wrapper.group("address") if wrapper else None


def _default(file: str) -> bool:
    """True for the user's own ~/.ssh/known_hosts (ssh-keygen -R edits it without -f)."""
    return Path(file).expanduser() == Path("~/.ssh/known_hosts").expanduser()


def host_key_problem(host: str, message: str) -> str | None:
    """The one-line problem of ``host`` when its unreachable ``message`` is a host key
    failure, else None."""
    failure = host_key_failure(message)
    return failure.line(host) if failure else None


def unreachable_status(host: str, message: str) -> tuple[str, str]:
    """(status, reason) of an unreachable ``host``: ``failed:hostkey`` and one line for a
    host key failure, else ``unreachable`` and ``message`` as it is."""
    problem = host_key_problem(host, message)
    return (HOSTKEY_STATUS, problem) if problem else (UNREACHABLE, message)
