"""The lab's stand-in ``rocm/vllm`` image: a tiny rootfs (bash + busybox), no GPU code.

The machine has no access to public registries, so the image is assembled from files this
machine already has and imported into the local engine, then pushed to the lab registry,
from where the playbooks pull it exactly as they would pull the real image on a fleet.
"""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
from pathlib import Path

import docker
import docker.errors

from fleetbench.errors import LabError
from fleetbench.lab.services import REGISTRY_ADDRESS, require_binaries

DEFAULT_REPOSITORY = "rocm/vllm"
DEFAULT_TAG = "instinct_main"
_LDD_PATH = re.compile(r"(/\S+)")


def lab_image_ref(lab_id: str, registry: str = REGISTRY_ADDRESS) -> str:
    """The image reference a lab fleet pulls: the guide's name and tag on the lab registry,
    under a namespace of its own so that removing one lab never breaks another."""
    return f"{registry}/{lab_id}/{DEFAULT_REPOSITORY}:{DEFAULT_TAG}"


def _shared_libraries(binary: str) -> list[str]:
    listing = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True)
    libs: list[str] = []
    for line in listing.stdout.splitlines():
        match = _LDD_PATH.search(line.split("=>", 1)[-1])
        if match:
            libs.append(match.group(1))
    return libs


def _add_file(archive: tarfile.TarFile, source: str, target: str, added: set[str]) -> None:
    real = Path(source).resolve()
    if target in added:
        return
    info = archive.gettarinfo(str(real), arcname=target)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    with real.open("rb") as handle:
        archive.addfile(info, handle)
    added.add(target)


def _add_dir(archive: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    archive.addfile(info)


def _add_symlink(archive: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    archive.addfile(info)


def build_rootfs() -> bytes:
    """A tar of the stand-in rootfs: /bin/bash with its libraries, busybox applets, /tmp."""
    binaries = require_binaries(("bash", "busybox"))
    busybox = binaries["busybox"]
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    buffer = io.BytesIO()
    added: set[str] = set()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for folder in ("bin", "lib", "lib64", "usr", "usr/bin", "etc", "app", "root", "var"):
            _add_dir(archive, folder)
        _add_dir(archive, "tmp", 0o1777)
        _add_file(archive, binaries["bash"], "bin/bash", added)
        for lib in _shared_libraries(binaries["bash"]):
            _add_file(archive, lib, lib.lstrip("/"), added)
        _add_file(archive, busybox, "bin/busybox", added)
        for applet in applets.stdout.split():
            if applet in {"bash", "busybox"} or "/" in applet:
                continue
            _add_symlink(archive, f"bin/{applet}", "busybox")
        for name, text in {
            "etc/passwd": "root:x:0:0:root:/root:/bin/bash\n",
            "etc/group": "root:x:0:\nvideo:x:44:\nrender:x:109:\n",
            "etc/os-release": 'NAME="fleetbench lab stand-in for rocm/vllm"\n',
        }.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def publish_lab_image(ref: str) -> str:
    """Import the stand-in image, push it to the lab registry; returns the pushed reference."""
    repository, tag = ref.rsplit(":", 1)
    client = docker.from_env()
    try:
        client.api.import_image_from_data(
            build_rootfs(), repository=repository, tag=tag,
            changes=["WORKDIR /app", 'CMD ["/bin/bash"]'],
        )
        for line in client.api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in line:
                raise LabError(f"pushing {ref} to the lab registry failed: {line['error']}")
    except docker.errors.DockerException as exc:
        raise LabError(f"could not build the lab image {ref}: {exc}") from exc
    finally:
        client.close()
    return ref


def remove_lab_image(ref: str) -> None:
    """Remove the stand-in image from the local engine."""
    client = docker.from_env()
    try:
        client.images.remove(ref, force=True)
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.DockerException as exc:
        raise LabError(f"could not remove the lab image {ref}: {exc}") from exc
    finally:
        client.close()
