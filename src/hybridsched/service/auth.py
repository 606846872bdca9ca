"""Bearer tokens and roles: ``admin``, ``submit``, ``node:NAME[,NAME...]``, ``node:*``."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

import yaml

from hybridsched.errors import ConfigError
from hybridsched.io import duplicate_key_error, load_yaml

ROLES = ("admin", "submit", "node:NAME[,NAME...]", "node:*")


@dataclass(frozen=True)
class Principal:
    """Who a request acts as."""

    role: str
    """``admin``, ``submit`` or ``node``."""
    nodes: frozenset[str] | None = None
    """The nodes a node token acts for; None: every node (``node:*`` and admin)."""

    def may_act_for(self, node: str) -> bool:
        """True when this principal may report for ``node``."""
        if self.role == "admin":
            return True
        return self.role == "node" and (self.nodes is None or node in self.nodes)


def parse_role(role: str, node_names: tuple[str, ...], where: str) -> Principal:
    """A role string as a principal.

    Raises:
        ConfigError: an unknown role or node name.
    """
    role = str(role).strip()
    if role in ("admin", "submit"):
        return Principal(role)
    if role.startswith("node:"):
        rest = role[5:].strip()
        if rest == "*":
            return Principal("node", None)
        names = [n.strip() for n in rest.split(",") if n.strip()]
        unknown = [n for n in names if n not in node_names]
        if not names or unknown:
            raise ConfigError(
                f"{where}: role {role!r} names unknown node(s) {', '.join(map(repr, unknown))}; "
                "nodes are those of the cluster file"
            )
        return Principal("node", frozenset(names))
    raise ConfigError(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")


def read_tokens(path: str | Path) -> dict[str, str]:
    """Read a YAML mapping token -> role.

    Raises:
        ConfigError: not a mapping of non-empty strings (the tokens are never shown).
    """
    p = Path(path)
    try:
        data = load_yaml(p.read_text())
    except OSError as exc:
        raise ConfigError(f"--tokens {p}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--tokens {p}: not UTF-8 text") from None
    except duplicate_key_error() as exc:  # its message would show the token
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise ConfigError(f"--tokens {p}: line {line}: a token is given twice") from None
    except yaml.YAMLError:
        raise ConfigError(f"--tokens {p}: not valid YAML") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"--tokens {p}: must be a non-empty mapping of token to role")
    out: dict[str, str] = {}
    for i, (k, v) in enumerate(data.items(), start=1):
        if not isinstance(k, str) or len(k) < 8:
            raise ConfigError(
                f"--tokens {p}: entry {i}: a token must be a string of >= 8 characters"
            )
        if not isinstance(v, str):
            raise ConfigError(f"--tokens {p}: entry {i}: the role must be a string")
        out[k] = v
    return out


class TokenTable:
    """Token lookup in constant time per known token (no timing hint about a near miss)."""

    def __init__(self, tokens: dict[str, str], node_names: tuple[str, ...]) -> None:
        # digests, not the tokens: compare_digest returns at once on a length mismatch,
        # which would tell a prober the length of the tokens; digests are all 32 bytes
        self._items = [
            (_digest(tok), parse_role(role, node_names, f"token entry {i}"))
            for i, (tok, role) in enumerate(tokens.items(), start=1)
        ]

    def lookup(self, token: str) -> Principal | None:
        """The principal of ``token``, None when unknown."""
        t = _digest(token)
        found = None
        for tok, principal in self._items:
            if hmac.compare_digest(tok, t):
                found = principal
        return found


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
