"""Policy-argument files: the ``--policy-args FILE`` of ``simulate`` and ``compare``.

A YAML mapping of argument names to values, as ``hybridsched tune`` writes it::

    policy: aco        # which policy the arguments are for
    ants: 12
    alpha: 1.4

The ``policy`` key may be left out where the command names the policy itself
(``simulate --policy aco``). Values are checked like ``--policy-arg``: the
policy must take each argument, and each value must have its type.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hybridsched.errors import ConfigError


def read_yaml_mapping(
    path: Path, where: str, *, syntax: str = "YAML", keys: str = "keys to values"
) -> dict[str, Any]:
    """Load a YAML file that must hold a mapping.

    Args:
        path: The file.
        where: What each message starts with (the file, and the option that named it).
        syntax: What the file should be written in, as the messages say it.
        keys: What the mapping maps, as the messages say it.

    Raises:
        ConfigError: the file cannot be read, is not valid YAML, or holds no mapping.
    """
    import yaml

    from hybridsched.io import load_yaml

    try:
        data = load_yaml(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid {syntax}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of {keys}, got {type(data).__name__}")
    return data


def read_policy_args(
    path: str | os.PathLike[str], policy: str | None = None
) -> tuple[str, dict[str, str]]:
    """Read a policy-argument file: (policy name, arguments as ``--policy-arg`` strings).

    Args:
        path: The YAML file.
        policy: The policy the command runs; the file's ``policy`` key, if any,
            must name the same one. None: the file must have a ``policy`` key.

    Raises:
        ConfigError: the file is unreadable or not a mapping of names to plain
            values, names another policy, or an argument is unknown to the
            policy or of the wrong type; the message names the file.
    """
    p = Path(path)
    data = read_yaml_mapping(p, f"--policy-args {p}", keys="argument names to values")
    named = data.pop("policy", None)
    if named is not None and not isinstance(named, str):
        raise ConfigError(f"--policy-args {p}: policy: expected a policy name, got {named!r}")
    if policy is not None and named is not None and named != policy:
        raise ConfigError(
            f"--policy-args {p}: the file's arguments are for policy {named!r}, not {policy!r}"
        )
    name = policy or named
    if name is None:
        raise ConfigError(
            f"--policy-args {p}: no `policy` key: add one (e.g. `policy: aco`) to say "
            "which policy the arguments are for"
        )
    args: dict[str, str] = {}
    for k, v in data.items():
        if isinstance(v, dict | list) or v is None:
            raise ConfigError(
                f"--policy-args {p}: {k}: expected a number, string or true/false, got {v!r}"
            )
        args[str(k)] = str(v).lower() if isinstance(v, bool) else str(v)
    from hybridsched.policies import make_policy

    try:
        make_policy(name, args)
    except ConfigError as exc:
        raise ConfigError(f"--policy-args {p}: {exc}") from None
    return name, args


def format_policy_args(policy: str, args: Mapping[str, Any], comment: str = "") -> str:
    """The text of a policy-argument file for ``policy`` (``comment``: lines put first)."""
    import yaml

    head = "".join(f"# {line}\n" for line in comment.splitlines())
    body = yaml.safe_dump({"policy": policy, **dict(args)}, sort_keys=False)
    return head + body
