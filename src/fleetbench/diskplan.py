"""Free disk a run needs on each host: planned on the controller, judged per host.

Before any host is touched, fleetbench works out what a host must hold for the run: the
image (its size from the registry's manifest when the controller reaches the registry,
from the controller's own engine with ``--image-from-controller``, or an estimate), the
model's weights (``fleetbench fit``'s parameter count in the checkpoint's dtype) and a
margin. Preflight then compares that with the free space of the file systems that hold
Docker's data root and the host's model cache, less what the host already has (the same
image, model files already cached), and skips a host that is short (``skipped:disk``).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetbench.errors import BadInput

GB = 10**9
#: Room left over once the image and the model are in (logs, reports, containers' layers).
DEFAULT_MARGIN_GB = 10.0
#: Size planned for the image when neither the registry nor the inventory says: a
#: rocm/vllm image unpacked in Docker's data root (tens of GB; fleetbench_image_size_gb
#: gives the real figure).
DEFAULT_IMAGE_ESTIMATE_GB = 60.0
#: A registry gives compressed layer sizes; Docker keeps them unpacked. Gzip'd layers of
#: libraries and binaries unpack to about 2 to 3 times their size: planned with the upper end.
UNPACK_FACTOR = 3.0
#: Seconds the controller waits for the registry before it plans with the estimate.
REGISTRY_TIMEOUT_S = 10.0
#: Inventory variables (per group or host) that steer the plan.
IMAGE_SIZE_VAR = "fleetbench_image_size_gb"
MARGIN_VAR = "fleetbench_disk_margin_gb"

_INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
_MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_BEARER = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class ImageSize:
    """Bytes the image takes on a host, and how fleetbench knows."""

    bytes: int
    #: ``registry``, ``controller``, ``inventory`` or ``estimate``.
    source: str
    #: How it was found, for the plan: "1.2 GB compressed in 5 layers x 3".
    detail: str
    #: The registry's manifest digest, or the controller's image id: a host whose image
    #: has it needs no room for the image.
    digest: str | None = None


@dataclass(frozen=True)
class DiskNeed:
    """What one host must have free for a run (bytes), and what each part is."""

    image: str
    image_bytes: int
    image_source: str
    image_detail: str
    image_digest: str | None
    model: str
    model_bytes: int
    margin_bytes: int

    @property
    def total_bytes(self) -> int:
        """Image, model and margin together (one file system holding all of them)."""
        return self.image_bytes + self.model_bytes + self.margin_bytes

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: the preflight role's ``preflight_disk_need`` and the manifest's plan."""
        return {
            "image": self.image, "image_bytes": self.image_bytes,
            "image_source": self.image_source, "image_detail": self.image_detail,
            "image_digest": self.image_digest, "model": self.model,
            "model_bytes": self.model_bytes, "margin_bytes": self.margin_bytes,
            "total_bytes": self.total_bytes,
        }

    def describe(self) -> str:
        """One line for the plan: the total and its parts."""
        return describe(self.to_dict())


def describe(need: Mapping[str, Any]) -> str:
    """One line for the plan of a need (:meth:`DiskNeed.to_dict`): the total and its parts."""
    return (f"{gb(need['total_bytes'])} GB free per host at most: image "
            f"{gb(need['image_bytes'])} GB ({need['image_detail']}), model "
            f"{gb(need['model_bytes'])} GB, margin {gb(need['margin_bytes'])} GB")


def gb(value: float) -> str:
    """Bytes as GB (10^9) with one decimal, as people read disk sizes."""
    return f"{value / GB:.1f}"


# --- options ---------------------------------------------------------------------------------


def _gb_option(variables: Mapping[str, Any], name: str, host: str) -> float | None:
    value = variables.get(name)
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not number >= 0 or math.isinf(number):  # negative, not a number, NaN or inf
        raise BadInput(f"{name} of {host} is {value!r}, not a size in GB — e.g. {name}: 40")
    return number


def disk_options(host_vars: Mapping[str, Mapping[str, Any]]
                 ) -> dict[str, tuple[float | None, float]]:
    """Each host's (image size in GB or None, margin in GB) from the inventory; BadInput for
    a value that is no size."""
    options: dict[str, tuple[float | None, float]] = {}
    for host, variables in host_vars.items():
        # The margin is the preflight role's (preflight_disk_margin_gb, checked with the
        # roles' arguments); a template only Ansible resolves is planned with the default.
        raw = variables.get(MARGIN_VAR)
        margin = None if isinstance(raw, str) and "{{" in raw else _gb_option(
            variables, MARGIN_VAR, host)
        options[host] = (_gb_option(variables, IMAGE_SIZE_VAR, host),
                         DEFAULT_MARGIN_GB if margin is None else margin)
    return options


# --- the model -------------------------------------------------------------------------------


def model_bytes(model: str, dtype: str) -> int:
    """Bytes of the model's weights as downloaded: ``fleetbench fit``'s parameter count in
    the checkpoint's own dtype (a float8 run of a bf16 checkpoint still downloads bf16),
    else in the run's dtype when the config does not name one."""
    from fleetbench.fit import estimate_fit, resolve_model

    config = resolve_model(model)
    try:
        return estimate_fit(config, dtype="auto").weights_bytes
    except BadInput:
        return estimate_fit(config, dtype=dtype).weights_bytes


# --- the image's size from its registry ------------------------------------------------


@dataclass(frozen=True)
class ImageRef:
    """A Docker image reference split the way Docker reads it."""

    registry: str
    repository: str
    reference: str  # tag or digest

    @property
    def api(self) -> str:
        """Base URL of the registry's v2 API (plain HTTP on loopback, as Docker allows)."""
        host = "registry-1.docker.io" if self.registry == "docker.io" else self.registry
        return f"{'http' if _is_loopback(self.registry) else 'https'}://{host}/v2"


def parse_image_ref(ref: str) -> ImageRef:
    """``[registry/]repository[:tag][@digest]`` as Docker resolves it (docker.io/library)."""
    name, _, digest = ref.partition("@")
    tag = ""
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = "docker.io", name if slash else f"library/{name}"
    if not repository or not re.fullmatch(r"[a-z0-9]+([._/-]+[a-z0-9]+)*", repository):
        raise BadInput(f"image {ref!r} is not an image reference — e.g. rocm/vllm:latest")
    return ImageRef(registry=registry, repository=repository,
                    reference=digest or tag or "latest")


def _is_loopback(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _get(url: str, accept: tuple[str, ...], timeout: float,
         token: str | None = None) -> tuple[dict[str, Any], str | None]:
    headers = {"Accept": ", ".join(accept)}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (http/https only)
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        body: dict[str, Any] = json.loads(response.read(4 * 1024 * 1024))
        return body, response.headers.get("Docker-Content-Digest")


def _anonymous_token(challenge: str, timeout: float) -> str | None:
    """A pull token for a public repository (Docker Hub answers 401 without one)."""
    if not challenge.lower().startswith("bearer "):
        return None
    fields = dict(_BEARER.findall(challenge))
    realm = fields.pop("realm", "")
    parsed = urllib.parse.urlsplit(realm)
    # A token service over plain HTTP only on this machine (Docker Hub's is HTTPS).
    if not (parsed.scheme == "https" or (parsed.scheme == "http"
                                         and _is_loopback(parsed.netloc))):
        return None
    url = f"{realm}?{urllib.parse.urlencode(fields)}"
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
        data = json.loads(response.read(64 * 1024))
    token = data.get("token") or data.get("access_token")
    return str(token) if token else None


def registry_image_size(ref: str, timeout: float = REGISTRY_TIMEOUT_S) -> ImageSize:
    """The image's size from its registry's manifest (linux/amd64 of a multi-platform one):
    its compressed layers times :data:`UNPACK_FACTOR`. Raises OSError (or ValueError for a
    manifest it cannot read) when the registry does not tell."""
    parsed = parse_image_ref(ref)
    url = f"{parsed.api}/{parsed.repository}/manifests/{parsed.reference}"
    accept = _INDEX_TYPES + _MANIFEST_TYPES
    token = None
    try:
        manifest, digest = _get(url, accept, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 401:
            raise
        token = _anonymous_token(exc.headers.get("WWW-Authenticate", ""), timeout)
        if token is None:
            raise
        manifest, digest = _get(url, accept, timeout, token)
    if manifest.get("manifests"):  # a multi-platform index: the hosts are linux/amd64
        chosen = next((m for m in manifest["manifests"]
                       if (m.get("platform") or {}).get("os") == "linux"
                       and (m.get("platform") or {}).get("architecture") == "amd64"), None)
        if chosen is None:
            raise ValueError(f"{ref} has no linux/amd64 image")
        manifest, _ = _get(f"{parsed.api}/{parsed.repository}/manifests/{chosen['digest']}",
                           _MANIFEST_TYPES, timeout, token)
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ValueError(f"the manifest of {ref} lists no layers")
    compressed = sum(int(layer.get("size") or 0) for layer in layers)
    return ImageSize(
        bytes=int(compressed * UNPACK_FACTOR), source="registry",
        detail=f"{gb(compressed)} GB compressed in {len(layers)} layers x {UNPACK_FACTOR:g}, "
               "from the registry's manifest",
        digest=digest)


def estimated_image_size(ref: str, why: str) -> ImageSize:
    """The plan's estimate for an image whose registry did not tell (``why``)."""
    return ImageSize(bytes=int(DEFAULT_IMAGE_ESTIMATE_GB * GB), source="estimate",
                     detail=f"estimate: {why}; set {IMAGE_SIZE_VAR} for {ref}'s real size")


def image_size(ref: str, timeout: float = REGISTRY_TIMEOUT_S) -> ImageSize:
    """The registry's word on ``ref``'s size, else the estimate (never raises for a registry
    that is out of reach: that is what the estimate is for)."""
    try:
        return registry_image_size(ref, timeout)
    except urllib.error.HTTPError as exc:
        return estimated_image_size(ref, f"the registry answered HTTP {exc.code}")
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return estimated_image_size(ref, f"registry not reachable from the controller ({reason})")


# --- the plan -----------------------------------------------------------------------------


def plan_disk(images: Mapping[str, str], model: str, model_size: int,
              options: Mapping[str, tuple[float | None, float]],
              sizes: Mapping[str, ImageSize]) -> dict[str, DiskNeed]:
    """Each host's need from its image (``images``: host → ref), the model's size, its
    inventory options (:func:`disk_options`) and what is known of each image (``sizes``:
    ref → size; an inventory size wins over it)."""
    needs: dict[str, DiskNeed] = {}
    for host, ref in images.items():
        given, margin = options.get(host, (None, DEFAULT_MARGIN_GB))
        size = (ImageSize(bytes=int(given * GB), source="inventory",
                          detail=f"{IMAGE_SIZE_VAR} {given:g}")
                if given is not None else sizes[ref])
        needs[host] = DiskNeed(image=ref, image_bytes=size.bytes, image_source=size.source,
                               image_detail=size.detail, image_digest=size.digest,
                               model=model, model_bytes=model_size,
                               margin_bytes=int(margin * GB))
    return needs


def summary(needs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The manifest's ``plan.disk``: each distinct need (:meth:`DiskNeed.to_dict`) once,
    with the hosts it applies to."""
    groups: dict[str, dict[str, Any]] = {}
    for host, need in needs.items():
        entry = groups.setdefault(json.dumps(dict(need), sort_keys=True),
                                  {**need, "hosts": []})
        entry["hosts"].append(host)
    return {"needs": list(groups.values())}


# --- the verdict on a host -------------------------------------------------------------------


def _has_image(need: Mapping[str, Any], local: Mapping[str, Any] | None) -> bool:
    """True when the host's engine already holds the planned image."""
    if not local:
        return False
    expected = need.get("image_digest")
    if not expected:
        return True  # the registry did not say which image: the tag's layers are there
    digests = [str(d).rsplit("@", 1)[-1] for d in local.get("repo_digests") or []]
    return local.get("id") == expected or expected in digests


def judge_disk(need: Mapping[str, Any], disk: Mapping[str, Any]
               ) -> tuple[list[str], list[dict[str, Any]]]:
    """Problems (one per file system that is short) and what was checked, from the planned
    ``need`` (:meth:`DiskNeed.to_dict`) and the probe's ``disk``. No need (``fleetbench
    check``): nothing is judged."""
    if not need or not isinstance(disk.get("free_bytes"), int):
        return [], []
    image = 0 if _has_image(need, disk.get("image")) else int(need["image_bytes"])
    cache = disk.get("model_cache") or {}
    model = max(int(need["model_bytes"]) - int(cache.get("cached_bytes") or 0), 0)
    margin = int(need["margin_bytes"])
    if not cache or cache.get("device") == disk.get("device"):
        groups = [(disk, {"image": image, "model": model})]
    else:
        groups = [(disk, {"image": image}), (cache, {"model": model})]
    problems: list[str] = []
    checked: list[dict[str, Any]] = []
    for place, parts in groups:
        needed = sum(parts.values()) + margin
        free = int(place["free_bytes"])
        checked.append({"path": place.get("measured_at"), "needed_bytes": needed,
                        "free_bytes": free, **{f"{k}_bytes": v for k, v in parts.items()},
                        "margin_bytes": margin})
        if free < needed:
            what = " + ".join(f"{k} {gb(v)} GB" for k, v in parts.items())
            fix = ("free space there (docker image prune removes unused images)"
                   if "image" in parts else "free space there")
            if "model" in parts:
                fix += ", or point fleetbench_model_cache at a larger disk"
            problems.append(
                f"not enough disk at {place.get('measured_at')}: {gb(needed)} GB needed "
                f"({what} + margin {gb(margin)} GB), {gb(free)} GB free — {fix}")
    return problems, checked


def image_of(host_vars: Mapping[str, Any], override: str | None, default: str) -> str:
    """The image a host runs: ``--image``, else its ``fleetbench_image``, else the default."""
    return str(override or host_vars.get("fleetbench_image") or default)


def lookup_sizes(refs: set[str], known: Mapping[str, ImageSize] | None = None,
                 timeout: float = REGISTRY_TIMEOUT_S) -> dict[str, ImageSize]:
    """Each image's size: ``known`` ones (the controller's engine) as they are, the others
    from their registries, or the estimate when a registry does not tell."""
    sizes = dict(known or {})
    for ref in sorted(refs - set(sizes)):
        if "{{" in ref:  # a templated fleetbench_image: only Ansible knows its value
            sizes[ref] = estimated_image_size(ref, "the reference is a template")
            continue
        try:
            sizes[ref] = image_size(ref, timeout)
        except BadInput as exc:
            sizes[ref] = estimated_image_size(ref, str(exc))
    return sizes
