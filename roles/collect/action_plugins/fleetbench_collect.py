"""Controller half of ``fleetbench_collect``: pack the run's files on the host, bring them back.

One task instead of the module followed by ``fetch``: the module packs the files and
reports the archive's SHA-256, then the archive comes back over the connection that is
already open and is checked against it here. ``fetch`` would first run a module on the
host only to learn the checksum: one SSH round trip per host more.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
from pathlib import Path
from typing import Any, ClassVar

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

MODULE_ARGS = ("root", "patterns", "archive",
               "cleanup_run_id", "cleanup_host", "cleanup_lock")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ActionModule(ActionBase):  # type: ignore[misc]
    """Archive on the host, fetch to ``dest`` on the controller, verify."""

    TRANSFERS_FILES = False
    _VALID_ARGS: ClassVar[frozenset[str]] = frozenset((*MODULE_ARGS, "dest", "prune"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        """Execute the archive module, then fetch its archive to ``dest``."""
        result: dict[str, Any] = super().run(tmp, task_vars)
        args = self._task.args
        if "dest" not in args:
            raise AnsibleActionFail("fleetbench_collect needs dest (a controller path)")
        dest = Path(str(args["dest"]))
        if not dest.is_absolute():
            # Relative to what? ansible-playbook's working folder is a runner's private one,
            # deleted afterwards: the archive would be lost without a trace.
            raise AnsibleActionFail(
                f"fleetbench_collect dest {dest} is relative — give collect_dest as an "
                "absolute controller path")
        packed = self._execute_module(
            module_name="fleetbench_collect",
            module_args={key: args[key] for key in MODULE_ARGS if key in args},
            task_vars=task_vars,
        )
        result.update(packed)
        if packed.get("failed") or packed.get("unreachable"):
            return result
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".part")
        source = str(args["archive"])
        if self._connection.become:
            # sftp/scp run as the login user; like fetch, read through a module instead.
            slurped = self._execute_module(module_name="ansible.legacy.slurp",
                                           module_args={"src": source}, task_vars=task_vars)
            if slurped.get("failed"):
                result.update(failed=True, msg=slurped.get("msg", "could not read the archive"))
                return result
            partial.write_bytes(base64.b64decode(slurped["content"]))
        else:
            self._connection.fetch_file(source, str(partial))
        if _sha256(partial) != packed.get("sha256"):
            partial.unlink()
            result.update(failed=True, msg=f"{source} changed on its way to {dest} (checksum)")
            return result
        partial.replace(dest)
        result.update(changed=True, dest=str(dest))
        if args.get("prune", False):
            # The files are safe on the controller (checksum above): the run leaves nothing
            # on the host that a nightly run would pile up. One exec, no module.
            pruned = self._low_level_execute_command(
                "rm -rf -- " + " ".join(shlex.quote(str(path)) for path in (
                    args["root"], source)), sudoable=True)
            result["pruned"] = pruned.get("rc") == 0
        return result
