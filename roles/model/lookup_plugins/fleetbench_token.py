"""``fleetbench_token``: the Hugging Face token, read from the socket fleetbench serves it
on for the length of a run (fleetbench.token_server). Nothing is read from disk."""

from __future__ import annotations

import socket
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: fleetbench_token
short_description: The Hugging Face token from the running fleetbench
description:
  - Reads the token from the Unix socket whose path fleetbench passes as
    C(benchmark_hf_token_socket). Only processes started by that fleetbench get it.
options:
  _terms:
    description: The socket's path.
    required: true
"""


class LookupModule(LookupBase):
    """Read the token from fleetbench's socket."""

    def run(self, terms: list[Any], variables: dict[str, Any] | None = None,
            **kwargs: Any) -> list[str]:
        """One term, the socket's path; returns the token."""
        if len(terms) != 1:
            raise AnsibleLookupError("fleetbench_token takes one socket path")
        path = str(terms[0])
        chunks = []
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(10)
                conn.connect(path)
                while chunk := conn.recv(4096):
                    chunks.append(chunk)
        except OSError as exc:
            raise AnsibleLookupError(
                f"cannot read the token from fleetbench at {path} ({exc.strerror or exc}): "
                "it is served only while that fleetbench run is alive") from None
        if not chunks:
            raise AnsibleLookupError(
                f"fleetbench at {path} gave no token: only its own Ansible workers get it")
        return [b"".join(chunks).decode()]
