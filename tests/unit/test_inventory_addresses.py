"""Every host of an inventory needs an address of its own before anything starts.

Real inventory files, parsed by Ansible's own loader (load_fleet). Addresses are loopback
addresses where nothing listens; no name is ever resolved (socket look-ups fail the test).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from fleetbench.cli import main
from fleetbench.errors import BadInput
from fleetbench.inventory import address_problems, is_address, load_fleet
from tests.conftest import run_cli


@pytest.fixture(autouse=True)
def no_name_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation judges the text alone: any look-up in this process fails the test."""
    # Ansible probes getaddrinfo("127.0.0.1") once when it is first imported.
    import ansible.constants  # noqa: F401

    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError(f"a name was looked up: {args!r}")
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
        monkeypatch.setattr(socket, name, refuse)


def inventory(tmp_path: Path, text: str, name: str = "inv.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def bad_input(path: Path, limit: str | None = None) -> str:
    with pytest.raises(BadInput) as caught:
        load_fleet(path, limit)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"inventory {path}: ")
    return message


@pytest.mark.parametrize("text", [
    "198.51.100.3", "127.0.0.253", "::1", "fe80::1", "gpu01", "GPU-A-001", "gpu01.example.internal",
    "gpu01.example.internal.", "mi300x_a_001", "x" * 63 + ".example", "localhost",
])
def test_addresses(text: str) -> None:
    assert is_address(text)


@pytest.mark.parametrize("text", [
    "", " ", "gpu 04", "gpu01:2222", "192.0.2.15:22", "[192.0.2.15]", "-gpu", "gpu-", "gpu..a",
    "x" * 64, "10.0.0", "1234", "300.1.1.1", "gpu01/24", "ssh://gpu01", "gpu\u00e9",
    "gpu01,gpu02",
])
def test_not_addresses(text: str) -> None:
    assert not is_address(text)


def test_empty_or_null_ansible_host_is_bad_input(tmp_path: Path) -> None:
    path = inventory(tmp_path, (
        "all:\n  hosts:\n"
        "    gpu01:\n      ansible_host:\n"
        "    gpu02:\n      ansible_host: ''\n"
        "    gpu03:\n      ansible_host: 127.0.0.253\n"
    ))
    message = bad_input(path)
    assert "hosts gpu01, gpu02 have an empty ansible_host — set ansible_host to each host's " \
           "address (a DNS name or an IP address)" in message
    assert "gpu03" not in message


def test_empty_ansible_host_in_an_ini_inventory(tmp_path: Path) -> None:
    path = inventory(tmp_path, "[cluster]\ngpu01 ansible_host=\ngpu02 ansible_host=127.0.0.253\n",
                     name="hosts.ini")
    assert "host gpu01 has an empty ansible_host" in bad_input(path)


def test_a_name_that_is_no_address_needs_ansible_host(tmp_path: Path) -> None:
    path = inventory(tmp_path, (
        "all:\n  hosts:\n"
        "    'rack 4 gpu 1': {}\n"
        "    gpu02.example.internal: {}\n"  # a DNS name: fine as it is
        "    127.0.0.253: {}\n"
    ))
    message = bad_input(path)
    assert message == (
        f"inventory {path}: host 'rack 4 gpu 1' has no ansible_host, and a name that is not "
        "a host name or IP address — set ansible_host to each host's address (a DNS name or "
        "an IP address)")


def test_dns_names_without_ansible_host_are_fine(tmp_path: Path) -> None:
    path = inventory(tmp_path, (
        "all:\n  hosts:\n    gpu01.example.internal: {}\n    gpu02.example.internal: {}\n"
        "    gpu03: {}\n"
    ))
    assert load_fleet(path).hosts == ("gpu01.example.internal", "gpu02.example.internal",
                                      "gpu03")


def test_a_port_in_ansible_host_is_named(tmp_path: Path) -> None:
    path = inventory(tmp_path, "all:\n  hosts:\n    gpu01: {ansible_host: '192.0.2.15:2222'}\n")
    message = bad_input(path)
    assert "host gpu01 (ansible_host '192.0.2.15:2222') has an address that is not a host name " \
           "or IP address" in message
    assert "the port goes in ansible_port" in message


def test_two_hosts_on_one_address_and_port(tmp_path: Path) -> None:
    path = inventory(tmp_path, (
        "all:\n  vars: {ansible_port: 2222}\n  hosts:\n"
        "    gpu01: {ansible_host: 127.0.0.253}\n"
        "    gpu02: {ansible_host: 127.0.0.252}\n"
        "    gpu03: {ansible_host: 127.0.0.253}\n"
        "    gpu04: {ansible_host: 127.0.0.253, ansible_port: 2223}\n"  # another sshd: fine
    ))
    assert bad_input(path) == (
        f"inventory {path}: hosts gpu01 and gpu03 have the same address [127.0.0.253]:2222 — "
        "give each its own ansible_host (or ansible_port), or list it once")


def test_a_name_and_an_ansible_host_can_be_the_same_machine(tmp_path: Path) -> None:
    path = inventory(tmp_path, (
        "all:\n  hosts:\n"
        "    Gpu01.Example.Internal.: {}\n"
        "    gpu01-alias: {ansible_host: gpu01.example.internal, ansible_port: 22}\n"
        "    gpu02: {ansible_host: 127.0.0.253}\n"
    ))
    assert "hosts Gpu01.Example.Internal. and gpu01-alias have the same address " \
           "gpu01.example.internal — " in bad_input(path)


def test_one_address_behind_two_bastions_is_two_machines(tmp_path: Path) -> None:
    path = inventory(tmp_path, (
        "all:\n  children:\n"
        "    cluster_a:\n      vars: {ansible_ssh_common_args: '-o ProxyJump=127.0.0.250'}\n"
        "      hosts: {a-001: {ansible_host: 192.0.2.15}}\n"
        "    cluster_b:\n      vars: {ansible_ssh_common_args: '-o ProxyJump=127.0.0.251'}\n"
        "      hosts: {b-001: {ansible_host: 192.0.2.15}}\n"
    ))
    assert load_fleet(path).hosts == ("a-001", "b-001")


def test_templated_addresses_are_judged_rendered(tmp_path: Path) -> None:
    path = inventory(tmp_path, (
        "all:\n  vars:\n    ansible_host: '{{ inventory_hostname }}.example.internal'\n"
        "  hosts:\n    gpu01: {}\n    gpu02: {}\n"
    ))
    assert load_fleet(path).hosts == ("gpu01", "gpu02")
    path.write_text("all:\n  vars:\n    ansible_host: '{{ site }}'\n    site: 127.0.0.253\n"
                    "  hosts:\n    gpu01: {}\n    gpu02: {}\n")
    assert "hosts gpu01 and gpu02 have the same address 127.0.0.253" in bad_input(path)


def test_a_bad_port_is_named(tmp_path: Path) -> None:
    path = inventory(tmp_path, "all:\n  hosts:\n    gpu01: {ansible_host: 127.0.0.253, "
                               "ansible_port: 70000}\n")
    assert "host gpu01 (ansible_port 70000) has a port that is not a number from 1 to 65535" \
        in bad_input(path)


def test_local_connections_need_no_address(tmp_path: Path) -> None:
    path = inventory(tmp_path, (
        "all:\n  hosts:\n    'the controller': {ansible_connection: local}\n"
        "    gpu01: {ansible_host: 127.0.0.253}\n"
    ))
    assert load_fleet(path).hosts == ("the controller", "gpu01")


def test_only_the_selected_hosts_are_judged(tmp_path: Path) -> None:
    path = inventory(tmp_path, (
        "all:\n  children:\n"
        "    broken:\n      hosts: {gpu01: {ansible_host: ''}}\n"
        "    good:\n      hosts: {gpu02: {ansible_host: 127.0.0.253}}\n"
    ))
    assert load_fleet(path, "good").hosts == ("gpu02",)
    assert "host gpu01 has an empty ansible_host" in bad_input(path)


def test_many_problems_in_one_message(tmp_path: Path) -> None:
    hosts = "".join(f"    gpu{i:02d}: {{ansible_host: ''}}\n" for i in range(1, 14))
    path = inventory(tmp_path, "all:\n  hosts:\n" + hosts)
    assert "hosts gpu01, gpu02, gpu03, gpu04, gpu05, gpu06, gpu07, gpu08, gpu09, gpu10 and " \
           "3 more have an empty ansible_host" in bad_input(path)


def test_address_problems_of_plain_variables() -> None:
    assert address_problems({"a": {"ansible_host": "127.0.0.253"}, "b": {}}) == []
    assert address_problems({"a": {"ansible_ssh_host": ""}}) == [
        "host a (ansible_ssh_host) has an empty ansible_host — set ansible_host to each "
        "host's address (a DNS name or an IP address)"]


# --- through the commands: exit 2, nothing started ----------------------------------------


def test_check_exits_2_naming_the_host(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = inventory(tmp_path, "all:\n  hosts:\n    gpu01:\n      ansible_host:\n")
    assert main(["check", "-i", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "host gpu01 has an empty ansible_host — set ansible_host" in err


def test_run_exits_2_and_creates_no_run(tmp_path: Path) -> None:
    path = inventory(tmp_path, (
        "all:\n  hosts:\n    gpu01: {ansible_host: 127.0.0.253}\n"
        "    gpu02: {ansible_host: 127.0.0.253}\n"
    ))
    runs = tmp_path / "runs"
    done = run_cli("run", "-i", path, "--model", "Qwen/Qwen2.5-7B-Instruct", "--gpus", "1",
                   "--runs-dir", runs)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (f"fleetbench: error: inventory {path}: hosts gpu01 and gpu02 have "
                           "the same address 127.0.0.253 — give each its own ansible_host (or "
                           "ansible_port), or list it once\n")
    assert not runs.exists()


def test_partition_show_exits_2(tmp_path: Path) -> None:
    path = inventory(tmp_path, "all:\n  hosts:\n    'gpu 01': {}\n")
    done = run_cli("partition", "show", "-i", path, "--json")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "host 'gpu 01' has no ansible_host" in done.stderr
