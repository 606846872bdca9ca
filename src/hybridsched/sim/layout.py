"""Compiled state declared once: one table of ``(name, type, meaning)`` per structure.

The simulator's state, the failure/network state and the colony's batch problem
are each a named tuple of NumPy arrays (what Python code reads) and a numba
``StructRef`` over the same arrays (one pointer, what compiled code takes). Both,
and the compiled function that builds the second from the first, are generated
here from a single table, so that a field is added, renamed or retyped in one
place only.

The builder is generated as Python source and compiled with ``exec`` under the
declaring module's file name and globals, so that numba's on-disk cache
(``cache=True``) finds and reuses it like any function written in that module:
numba cannot set ``StructRef`` fields by a name that is only known at run time.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from numba import njit
from numba.core import types
from numba.experimental import structref

Field = tuple[str, str, str]
"""``(name, numba type, meaning)``; the type as numba writes it, without spaces
(``float64[:,::1]``)."""


def parse_fields(text: str) -> tuple[Field, ...]:
    """A table from text, one field a line: ``name  numba-type  meaning``.

    Blank lines and lines starting with ``#`` (section titles) are skipped; the
    meaning is the rest of the line.
    """
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, typ, meaning = line.split(maxsplit=2)
            out.append((name, typ, meaning))
    return tuple(out)


def numba_fields(table: tuple[Field, ...]) -> tuple[tuple[str, types.Type], ...]:
    """The ``(name, numba type)`` pairs of a table, for a ``StructRef`` type."""
    env = vars(types)
    return tuple((name, eval(typ, {}, env)) for name, typ, _ in table)


def tuple_class(typename: str, table: tuple[Field, ...], module: str) -> type:
    """A named tuple with one field per row, documented with the row's type and meaning."""
    cls = namedtuple(typename, [name for name, _, _ in table], module=module)  # type: ignore[misc]
    lines = [f"Arrays of :class:`{typename}` (one per row of its table):", ""]
    lines += [f"* ``{name}`` (``{typ}``): {meaning}" for name, typ, meaning in table]
    cls.__doc__ = "\n".join(lines)
    for name, _, meaning in table:
        getattr(cls, name).__doc__ = meaning
    return cls


def define_builder(
    fn_name: str, type_name: str, table: tuple[Field, ...], module_globals: dict[str, Any]
) -> Any:
    """Generate, in the declaring module, ``fn_name(p)``: the ``StructRef`` over tuple ``p``.

    Args:
        fn_name: name of the compiled builder (defined in ``module_globals``).
        type_name: name, in ``module_globals``, of the ``StructRef`` type instance.
        table: the fields.
        module_globals: ``globals()`` of the declaring module.

    Returns:
        The compiled (cached) builder.
    """
    body = "".join(f"    h.{name} = p.{name}\n" for name, _, _ in table)
    src = f"def {fn_name}(p):\n    h = _structref_new({type_name})\n{body}    return h\n"
    module_globals["_structref_new"] = structref.new
    exec(compile(src, module_globals["__file__"], "exec"), module_globals)
    fn = njit(cache=True)(module_globals[fn_name])
    module_globals[fn_name] = fn
    return fn


def _unliteral_fields(self: Any, fields: Any) -> tuple[tuple[str, types.Type], ...]:
    return tuple((name, types.unliteral(typ)) for name, typ in fields)


def declare(
    table: tuple[Field, ...], tuple_name: str, stem: str, module_globals: dict[str, Any]
) -> tuple[type, types.StructRef, Any]:
    """Everything of one compiled structure, from its table, defined in the declaring module.

    Defines there, so that numba's cache finds them by module and name: the
    ``StructRef`` type class ``_<stem>Type``, its opaque Python proxy
    ``_<stem>Proxy``, the type instance ``_<TUPLE_NAME>_STRUCT`` and the compiled
    builder ``_make_<stem lower>`` (see :func:`define_builder`).

    Returns:
        ``(named tuple class, StructRef type instance, builder)``.
    """
    module = module_globals["__name__"]
    type_cls = type(f"_{stem}Type", (types.StructRef,), {"preprocess_fields": _unliteral_fields})
    doc = f"Opaque compiled handle of a :class:`{tuple_name}`."
    proxy_cls = type(f"_{stem}Proxy", (structref.StructRefProxy,), {"__doc__": doc})
    for cls in (type_cls, proxy_cls):
        cls.__module__ = module
        module_globals[cls.__name__] = cls
    structref.register(type_cls)
    structref.define_boxing(type_cls, proxy_cls)
    instance = type_cls(numba_fields(table))
    instance_name = f"_{tuple_name.upper()}_STRUCT"
    module_globals[instance_name] = instance
    builder = define_builder(f"_make_{stem.lower()}", instance_name, table, module_globals)
    return tuple_class(tuple_name, table, module), instance, builder
