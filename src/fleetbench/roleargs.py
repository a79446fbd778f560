"""The roles' argument specs, checked once on the controller before a playbook starts.

Ansible checks a role's arguments (``meta/argument_specs.yml``) in a task it puts in front
of the role's own, tagged ``always``, and that task is run for every host in a forked
worker: run.yml has six roles, so six workers per host before anything useful happens
(bench/RESULTS.md, tuning log). fleetbench knows every host's variables before it starts
(:func:`fleetbench.inventory.load_fleet` resolves them), so it checks the same specs with
the same validator on the values the hosts will see — role defaults, then inventory
variables, then role parameters, then extra variables, templated — and a bad value is one
:class:`BadInput` (exit 2) naming the hosts, the variable and the fix, before any host is
touched. The playbooks are then run with ``--skip-tags always``
(:data:`SKIP_VALIDATION_TAGS`). Playbooks run without fleetbench (AWX, plain
ansible-playbook) keep Ansible's own per-host check.

Values only known once a run starts (its id, slots, a registered probe result) are given
as stand-ins by the caller or fall back to the roles' ``default()``; those are fleetbench's
own outputs, not an admin's input.
"""

from __future__ import annotations

import json
import re
from collections import ChainMap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

import yaml

from fleetbench.errors import BadInput
from fleetbench.resources import playbook_path, roles_path

#: What fleetbench's runs skip once this module has checked the arguments: the tag Ansible
#: gives its argument-check task. Its implicit ``flush_handlers`` tasks carry it too, so the
#: roles use no handlers, and no task of theirs is tagged ``always`` (a test keeps both so).
SKIP_VALIDATION_TAGS = "always"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MISSING = object()
_SHOWN_HOSTS = 5


@dataclass(frozen=True)
class RoleSpec:
    """One role's ``main`` entry point: its options and its defaults."""

    name: str
    options: Mapping[str, Any]
    defaults: Mapping[str, Any]


@dataclass(frozen=True)
class Problem:
    """A role argument that does not pass its spec on some hosts."""

    role: str
    option: str
    source: str  # the variable an admin sets (inventory or command line)
    message: str
    hosts: tuple[str, ...]

    def describe(self) -> str:
        """``role preflight, preflight_x (from fleetbench_x) on lab01, lab02: <why>``."""
        shown = ", ".join(self.hosts[:_SHOWN_HOSTS])
        more = len(self.hosts) - _SHOWN_HOSTS
        where = f"{shown} (+{more} more)" if more > 0 else shown
        origin = "" if self.source == self.option else f" (from {self.source})"
        return f"{self.option}{origin} on {where}: {self.message}"


@cache
def role_spec(name: str) -> RoleSpec:
    """``roles/<name>``'s argument spec and defaults (defaults as Ansible loads them)."""
    from ansible.parsing.dataloader import DataLoader

    folder = roles_path() / name
    spec_file = folder / "meta" / "argument_specs.yml"
    specs = yaml.safe_load(spec_file.read_text(encoding="utf-8")) if spec_file.is_file() else {}
    options = ((specs or {}).get("argument_specs") or {}).get("main", {}).get("options") or {}
    defaults_file = folder / "defaults" / "main.yml"
    defaults = (DataLoader().load_from_file(str(defaults_file), trusted_as_template=True)
                if defaults_file.is_file() else None) or {}
    return RoleSpec(name=name, options=options, defaults=defaults)


@cache
def playbook_roles(playbook: str) -> tuple[tuple[str, Mapping[str, Any]], ...]:
    """Each role of ``playbooks/<playbook>.yml`` with the parameters the play gives it."""
    plays = yaml.safe_load(playbook_path(playbook).read_text(encoding="utf-8")) or []
    roles: list[tuple[str, Mapping[str, Any]]] = []
    for play in plays:
        for entry in play.get("roles") or ():
            if isinstance(entry, str):
                roles.append((entry, {}))
            else:
                params = {k: v for k, v in entry.items() if k not in {"role", "name"}}
                roles.append((str(entry.get("role") or entry.get("name")), params))
    return tuple(roles)


def problems(playbooks: Sequence[str], host_vars: Mapping[str, Mapping[str, Any]],
             extravars: Mapping[str, Any] | None = None) -> list[Problem]:
    """Every role argument of ``playbooks`` that fails its spec, per host.

    ``host_vars`` are each host's inventory variables (``VariableManager.get_vars``);
    ``extravars`` what the playbook is started with. A value shared by many hosts is
    templated and checked once.
    """
    from ansible.errors import AnsibleError
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    extra = dict(extravars or {})
    roles = [(role_spec(name), {k: trust_as_template(v) if isinstance(v, str) else v
                                for k, v in params.items()})
             for playbook in playbooks for name, params in playbook_roles(playbook)]
    play_defaults: dict[str, Any] = {}
    for spec, _ in roles:  # role defaults are visible play-wide, later roles winning
        play_defaults.update(spec.defaults)
    loader = DataLoader()
    templated: dict[tuple[Any, ...], Any] = {}
    verdicts: dict[tuple[str, str], list[str]] = {}
    keep_alive: list[Any] = []  # objects whose id() is part of a cache key
    found: dict[tuple[str, str, str, str], list[str]] = {}

    for host, variables in host_vars.items():
        templar: Any = None
        for spec, params in roles:
            scope = ChainMap(extra, params, cast(dict[str, Any], variables), play_defaults)
            values: dict[str, Any] = {}
            for option in spec.options:
                raw = scope.get(option, _MISSING)
                if raw is _MISSING:
                    continue
                key = _cache_key(spec.name, option, raw, scope, keep_alive)
                if key not in templated:
                    if templar is None:
                        templar = Templar(loader=loader, variables=scope)
                    templar.available_variables = scope
                    try:
                        templated[key] = templar.template(raw)
                    except AnsibleError as exc:
                        templated[key] = _Unresolved(_first_line(str(exc)))
                values[option] = templated[key]
            unresolved = {o: v for o, v in values.items() if isinstance(v, _Unresolved)}
            messages = [f"{o}: {v.reason}" for o, v in unresolved.items()]
            checked = {o: v for o, v in values.items() if o not in unresolved}
            fingerprint = (spec.name, _fingerprint(checked))
            if fingerprint not in verdicts:
                # Checked as plain JSON values: Ansible's tagged strings would otherwise
                # name their internal class in the messages.
                result = ArgumentSpecValidator(dict(spec.options)).validate(
                    json.loads(fingerprint[1]), validate_role_argument_spec=True)
                verdicts[fingerprint] = list(result.error_messages)
            messages += verdicts[fingerprint]
            for message in messages:
                about = _option_named(message, spec.options)
                source = _source(about, spec, scope) if about else spec.name
                found.setdefault((spec.name, about or "", source, message), []).append(host)
    # A shared setting (fleetbench_defaults) that fails its own spec fails again in every
    # role option taken from it: the setting itself is the one problem to name.
    direct: dict[str, set[str]] = {}
    for (_, option, source, _), hosts in found.items():
        if option == source:
            direct.setdefault(source, set()).update(hosts)
    # A role listed by several playbooks (fleetbench_defaults) sees each host once per play.
    return [Problem(role=role, option=option or role, source=source, message=message,
                    hosts=tuple(dict.fromkeys(hosts)))
            for (role, option, source, message), hosts in found.items()
            if option == source or not set(hosts) <= direct.get(source, set())]


def validate(playbooks: Sequence[str], host_vars: Mapping[str, Mapping[str, Any]],
             extravars: Mapping[str, Any] | None = None) -> None:
    """Raise BadInput (nothing started) when a role argument fails its spec on a host."""
    found = problems(playbooks, host_vars, extravars)
    if not found:
        return
    lines = "; ".join(p.describe() for p in found[:3])
    more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
    raise BadInput(
        f"role arguments do not match the roles' argument specs: {lines}{more} — fix the "
        "variable in the inventory (group_vars/host_vars) or on the command line; "
        "roles/<role>/meta/argument_specs.yml says what each one takes"
    )


@dataclass(frozen=True)
class _Unresolved:
    reason: str


def _cache_key(role: str, option: str, raw: Any, scope: Mapping[str, Any],
               keep_alive: list[Any]) -> tuple[Any, ...]:
    """What the templated value of ``raw`` depends on: itself and the names it mentions."""
    if not isinstance(raw, str):
        return (role, option, _identity(raw, keep_alive))
    if "{" not in raw:
        return (role, option, raw)
    names = sorted(_names(raw, scope))
    return (role, option, raw,
            tuple((n, _identity(scope.get(n, _MISSING), keep_alive)) for n in names))


def _names(raw: str, scope: Mapping[str, Any], depth: int = 4) -> set[str]:
    """The names a template mentions, and those their own template values mention."""
    names = set(_NAME.findall(raw))
    if depth:
        for name in list(names):
            value = scope.get(name)
            if isinstance(value, str) and "{" in value and value != raw:
                names |= _names(value, scope, depth - 1)
    return names


def _identity(value: Any, keep_alive: list[Any]) -> Any:
    """The value itself when it is hashable and small, else its id (kept alive)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return (type(value).__name__, value)
    if value is _MISSING:
        return "<missing>"
    keep_alive.append(value)
    return ("id", id(value))


def _fingerprint(values: Mapping[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, default=repr)


def _option_named(message: str, options: Iterable[str]) -> str | None:
    """The option an error message of ArgumentSpecValidator (or ours) is about."""
    for option in sorted(options, key=len, reverse=True):
        if re.search(rf"(?<![A-Za-z0-9_]){re.escape(option)}(?![A-Za-z0-9_])", message):
            return option
    return None


def _source(option: str, spec: RoleSpec, scope: ChainMap[str, Any]) -> str:
    """The variable an admin set to give ``option`` its value."""
    for layer in scope.maps[:3]:  # extra vars, role parameters, inventory
        if option in layer:
            return option
    # Through the defaults' templates, nearest first: preflight_model_cache takes
    # fleetbench_model_cache, which takes the fleetbench_work_dir the admin set.
    seen = {option}
    pending = [spec.defaults.get(option)]
    while pending:
        raw = pending.pop(0)
        if not isinstance(raw, str):
            continue
        for name in _NAME.findall(raw):
            if name in seen:
                continue
            seen.add(name)
            if any(name in layer for layer in scope.maps[:3]):
                return str(name)
            pending.append(scope.get(name))
    return option


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else "could not be templated"
