"""The lab's stand-in ``rocm/vllm`` image: no GPU code, but what ROCm/MAD's scripts use.

The machine reaches no public container registry, so the image is assembled from files
this machine already has and imported into the local engine, then pushed to the lab
registry, from where the playbooks pull it exactly as they would pull the real image.

What it holds, and why:

- bash and busybox (coreutils, awk, sed, tail, sleep …): MAD's shell scripts;
- Debian's Python 3.11 (stdlib without its tests) with pandas and numpy: MAD's report
  tools (``vllm_benchmark_report.py``, ``parse_csv.py``; pandas is MAD's requirements.txt);
- curl (MAD's readiness loops poll ``vllm serve`` with it) and git;
- the real ``huggingface_hub`` client (from PyPI, copied from fleetbench's own
  environment with its pure-Python dependencies): the model step downloads with it, as it
  does in a rocm/vllm image;
- vLLM's entry points as they sit in the rocm/vllm image
  (``/app/vllm/benchmarks/benchmark_{latency,throughput,serving}.py`` and a ``vllm``
  command with ``serve`` and ``bench``), as Python stand-ins (``vllm_image/``) that take
  vLLM's arguments, write vLLM's JSON and obey the host's lab faults.

Files come from the Debian packages' own file lists (``dpkg-query -L``), never from
guessing, and every ELF file's shared libraries (``ldd``) come along, so the image holds
exactly what the programs load. Building from nothing takes seconds, not a debootstrap.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

import docker
import docker.errors

from fleetbench.errors import LabError
from fleetbench.lab.services import REGISTRY_ADDRESS, require_binaries

DEFAULT_REPOSITORY = "rocm/vllm"
DEFAULT_TAG = "instinct_main"
_LDD_PATH = re.compile(r"(/\S+)")
_ELF_MAGIC = b"\x7fELF"
_VERSION = re.compile(r'^__version__ = "([^"]+)"', re.MULTILINE)

PYTHON = "python3.11"
"""The image's Python, Debian's (``/usr/bin/python3`` points at it)."""

PYTHON_PACKAGES = (
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "python3-numpy",
    "python3-pandas",
    "python3-pandas-lib",
    "python3-dateutil",
    "python3-tz",
    "python3-six",
    "python3-yaml",  # MAD's run_vllm.py (late 2025) reads YAML configs
    "python3-psutil",  # and imports psutil to stop its vLLM server
    "tzdata",  # pytz reads the system time zones
)
"""Debian packages whose files go into the image whole (less docs and tests)."""

TOOL_PACKAGES = ("curl",)
"""Debian packages of command-line tools that go in whole."""

HUB_CLIENT = "huggingface_hub"
"""The Hugging Face client (a PyPI distribution of fleetbench's environment) in the image."""

# Not copied with the client: hf-xet is a native accelerator for Xet storage that the client
# uses only when the hub offers Xet (the lab's hub does not), PyYAML comes from Debian.
_SKIPPED_DISTRIBUTIONS = frozenset({"hf-xet", "pyyaml"})
# The image's Python, for the dependencies' environment markers.
_IMAGE_MARKERS = {"python_version": "3.11", "python_full_version": "3.11.2",
                  "sys_platform": "linux", "platform_system": "Linux",
                  "platform_machine": "x86_64", "platform_python_implementation": "CPython",
                  "implementation_name": "cpython", "os_name": "posix", "extra": ""}

GIT_FILES = ("/usr/bin/git", "/usr/lib/git-core/git-remote-http", "/usr/share/git-core/templates")
"""git: the one binary (every builtin is in it), its HTTP transport and the templates."""

# git runs these dashed names from its exec path (clone from a file:// URL spawns
# git-upload-pack); in the git package they are links to the git binary.
_GIT_CORE_LINKS = {
    "git": "../../bin/git",
    "git-upload-pack": "../../bin/git",
    "git-receive-pack": "../../bin/git",
    "git-upload-archive": "../../bin/git",
    "git-remote-https": "git-remote-http",
}

# Never copied: documentation and the packages' test suites (pandas' alone is 36 MB).
_SKIPPED_PREFIXES = (
    "/usr/share/doc/",
    "/usr/share/man/",
    "/usr/share/lintian/",
    "/usr/share/bug/",
    "/usr/share/zsh/",
    "/usr/share/bash-completion/",
    "/usr/share/applications/",
    "/usr/share/pixmaps/",
    "/usr/share/binfmts/",
    "/usr/include/",
    # numpy's second copy of its core module, for C extensions built against it
    "/usr/lib/python3.11/dist-packages/",
)
_SKIPPED_PARTS = frozenset({"tests", "test", "idle_test", "idlelib", "tkinter", "turtledemo"})

# Where the stand-ins ship inside fleetbench and where they go in the image.
_STANDIN_PACKAGE = "fleetbench.lab"
_STANDIN_DIR = "vllm_image"
_STANDIN_TARGETS = {
    "vllm": f"usr/local/lib/{PYTHON}/dist-packages/vllm",
    "app": "app",
    "bin": "usr/local/bin",
}


def lab_image_ref(lab_id: str, registry: str = REGISTRY_ADDRESS) -> str:
    """The image reference a lab fleet pulls: the guide's name and tag on the lab registry,
    under a namespace of its own so that removing one lab never breaks another."""
    return f"{registry}/{lab_id}/{DEFAULT_REPOSITORY}:{DEFAULT_TAG}"


def keep_package_file(path: str) -> bool:
    """Whether a file a Debian package lists belongs in the image (no docs, no tests)."""
    if path.startswith(_SKIPPED_PREFIXES):
        return False
    return not _SKIPPED_PARTS.intersection(PurePosixPath(path).parts[:-1])


def parse_ldd(output: str) -> list[str]:
    """The absolute library paths in ``ldd`` output (one or several files' listings)."""
    libs: list[str] = []
    for line in output.splitlines():
        if not line.startswith(("\t", " ")):
            continue  # "file:" headers of a multi-file listing
        match = _LDD_PATH.search(line.split("=>", 1)[-1])
        if match and not match.group(1).endswith(":"):
            libs.append(match.group(1))
    return libs


def package_files(package: str) -> list[str]:
    """Files and symlinks Debian's ``package`` installed, as ``dpkg-query -L`` lists them."""
    try:
        done = subprocess.run(
            ["dpkg-query", "-L", package], capture_output=True, text=True, check=False
        )
    except FileNotFoundError as exc:
        raise LabError("the lab image is built from Debian packages: dpkg-query is missing") \
            from exc
    if done.returncode != 0:
        raise LabError(
            f"the lab image needs the Debian package {package}, which is not installed — "
            f"install it with: apt-get install -y {package} (scripts/setup.sh does)"
        )
    paths = []
    for line in done.stdout.splitlines():
        path = Path(line.strip())
        if line.startswith("/") and (path.is_symlink() or path.is_file()):
            paths.append(line.strip())
    return paths


@dataclass
class Rootfs:
    """The image's files: path in the image -> what to write there."""

    files: dict[str, Path] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    texts: dict[str, bytes] = field(default_factory=dict)
    dirs: dict[str, int] = field(default_factory=dict)

    def add_host_path(self, path: str) -> None:
        """A host file at the same place in the image (a symlink stays one, with its target)."""
        target = path.lstrip("/")
        if target in self.files or target in self.symlinks:
            return
        host = Path(path)
        if host.is_symlink():
            link = str(host.readlink())
            self.symlinks[target] = link
            resolved = (host.parent / link) if not link.startswith("/") else Path(link)
            if resolved.exists():
                self.add_host_path(str(Path(resolved.parent.resolve(), resolved.name)))
            return
        if host.is_dir():
            for child in sorted(host.rglob("*")):
                if child.is_file() or child.is_symlink():
                    self.add_host_path(str(child))
            return
        self.files[target] = host
        if host.suffix == ".py":
            cached = host.parent / "__pycache__" / f"{host.stem}.cpython-311.pyc"
            if cached.is_file():
                self.files[str(PurePosixPath(target).parent / "__pycache__" / cached.name)] = \
                    cached

    def add_copy(self, source: Path, target: str, mode: int | None = None) -> None:
        """A host file's content (symlinks followed) at ``target`` in the image."""
        self.files[target] = source.resolve()
        if mode is not None:
            self.modes[target] = mode

    def add_text(self, target: str, text: str, mode: int = 0o644) -> None:
        """A file written from ``text``."""
        self.texts[target] = text.encode()
        self.modes[target] = mode

    def elf_files(self) -> list[Path]:
        """Every ELF file in the image (to find the libraries they load)."""
        found = []
        for source in self.files.values():
            with source.open("rb") as handle:
                if handle.read(4) == _ELF_MAGIC:
                    found.append(source)
        return found

    def write(self, archive: tarfile.TarFile) -> None:
        """Write every entry, parent folders first, in a stable order."""
        names = [*self.files, *self.symlinks, *self.texts]
        folders = dict(self.dirs)
        for name in names:
            for parent in PurePosixPath(name).parents:
                if str(parent) != ".":
                    folders.setdefault(str(parent), 0o755)
        for folder in sorted(folders):
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            info.mode = folders[folder]
            archive.addfile(info)
        for name in sorted(names):
            if name in self.symlinks:
                info = tarfile.TarInfo(name)
                info.type = tarfile.SYMTYPE
                info.linkname = self.symlinks[name]
                archive.addfile(info)
            elif name in self.texts:
                data = self.texts[name]
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = self.modes[name]
                archive.addfile(info, io.BytesIO(data))
            else:
                source = self.files[name]
                info = archive.gettarinfo(str(source), arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                if name in self.modes:
                    info.mode = self.modes[name]
                with source.open("rb") as handle:
                    archive.addfile(info, handle)


def _distribution_key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def python_distributions(root: str) -> list[metadata.Distribution]:
    """``root`` and the distributions it needs in the image (markers evaluated for the
    image's Python, extras left out), as installed in fleetbench's environment."""
    from packaging.requirements import Requirement

    found: dict[str, metadata.Distribution] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        key = _distribution_key(name)
        if key in found or key in _SKIPPED_DISTRIBUTIONS:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError as exc:
            raise LabError(f"the lab image needs the Python package {name}, which is not "
                           "installed — install fleetbench with its dependencies "
                           "(scripts/setup.sh does)") from exc
        found[key] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate(_IMAGE_MARKERS):
                todo.append(requirement.name)
    return [found[key] for key in sorted(found)]


def add_python_distribution(rootfs: Rootfs, dist: metadata.Distribution) -> None:
    """Copy an installed distribution's files (its RECORD) into the image's dist-packages."""
    target = f"usr/local/lib/{PYTHON}/dist-packages"
    for file in dist.files or []:
        relative = PurePosixPath(str(file))
        if relative.parts[0] in ("..", "/") or "__pycache__" in relative.parts:
            continue  # console scripts outside site-packages, byte code of another Python
        if _SKIPPED_PARTS.intersection(relative.parts[:-1]):
            continue  # a package's own test suite
        source = Path(str(dist.locate_file(file)))
        if source.is_file():
            rootfs.add_copy(source, f"{target}/{relative}")


def _shared_libraries(binaries: Iterable[Path]) -> list[str]:
    paths = [str(path) for path in binaries]
    libs: list[str] = []
    # ldd takes many files at once; a few hundred per call keep the command line short.
    for start in range(0, len(paths), 200):
        listing = subprocess.run(
            ["ldd", *paths[start:start + 200]], capture_output=True, text=True, check=False
        )
        libs.extend(parse_ldd(listing.stdout))
    return sorted(set(libs))


def _standin_files() -> Iterator[tuple[Traversable, str]]:
    root = resources.files(_STANDIN_PACKAGE).joinpath(_STANDIN_DIR)
    for top, target in _STANDIN_TARGETS.items():
        yield from _walk(root.joinpath(top), target)


def _walk(node: Traversable, target: str) -> Iterator[tuple[Traversable, str]]:
    for child in node.iterdir():
        if child.name == "__pycache__" or child.name.endswith(".pyc"):
            continue
        if child.is_dir():
            yield from _walk(child, f"{target}/{child.name}")
        else:
            yield child, f"{target}/{child.name}"


def standin_vllm_version() -> str:
    """The stand-in vLLM's ``__version__``."""
    text = resources.files(_STANDIN_PACKAGE).joinpath(_STANDIN_DIR, "vllm", "__init__.py")
    match = _VERSION.search(text.read_text())
    if match is None:
        raise LabError("the lab's stand-in vLLM has no __version__")
    return match.group(1)


def build_rootfs_tree() -> Rootfs:
    """What the stand-in image holds (see the module docstring)."""
    binaries = require_binaries(("bash", "busybox", "git"))
    busybox = binaries["busybox"]
    rootfs = Rootfs()
    for folder in ("tmp", "var/tmp"):
        rootfs.dirs[folder] = 0o1777
    for folder in ("root", "workspace", "etc", "usr/local/bin"):
        rootfs.dirs[folder] = 0o755

    rootfs.add_copy(Path(binaries["bash"]), "bin/bash")
    rootfs.add_copy(Path(busybox), "bin/busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    for applet in applets.stdout.split():
        if applet not in {"bash", "busybox"} and "/" not in applet:
            rootfs.symlinks[f"bin/{applet}"] = "busybox"
    rootfs.symlinks["usr/bin/env"] = "../../bin/busybox"

    for package in (*PYTHON_PACKAGES, *TOOL_PACKAGES):
        for path in package_files(package):
            if keep_package_file(path):
                rootfs.add_host_path(path)
    rootfs.symlinks["usr/bin/python3"] = PYTHON
    rootfs.symlinks["usr/bin/python"] = PYTHON
    for path in GIT_FILES:
        if not Path(path).exists():
            raise LabError(f"the lab image needs {path} (Debian package: git)")
        rootfs.add_host_path(path)
    for name, link in _GIT_CORE_LINKS.items():
        rootfs.symlinks[f"usr/lib/git-core/{name}"] = link

    for dist in python_distributions(HUB_CLIENT):
        add_python_distribution(rootfs, dist)

    for lib in _shared_libraries(rootfs.elf_files()):
        rootfs.add_copy(Path(lib), lib.lstrip("/"))

    for source, target in _standin_files():
        executable = target.startswith(("usr/local/bin/", "app/"))
        rootfs.add_text(target, source.read_text(), 0o755 if executable else 0o644)
    # vLLM's distribution metadata, as pip leaves it: how its version is read without
    # importing it (the real package imports torch).
    version = standin_vllm_version()
    rootfs.add_text(f"usr/local/lib/{PYTHON}/dist-packages/vllm-{version}.dist-info/METADATA",
                    f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n")

    rootfs.add_text("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
    rootfs.add_text("etc/group", "root:x:0:\nvideo:x:44:\nrender:x:109:\n")
    rootfs.add_text("etc/os-release", 'NAME="fleetbench lab stand-in for rocm/vllm"\n')
    rootfs.add_text("etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n")
    return rootfs


def build_rootfs(dest: Path) -> int:
    """Write the stand-in rootfs as a tar to ``dest``; returns its size in bytes."""
    with tarfile.open(dest, mode="w", format=tarfile.PAX_FORMAT) as archive:
        build_rootfs_tree().write(archive)
    return dest.stat().st_size


def publish_lab_image(ref: str) -> str:
    """Import the stand-in image, push it to the lab registry; returns the pushed reference."""
    repository, tag = ref.rsplit(":", 1)
    client = docker.from_env()
    workdir = Path(tempfile.mkdtemp(prefix="fleetbench-image-"))
    try:
        tar = workdir / "rootfs.tar"
        build_rootfs(tar)
        with tar.open("rb") as data:
            client.api.import_image_from_data(
                data, repository=repository, tag=tag,
                changes=[
                    "WORKDIR /app",
                    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    'CMD ["/bin/bash"]',
                ],
            )
        for line in client.api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in line:
                raise LabError(f"pushing {ref} to the lab registry failed: {line['error']}")
    except docker.errors.DockerException as exc:
        raise LabError(f"could not build the lab image {ref}: {exc}") from exc
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
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
