"""Where numba caches the package's compiled kernels, and the cache shipped with it.

Compiling the colony's kernels takes about a minute of CPU, which a fresh
install would pay on its first run. So the package ships them: ``_jit/`` holds
an archive of numba's cache files built from exactly these sources (for the
build machine's CPU and for a portable target, both named in its manifest)
and a manifest of the sources' hashes.

On the first import of numba in a process, :func:`install` puts a cache locator
in front of numba's own for the functions of this package. It caches them in a
per-user folder (``$HYBRIDSCHED_JIT_CACHE``, else ``$XDG_CACHE_HOME`` or
``~/.cache``, then ``hybridsched/numba/<checkout>/<key>``, or
``<key>-<archive id>`` where the shipped kernels serve the key: another
archive fills a folder of its own), where the key
hashes the numba and Python versions and every module whose code a kernel may
hold (each module with a cached kernel and every package module such a module
imports). A change to any of them means a new, empty folder: a kernel never
runs code compiled from other sources, which numba alone does not ensure (it
checks the file of the function it loads, not the files of what that calls).
The folder is filled once from the shipped archive when the archive was built
for the same key; stale shipped kernels are never used. Numba's own checks
still apply to each entry (its source stamp, signature and the CPU it was
built for). Folders of other keys unused for a week are deleted.

The archive holds every kernel twice: compiled for the CPU it was built on
(the manifest's ``cpu`` and a hash of its ``features``) and for numba's
portable ``generic`` target of the same architecture and system (the
manifest's ``portable`` and ``triple``: x86-64 Linux). On another CPU of that
triple (another name, or the same name with other features), :func:`install`
sets ``NUMBA_CPU_NAME=generic`` in the environment and reloads numba's
configuration, so the portable kernels load instead of being compiled again
(docs/PERFORMANCE.md measures both targets at the same speed on the colony).
It does so only when the shipped kernels fit the sources and before any
kernel is declared in the process (numba fixes its target then), and not
when ``NUMBA_CPU_NAME`` or ``NUMBA_CPU_FEATURES`` is set (in the environment
or numba's config file), with ``HYBRIDSCHED_JIT_SHIPPED=0``, or when numba's
own locators are in charge. The variable is inherited by child processes,
which then compile for the same target; reloading re-reads every
``NUMBA_*`` setting, so a ``numba.config`` value set in code before the
package was imported is lost.

``HYBRIDSCHED_JIT_CACHE=off`` (or ``NUMBA_CACHE_DIR`` set) leaves numba's own
locators in charge; ``HYBRIDSCHED_JIT_SHIPPED=0`` skips the shipped archive.

``python -m hybridsched.jitcache build`` rebuilds the archive after a change to
a kernel (a test fails while it is stale); ``status`` tells what a process
would do.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent
SHIPPED = PACKAGE / "_jit"
ARCHIVE = SHIPPED / "kernels.tar.xz"
MANIFEST = SHIPPED / "manifest.json"
MARKER = "shipped.json"
"""In a cache folder: it was filled from the archive."""

CACHE_ENV = "HYBRIDSCHED_JIT_CACHE"
SHIPPED_ENV = "HYBRIDSCHED_JIT_SHIPPED"
PORTABLE_CPU = "generic"
"""numba's CPU name for code that runs on any x86-64 machine (no host features)."""

_root: Path | None = None
_installed = False


def cache_root(environ: Any = None) -> Path | None:
    """The cache folder of this checkout, or None where numba's locators apply."""
    env = os.environ if environ is None else environ
    chosen = env.get(CACHE_ENV, "")
    if chosen.lower() == "off" or (not chosen and env.get("NUMBA_CACHE_DIR")):
        return None
    if chosen:
        base = Path(chosen)
    else:
        xdg = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = Path(xdg) / "hybridsched" / "numba"
    checkout = hashlib.sha1(str(PACKAGE).encode()).hexdigest()[:12]
    return base / checkout


def kernel_modules(package: Path = PACKAGE) -> list[Path]:
    """Modules whose compiled code a cache entry may hold.

    Every module that declares a cached kernel, and every package module those
    import (transitively): a kernel freezes the globals it reads from them.
    """
    files = {p.relative_to(package).as_posix(): p for p in package.rglob("*.py")}
    files.pop(Path(__file__).name, None)  # this module only says where kernels are cached
    declares = [rel for rel, p in files.items() if "cache=True" in p.read_text(encoding="utf-8")]
    seen: set[str] = set()
    todo = list(declares)
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        todo.extend(_package_imports(rel, files))
    return [files[rel] for rel in sorted(seen)]


def _package_imports(rel: str, files: dict[str, Path]) -> list[str]:
    tree = ast.parse(files[rel].read_text(encoding="utf-8"))
    here = rel.split("/")[:-1]
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                parts = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "hybridsched":
                parts = node.module.split(".")[1:]
            else:
                continue
            names = [".".join(parts)] + [".".join([*parts, a.name]) for a in node.names]
        elif isinstance(node, ast.Import):
            names = [
                a.name.split(".", 1)[1] for a in node.names if a.name.startswith("hybridsched.")
            ]
        for name in names:
            path = name.replace(".", "/")
            for candidate in (f"{path}.py", f"{path}/__init__.py"):
                if candidate in files:
                    found.append(candidate)
    return found


def source_hashes(package: Path = PACKAGE) -> dict[str, str]:
    """SHA-256 of each kernel module, by its path in the package."""
    return {
        p.relative_to(package).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in kernel_modules(package)
    }


def _host() -> dict[str, str]:
    import llvmlite.binding as ll
    import numba
    from numba.core.codegen import get_host_cpu_features

    return {
        "numba": numba.__version__,
        "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "cpu": ll.get_host_cpu_name(),
        # what numba compiles for natively: the CPU's features as numba sets them
        "features": hashlib.sha256(get_host_cpu_features().encode()).hexdigest()[:16],
        "triple": ll.get_process_triple(),
    }


def kernel_key(sources: dict[str, str] | None = None) -> str:
    """One hash of the kernel modules and the numba and Python versions.

    It names the folder the kernels are cached in, so a kernel never runs code
    compiled from other sources (numba alone checks only the file of the
    function it loads, not the kernels of other files that it calls).
    """
    host = _host()
    items = sorted((source_hashes() if sources is None else sources).items())
    blob = json.dumps([host["numba"], host["python"], items])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _files_stamp() -> str:
    """Cheap stamp of the package's sources (paths, sizes, modification times)."""
    h = hashlib.sha1()
    for p in sorted(PACKAGE.rglob("*.py")):
        st = p.stat()
        h.update(f"{p.relative_to(PACKAGE)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def _write_json(path: Path, value: Any) -> None:
    part = path.with_name(f".{path.name}.{os.getpid()}")
    part.write_text(json.dumps(value), encoding="utf-8")
    os.replace(part, path)  # atomic: readers see the old file or the new one


def current_key(root: Path) -> str:
    """:func:`kernel_key` of the sources present, remembered in ``root``.

    Hashing the kernel modules takes about 0.15 s; ``keys.json`` keeps the
    key of the last stamp of the sources (sizes and modification times), so a
    process pays it only after a source file changed.
    """
    stamp, keys_file = _files_stamp(), root / "keys.json"
    try:
        known = json.loads(keys_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    key = known.get(stamp) if isinstance(known, dict) else None
    if not isinstance(key, str):
        key = kernel_key()
        _write_json(keys_file, {stamp: key})
    return key


def read_manifest() -> dict[str, Any] | None:
    try:
        return json.loads(MANIFEST.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def shipped_state(key: str | None = None) -> str:
    """'usable', or why the shipped kernels cannot serve the sources of ``key``."""
    manifest = read_manifest()
    if manifest is None or not ARCHIVE.exists():
        return "absent"
    host = _host()
    for part in ("numba", "python", "triple"):
        if manifest.get(part) != host[part]:
            return f"built for {part} {manifest.get(part)}, this is {host[part]}"
    if manifest.get("key") != (kernel_key() if key is None else key):
        return "stale (built from other sources)"
    return "usable"


def wants_portable(manifest: dict[str, Any] | None, host: dict[str, str], environ: Any) -> bool:
    """Whether a process on ``host`` (:func:`_host`) should compile for the portable CPU.

    Only where the archive has portable kernels for this architecture and
    system (its target triple) and none for this CPU (another name, or the
    same name with other features), and the environment names no CPU
    (``NUMBA_CPU_NAME``, ``NUMBA_CPU_FEATURES``) and does not turn the shipped
    kernels off (``HYBRIDSCHED_JIT_SHIPPED=0``).
    """
    return (
        manifest is not None
        and manifest.get("portable") == PORTABLE_CPU
        and manifest.get("triple") == host["triple"]
        and (manifest.get("cpu"), manifest.get("features")) != (host["cpu"], host["features"])
        and "NUMBA_CPU_NAME" not in environ
        and "NUMBA_CPU_FEATURES" not in environ
        and environ.get(SHIPPED_ENV) != "0"
    )


def _use_portable(usable: bool) -> str:
    """Compile for the portable CPU in this process where :func:`wants_portable` says so
    (``usable``: the shipped kernels fit the sources)."""
    import numba.core.config
    import numba.core.registry

    manifest = read_manifest()
    if not usable or not wants_portable(manifest, _host(), os.environ):
        return ""
    if numba.core.config.CPU_NAME is not None or numba.core.config.CPU_FEATURES is not None:
        return ""  # named in numba's config file
    if "_toplevel_target_context" in vars(numba.core.registry.cpu_target):
        return ""  # a kernel was declared before the package was imported: too late
    os.environ["NUMBA_CPU_NAME"] = PORTABLE_CPU
    numba.core.config.reload_config()  # NUMBA_CPU_FEATURES defaults to none for it
    return f", portable kernels (this CPU is not the archive's {manifest['cpu']})"


def seed(folder: Path, key: str) -> str:
    """Fill ``folder`` (the cache of the sources of ``key``) from the archive once."""
    if (folder / MARKER).exists():
        return "seeded earlier"
    manifest = read_manifest() or {}
    state = shipped_state(key)
    if state != "usable":
        return state
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".seed-") as tmp:
        with tarfile.open(ARCHIVE, "r:xz") as tar:
            tar.extractall(tmp, filter="data")
        for src in sorted(Path(tmp).rglob("*")):
            if src.is_file():
                dest = folder / src.relative_to(tmp)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dest)  # atomic: a process loading meanwhile sees old or new
    _write_json(folder / MARKER, {"key": key, "id": manifest.get("id")})
    return "seeded"


KEEP_DAYS = 7.0
"""Folders of other sources unused for this long are deleted."""


def _prune(root: Path, current: Path) -> None:
    (current / ".used").touch()
    for other in root.iterdir():
        if other == current:
            continue
        try:  # another process may be pruning the same folder
            idle = time.time() - (other / ".used").stat().st_mtime
        except OSError:
            continue
        if idle > KEEP_DAYS * 86400:
            shutil.rmtree(other, ignore_errors=True)


def _locator_class() -> type:
    from numba.core.caching import _CacheLocator, _SourceFileBackedLocatorMixin

    class PackageCacheLocator(_SourceFileBackedLocatorMixin, _CacheLocator):
        """Caches this package's kernels in the folder of their sources' key."""

        def __init__(self, py_func: Any, py_file: str) -> None:
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            rel = Path(py_file).resolve().parent.relative_to(PACKAGE)
            self._cache_path = str(_root / rel) if _root is not None else ""

        def get_cache_path(self) -> str:
            return self._cache_path

        @classmethod
        def from_function(cls, py_func: Any, py_file: str) -> Any:
            if _root is None:
                return None
            try:
                Path(py_file).resolve().relative_to(PACKAGE)
            except ValueError:
                return None
            return super().from_function(py_func, py_file)

    return PackageCacheLocator


def install() -> str:
    """Put the package's locator in front of numba's; seed its folder. Idempotent.

    Returns:
        What the first call did (kept as :data:`installed`).
    """
    global _installed, installed
    if _installed:
        return "installed earlier"
    _installed = True
    installed = _install()
    return installed


installed = ""
"""What :func:`install` did in this process."""


def _serves(key: str) -> bool:
    """Whether the shipped kernels are on and fit the sources of ``key``."""
    return os.environ.get(SHIPPED_ENV) != "0" and shipped_state(key) == "usable"


def folder_name(key: str, serves: bool | None = None) -> str:
    """The cache folder of the sources of ``key``: ``<key>-<archive id>`` where the
    shipped kernels serve them (``serves``: :func:`_serves`, computed when None),
    so that another archive (rebuilt for the same sources) fills a folder of its
    own and never one that a process is reading."""
    if not (_serves(key) if serves is None else serves):
        return key
    return f"{key}-{read_manifest()['id'][:8]}"  # type: ignore[index]


def _install() -> str:
    global _root
    root = cache_root()
    if root is None:
        return "numba's own locators"
    try:
        root.mkdir(parents=True, exist_ok=True)
        key = current_key(root)
        serves = _serves(key)
        folder = root / folder_name(key, serves)
        folder.mkdir(exist_ok=True)
        state = "not seeded" if os.environ.get(SHIPPED_ENV) == "0" else seed(folder, key)
        _prune(root, folder)
    except OSError as exc:
        return f"numba's own locators ({root}: {exc.strerror})"
    from numba.core.caching import CacheImpl

    _root = folder
    CacheImpl._locator_classes.insert(0, _locator_class())
    return state + _use_portable(serves)


# building the archive ------------------------------------------------------------------------

WARM_UP = """
from hybridsched.policies import available_policies, get_policy
from hybridsched.sim import SimOptions, simulate
from hybridsched.sim.conditions import Conditions
from hybridsched.workload.scenarios import generate_instance, with_drift


def runs(inst, policy, options=None):
    for interval in (0.0, 0.5):
        for queue in ("fifo", "priority"):
            simulate(inst.cluster, inst.workload, get_policy(policy), options=options,
                     decision_interval=interval, queue=queue)


inst = generate_instance("iot-default", 200, 0.9, 0)
for name in available_policies():
    if name != "optimal":
        runs(inst, name)
drift = generate_instance(with_drift("iot-drift"), 200, 0.9, 0)
for name in ("mct", "min-min", "sufferage", "aco", "hybrid", "rl"):
    conditions = Conditions.from_frame(drift.conditions, drift.cluster)
    runs(drift, name, SimOptions(conditions=conditions, estimates="observed"))
for options in (
    SimOptions(mtbf_s=200.0, mttr_s=20.0),
    SimOptions(estimate_cv=0.2),
    SimOptions(latency_jitter=0.2, shared_links=True),
):
    for name in ("mct", "aco", "hybrid"):
        runs(inst, name, options)
"""


def build(out: Path = SHIPPED) -> dict[str, Any]:
    """Compile the kernels into an empty cache and ship that cache as ``out``."""
    with tempfile.TemporaryDirectory(prefix="hybridsched-jit-") as tmp:
        root = Path(tmp) / "root"
        env = {**os.environ, CACHE_ENV: str(root), SHIPPED_ENV: "0"}
        for name in ("NUMBA_CACHE_DIR", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES"):
            env.pop(name, None)
        # this CPU's kernels, then the portable ones, into the same cache (numba keys
        # each entry by the CPU it was compiled for)
        for target in ({}, {"NUMBA_CPU_NAME": PORTABLE_CPU}):
            subprocess.run([sys.executable, "-c", WARM_UP], env={**env, **target}, check=True)
            subprocess.run(
                [sys.executable, "-m", "hybridsched.cli", "compare", "--out", f"{tmp}/cmp"],
                env={**env, **target},
                check=True,
                stdout=subprocess.DEVNULL,
            )
        (checkout,) = [p for p in root.iterdir() if p.is_dir()]
        (checkout,) = [p for p in checkout.iterdir() if p.is_dir()]  # the sources' key
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:xz", preset=9) as tar:
            for path in sorted(checkout.rglob("*")):
                if path.is_file() and path.suffix in (".nbi", ".nbc"):
                    info = tar.gettarinfo(str(path), path.relative_to(checkout).as_posix())
                    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                    with path.open("rb") as fh:
                        tar.addfile(info, fh)
    data = buf.getvalue()
    manifest = {
        "id": hashlib.sha256(data).hexdigest(),
        **_host(),
        "portable": PORTABLE_CPU,
        "files": sum(1 for _ in tarfile.open(fileobj=io.BytesIO(data), mode="r:xz")),
        "key": kernel_key(),
        "sources": source_hashes(),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / ARCHIVE.name).write_bytes(data)
    (out / MANIFEST.name).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def _compile_cpu() -> str:
    import numba.core.config

    return numba.core.config.CPU_NAME or _host()["cpu"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["build"]:
        manifest = build()
        size = ARCHIVE.stat().st_size / 1e6
        cpus = f"cpu {manifest['cpu']} and {manifest['portable']}"
        print(f"wrote {ARCHIVE} ({manifest['files']} files, {size:.1f} MB, {cpus})")
        return 0
    if args == ["status"]:
        # the package's own instance of this module (``python -m`` runs a copy as __main__)
        from hybridsched import jitcache

        jitcache.install()
        print(f"cache folder: {jitcache._root or 'numba default'}")
        print(f"shipped kernels: {shipped_state()}")
        print(f"this process: {jitcache.installed}; compiles for cpu {_compile_cpu()}")
        return 0
    print("usage: python -m hybridsched.jitcache build|status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
