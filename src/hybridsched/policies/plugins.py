"""Schedulers from outside the package: plugin modules and the entry-point group.

A plugin is a module that registers policy classes with
:func:`hybridsched.policies.register` when imported (docs/PLUGINS.md). Plugins
come from three places, all loaded before a policy is looked up by name:

* the entry-point group ``hybridsched.policies`` of installed distributions
  (each entry point names a module, ``name = "package.module"``);
* the environment variable :data:`PLUGINS_ENV` (module names separated by
  commas), which is how worker processes of ``compare`` see the CLI's plugins;
* :func:`load_plugin`, which the CLI's ``--plugin`` calls.

Importing this module loads the first two; the registry imports it lazily, on
the first lookup, so plain runs pay nothing for it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from hybridsched.errors import ConfigError

ENTRY_POINT_GROUP = "hybridsched.policies"
"""Entry-point group of plugin modules."""

PLUGINS_ENV = "HYBRIDSCHED_PLUGINS"
"""Environment variable: plugin modules (or ``.py`` files) separated by commas."""

_LOADED: dict[str, ModuleType] = {}


def load_plugin(spec: str) -> ModuleType:
    """Import plugin ``spec``: a module path (``my_pkg.scheds``) or a ``.py`` file.

    A module is looked up on ``sys.path`` and then in the current folder. Loading
    the same plugin twice is a no-op.

    Raises:
        ConfigError: the module cannot be found, or importing it fails (the
            message names the plugin and the error).
    """
    spec = spec.strip()
    if not spec:
        raise ConfigError("--plugin: expected a module path (my_pkg.schedulers) or a .py file")
    if spec in _LOADED:
        return _LOADED[spec]
    try:
        if spec.endswith(".py"):
            module = _load_file(Path(spec))
        else:
            module = _load_module(spec)
    except ConfigError:
        raise
    except Exception as exc:  # a plugin's own error: name it, never a traceback
        raise ConfigError(
            f"--plugin {spec}: importing it failed: {type(exc).__name__}: {exc}"
        ) from None
    _LOADED[spec] = module
    return module


def _load_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not name.startswith(exc.name):
            raise  # a dependency of the plugin is missing: reported by load_plugin
    # not on sys.path: try the current folder (the console script does not add it)
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise
    raise ConfigError(
        f"--plugin {name}: no module of that name on the Python path or in {cwd}; give a "
        f"module path (my_pkg.schedulers) or a .py file"
    )


def _load_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise ConfigError(f"--plugin {path}: no such file")
    name = f"hybridsched_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"--plugin {path}: cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def entry_point_modules() -> list[str]:
    """Module names of the installed ``hybridsched.policies`` entry points."""
    from importlib.metadata import entry_points

    return [ep.value.partition(":")[0].strip() for ep in entry_points(group=ENTRY_POINT_GROUP)]


def env_plugins() -> list[str]:
    """The plugins named in :data:`PLUGINS_ENV`."""
    return [s.strip() for s in os.environ.get(PLUGINS_ENV, "").split(",") if s.strip()]


def remember(spec: str) -> None:
    """Add ``spec`` to :data:`PLUGINS_ENV`, so that worker processes load it too."""
    have = env_plugins()
    if spec not in have:
        os.environ[PLUGINS_ENV] = ",".join([*have, spec])


def load_installed() -> None:
    """Load the entry-point plugins and those of :data:`PLUGINS_ENV`."""
    for name in entry_point_modules():
        try:
            load_plugin(name)
        except ConfigError as exc:
            raise ConfigError(
                f"entry point group {ENTRY_POINT_GROUP}: {str(exc).removeprefix('--plugin ')}"
            ) from None
    for spec in env_plugins():
        try:
            load_plugin(spec)
        except ConfigError as exc:
            raise ConfigError(f"{PLUGINS_ENV}: {str(exc).removeprefix('--plugin ')}") from None


load_installed()
