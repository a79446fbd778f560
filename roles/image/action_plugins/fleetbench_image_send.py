"""``fleetbench_image_send``: send a ``docker save`` archive from the controller to the host.

The archive (tens of GB) goes over the host's open connection as a file transfer, streamed
from disk (``put_file``: sftp/scp), with its size checked on arrival. ``ansible.builtin.copy``
would hash the whole archive on the controller once per host, and once more on the host.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, ClassVar

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):  # type: ignore[misc]
    """Put ``src`` (controller) at ``dest`` (host); fail unless the host has every byte."""

    TRANSFERS_FILES = True
    _VALID_ARGS: ClassVar[frozenset[str]] = frozenset(("src", "dest"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        """Transfer the archive, then compare its size on the host with the controller's."""
        result: dict[str, Any] = super().run(tmp, task_vars)
        src = str(self._task.args.get("src") or "")
        dest = str(self._task.args.get("dest") or "")
        if not src or not dest:
            raise AnsibleActionFail("fleetbench_image_send needs src and dest")
        if not Path(src).is_file():
            raise AnsibleActionFail(f"no image archive at {src} on the controller")
        size = Path(src).stat().st_size
        self._connection.put_file(src, dest)
        stat = self._low_level_execute_command(f"stat -c %s {shlex.quote(dest)}",
                                               sudoable=False)
        arrived = stat.get("stdout", "").strip()
        if stat.get("rc") != 0 or arrived != str(size):
            raise AnsibleActionFail(f"the image archive arrived incomplete at {dest}: "
                                    f"{arrived or stat.get('stderr', '').strip()} of {size} bytes")
        result.update(changed=True, dest=dest, size=size)
        return result
