"""Controller half of the model role's send: a controller-side cache snapshot to the host.

For fleets that cannot reach the hub (``fleetbench run --model-from DIR``). One exec asks
the host which blobs it lacks (a blob there with the same size and SHA-256 is kept, so a
second run sends nothing), the missing ones go over the open connection (sftp), and a
second exec checks their SHA-256, moves them in and lays the snapshot out as the hub
client does (module_utils/fleetbench_model_cache.py).

With ``send: false`` only the first exec runs (and, when nothing is missing, the layout is
checked): the role runs that on every host at once, and the send, under a ``throttle``
that keeps the fleet's hosts from all pulling on the controller's link together (as with
the image pull), only on hosts that lack something. A fleet that has the model then
finishes the step in one wave, however long hashing the blobs takes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

# Imported with the plugin (see the preflight role's fleetbench_probe for why).
try:
    from fleetbench.plugin_api import remote, repo_folder_name
except ImportError as exc:
    FLEETBENCH_MISSING: ImportError | None = exc
else:
    FLEETBENCH_MISSING = None

MODULE = "fleetbench_model_cache"


class ActionModule(ActionBase):  # type: ignore[misc]
    """Send the blobs the host's cache lacks; return the commit and the bytes sent."""

    TRANSFERS_FILES = True
    _VALID_ARGS: ClassVar[frozenset[str]] = frozenset(("cache", "snapshot", "send"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        """Survey the host's cache, send what it lacks, place and check it."""
        if FLEETBENCH_MISSING is not None:  # plain ansible-playbook without fleetbench
            raise AnsibleActionFail(
                "fleetbench is not importable on this controller: install it "
                "(pip install fleetbench) in the Python that runs ansible-playbook"
            ) from FLEETBENCH_MISSING
        result: dict[str, Any] = super().run(tmp, task_vars)
        snapshot = self._task.args.get("snapshot") or {}
        if not snapshot.get("files"):
            raise AnsibleActionFail("fleetbench_model_send needs snapshot (model_from) with "
                                    "files: fleetbench run --model-from DIR sets it")
        if not self._connection.has_pipelining:
            raise AnsibleActionFail(
                f"fleetbench_model_send needs a connection that takes stdin (ssh, paramiko, "
                f"local), not {self._connection.transport}")
        args = {"cache": str(self._task.args["cache"]),
                "repo_folder": repo_folder_name(snapshot["repo_id"]),
                "commit": snapshot["commit"], "ref": snapshot.get("ref") or "main",
                "files": [{k: item[k] for k in ("path", "blob", "size", "sha256")}
                          for item in snapshot["files"]],
                "received": []}
        sources = {item["blob"]: item for item in snapshot["files"]}
        python = remote.interpreter({"ansible_python_interpreter": self._templar.template(
            (task_vars or {}).get("ansible_python_interpreter"))})
        staged = self._stage(python, args)
        sent = 0
        if not staged.get("failed") and not staged["complete"] and not self._task.args.get(
                "send", True):
            missing = {wanted["blob"] for wanted in staged["missing"]}
            result.update(changed=False, complete=False, revision=snapshot["commit"],
                          missing_bytes=sum(int(sources[b]["size"]) for b in missing),
                          downloaded_bytes=0)
            return result
        if not staged.get("failed") and staged["missing"]:
            for wanted in staged["missing"]:
                item = sources[wanted["blob"]]
                self._connection.put_file(str(Path(item["source"])), wanted["dest"])
                sent += int(item["size"])
            args["received"] = [wanted["blob"] for wanted in staged["missing"]]
            staged = self._stage(python, args)
        if staged.get("failed"):
            result.update(failed=True, msg=staged.get("msg") or "the model could not be sent")
            return result
        if not staged["complete"]:
            why = "; ".join(staged["problems"]) or "blobs missing after the send"
            result.update(failed=True, msg=f"the model did not arrive whole: {why}")
            return result
        result.update(changed=bool(staged.get("changed")), complete=True,
                      revision=snapshot["commit"], missing_bytes=0, downloaded_bytes=sent)
        return result

    def _stage(self, python: str, args: dict[str, Any]) -> dict[str, Any]:
        done = self._low_level_execute_command(
            remote.command(python), sudoable=True,
            in_data=remote.payload((MODULE,), "stage", args))
        return remote.answer(done, "the model cache check", python)
