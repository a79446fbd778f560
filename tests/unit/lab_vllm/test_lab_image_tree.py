"""What the lab image's rootfs holds, built from this machine's Debian packages."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from fleetbench.errors import LabError
from fleetbench.lab import image


def test_docs_and_test_suites_stay_out() -> None:
    assert image.keep_package_file("/usr/lib/python3/dist-packages/pandas/core/frame.py")
    assert image.keep_package_file("/usr/bin/curl")
    assert not image.keep_package_file("/usr/lib/python3/dist-packages/pandas/tests/x.py")
    assert not image.keep_package_file("/usr/lib/python3.11/test/support/__init__.py")
    assert not image.keep_package_file("/usr/share/doc/curl/copyright")
    assert not image.keep_package_file("/usr/share/man/man1/curl.1.gz")
    # a file merely called test*.py is no test suite
    assert image.keep_package_file("/usr/lib/python3.11/unittest/case.py")


def test_ldd_output_of_several_files() -> None:
    listing = (
        "/usr/bin/curl:\n"
        "\tlinux-vdso.so.1 (0x00007ffd)\n"
        "\tlibcurl.so.4 => /lib/x86_64-linux-gnu/libcurl.so.4 (0x00007f)\n"
        "/usr/bin/git:\n"
        "\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f)\n"
        "\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n"
    )
    assert image.parse_ldd(listing) == [
        "/lib/x86_64-linux-gnu/libcurl.so.4",
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/lib64/ld-linux-x86-64.so.2",
    ]


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tarfile.TarInfo]:
    tar = tmp_path_factory.mktemp("image") / "rootfs.tar"
    size = image.build_rootfs(tar)
    assert 50 << 20 < size < 250 << 20, f"{size >> 20} MiB"
    with tarfile.open(tar) as archive:
        return {member.name: member for member in archive.getmembers()}


def test_rootfs_holds_python_pandas_curl_git(rootfs: dict[str, tarfile.TarInfo]) -> None:
    for path in ("usr/bin/python3.11", "usr/lib/python3.11/json/__init__.py",
                 "usr/lib/python3/dist-packages/pandas/__init__.py",
                 "usr/lib/python3/dist-packages/numpy/__init__.py",
                 "usr/bin/curl", "usr/bin/git", "bin/bash", "bin/busybox",
                 "lib64/ld-linux-x86-64.so.2", "usr/share/zoneinfo/tzdata.zi"):
        assert rootfs[path].isfile(), path
    assert rootfs["usr/bin/python3"].issym() and rootfs["usr/bin/python3"].linkname == "python3.11"
    assert rootfs["bin/awk"].linkname == "busybox"
    assert not [name for name in rootfs if "/tests/" in name]
    # every ELF's libraries come along: pandas' numpy needs BLAS, curl its libcurl
    assert any(name.endswith("/libblas.so.3") for name in rootfs)
    assert any(name.endswith("/libcurl.so.4") for name in rootfs)


def test_rootfs_holds_the_vllm_entry_points(rootfs: dict[str, tarfile.TarInfo]) -> None:
    for kind in ("latency", "throughput", "serving"):
        script = rootfs[f"app/vllm/benchmarks/benchmark_{kind}.py"]
        assert script.isfile() and script.mode & 0o111
    assert rootfs["usr/local/bin/vllm"].mode & 0o111
    assert rootfs["usr/local/lib/python3.11/dist-packages/vllm/_lab.py"].isfile()
    # The image tells its vLLM version as pip-installed vLLM does, without an import.
    version = image.standin_vllm_version()
    assert version == "0.9.1+fleetbench.lab"
    assert rootfs[f"usr/local/lib/python3.11/dist-packages/vllm-{version}.dist-info/METADATA"
                  ].isfile()
    assert rootfs["tmp"].isdir() and rootfs["tmp"].mode == 0o1777


def test_a_missing_package_is_named_with_its_fix(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setattr(image, "PYTHON_PACKAGES", ("fleetbench-no-such-package",))
    with pytest.raises(LabError, match="apt-get install -y fleetbench-no-such-package"):
        image.build_rootfs(tmp_path / "rootfs.tar")
