"""``--image-from-controller``: the image comes from the controller's Docker engine.

For fleets that cannot reach a registry: the image is exported once from the controller's
engine with the Docker SDK (``docker save``, streamed to a private scratch file chunk by
chunk, never held in memory), and the image role sends that archive to each host that
lacks the image, throttled like pulls (``image_pull_throttle``), loads it there and checks
that the host's image id is the controller's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetbench.errors import BadInput

if TYPE_CHECKING:
    import docker

#: Bytes read from the engine at a time while exporting.
CHUNK_BYTES = 4 * 1024 * 1024
ARCHIVE = "image.tar"


@dataclass(frozen=True)
class ControllerImage:
    """The image as the controller's engine has it."""

    ref: str
    #: Content-addressed (``sha256:…``): the same on every engine that loads it.
    id: str
    #: Unpacked size in the engine.
    size_bytes: int


def _client() -> docker.DockerClient:
    import docker  # the SDK: only when the controller's engine is used

    try:
        return docker.from_env()
    except docker.errors.DockerException as exc:
        raise BadInput(f"--image-from-controller needs this controller's Docker engine, which "
                       f"does not answer ({exc}) — start it, or set DOCKER_HOST") from None


def controller_image(ref: str) -> ControllerImage:
    """The controller's copy of ``ref``; BadInput when its engine lacks it or does not answer."""
    import docker

    client = _client()
    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        raise BadInput(f"--image-from-controller: this controller's Docker engine has no image "
                       f"{ref} — docker pull or docker load it here first") from None
    except docker.errors.DockerException as exc:
        raise BadInput(f"--image-from-controller: this controller's Docker engine does not "
                       f"answer ({exc}) — start it, or set DOCKER_HOST") from None
    finally:
        client.close()
    if tag_of(ref, image.tags or []) is None:
        tags = ", ".join(image.tags) or "none"
        raise BadInput(f"--image-from-controller: {ref} names image {str(image.id)[:19]} on "
                       f"this controller, but not by a tag (it has {tags}) — give --image as "
                       "one of its tags, so that the hosts load it by name")
    attrs: dict[str, Any] = image.attrs
    return ControllerImage(ref=ref, id=str(image.id), size_bytes=int(attrs.get("Size") or 0))


def tag_of(ref: str, tags: list[str]) -> str | None:
    """The engine's tag that ``ref`` names (``name`` alone is ``name:latest``), if any."""
    last = ref.rsplit("/", 1)[-1]
    wanted = ref if ":" in last or "@" in ref else f"{ref}:latest"
    return wanted if wanted in tags else None


def export_image(image: ControllerImage, folder: Path) -> Path:
    """Write ``docker save`` of ``image`` (named ``image.ref``, so that loading tags it) to
    ``folder/image.tar``, 0600, streamed; RuntimeError when the engine now holds another
    image under the reference."""
    client = _client()
    path = folder / ARCHIVE
    try:
        found = client.images.get(image.ref)
        if found.id != image.id:
            raise RuntimeError(f"{image.ref} changed on the controller while the run started "
                               f"({image.id[:19]} became {str(found.id)[:19]})")
        named = tag_of(image.ref, found.tags or [])
        if named is None:
            raise RuntimeError(f"{image.ref} lost its tag on the controller while the run started")
        with path.open("wb") as out:
            path.chmod(0o600)
            for chunk in found.save(chunk_size=CHUNK_BYTES, named=named):
                out.write(chunk)
    finally:
        client.close()
    return path
