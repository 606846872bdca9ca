"""The package's numba cache: its folder, the shipped kernels, and seeding from them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hybridsched import jitcache

REBUILD = "python -m hybridsched.jitcache build"


def test_shipped_kernels_are_built_from_these_sources():
    manifest = jitcache.read_manifest()
    assert manifest is not None, f"no shipped kernels: run `{REBUILD}`"
    now = jitcache.source_hashes()
    changed = sorted(
        k
        for k in now.keys() | manifest["sources"].keys()
        if now.get(k) != manifest["sources"].get(k)
    )
    assert not changed, f"shipped kernels are stale ({', '.join(changed)} changed): run `{REBUILD}`"
    assert manifest["key"] == jitcache.kernel_key(), f"shipped kernels are stale: run `{REBUILD}`"
    assert manifest["files"] > 100  # every policy's kernels, not a handful


def test_cache_root_follows_the_environment(tmp_path):
    checkout = jitcache.cache_root({jitcache.CACHE_ENV: str(tmp_path)})
    assert checkout is not None and checkout.parent == tmp_path
    assert len(checkout.name) == 12  # one folder per checkout of the package
    assert jitcache.cache_root({jitcache.CACHE_ENV: "off"}) is None
    assert jitcache.cache_root({"NUMBA_CACHE_DIR": str(tmp_path)}) is None  # numba's own
    xdg = jitcache.cache_root({"XDG_CACHE_HOME": str(tmp_path)})
    assert xdg == tmp_path / "hybridsched" / "numba" / checkout.name
    both = {jitcache.CACHE_ENV: str(tmp_path / "a"), "NUMBA_CACHE_DIR": str(tmp_path)}
    assert jitcache.cache_root(both).parent == tmp_path / "a"  # ours, when named


def test_kernel_modules_follow_imports_from_kernel_modules(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "consts.py").write_text("N = 3\n")
    (pkg / "helpers.py").write_text("from .consts import N\n")
    (pkg / "sub" / "kern.py").write_text(
        "from numba import njit\nfrom ..helpers import N\n\n"
        "@njit(cache=True)\ndef f():\n    return N\n"
    )
    (pkg / "cli.py").write_text("from pkg.sub import kern\n")  # imports a kernel; not one
    found = sorted(p.relative_to(pkg).as_posix() for p in jitcache.kernel_modules(pkg))
    assert found == ["consts.py", "helpers.py", "sub/kern.py"]


@pytest.mark.skipif(jitcache.shipped_state() != "usable", reason="shipped kernels not usable")
def test_seed_fills_the_folder_once(tmp_path):
    manifest = jitcache.read_manifest()
    assert jitcache.seed(tmp_path, manifest["key"]) == "seeded"
    files = [p for p in tmp_path.rglob("*") if p.suffix in (".nbi", ".nbc")]
    assert len(files) == manifest["files"]
    assert {p.parent.name for p in files} >= {"policies", "sim"}  # the package's layout
    assert json.loads((tmp_path / jitcache.MARKER).read_text())["key"] == manifest["key"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".seed-")]
    assert jitcache.seed(tmp_path, manifest["key"]) == "seeded earlier"
    # another archive of the same sources fills a folder of its own
    assert jitcache.folder_name(manifest["key"]) == f"{manifest['key']}-{manifest['id'][:8]}"


def test_stale_shipped_kernels_are_never_used(tmp_path):
    if jitcache.read_manifest() is None:
        pytest.skip("no shipped kernels")
    assert jitcache.seed(tmp_path, "0" * 16).startswith("stale")
    assert not list(tmp_path.rglob("*.nb?"))
    assert not (tmp_path / jitcache.MARKER).exists()


def test_the_key_changes_with_any_kernel_module(monkeypatch):
    real = jitcache.source_hashes()
    key = jitcache.kernel_key(real)
    assert len(key) == 16 and key == jitcache.kernel_key(dict(reversed(real.items())))
    for rel in ("sim/core.py", "model.py", "policies/cost_kernels.py"):  # a kernel, a constant
        assert jitcache.kernel_key({**real, rel: "0" * 64}) != key


def test_the_key_is_remembered_until_a_source_changes(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(jitcache, "kernel_key", lambda: calls.append(1) or f"key{len(calls)}")
    monkeypatch.setattr(jitcache, "_files_stamp", lambda: "stamp-a")
    assert jitcache.current_key(tmp_path) == "key1"
    assert jitcache.current_key(tmp_path) == "key1" and len(calls) == 1  # not hashed again
    monkeypatch.setattr(jitcache, "_files_stamp", lambda: "stamp-b")  # a file was edited
    assert jitcache.current_key(tmp_path) == "key2"


PROBE = """
import json, sys
if len(sys.argv) > 2:  # pretend to run on another CPU than this one
    import llvmlite.binding as ll
    ll.get_host_cpu_name = lambda: sys.argv[2]
import numba.core.config
import numba.core.dispatcher as nd
from hybridsched.policies import get_policy
from hybridsched.sim import simulate
from hybridsched.workload.scenarios import generate_instance
from hybridsched import jitcache

inst = generate_instance("iot-default", 100, 0.9, 3)
simulate(inst.cluster, inst.workload, get_policy(sys.argv[1]), decision_interval=0.5,
         queue="priority")
hits = misses = 0
for name, mod in list(sys.modules.items()):
    if name.startswith("hybridsched."):
        for obj in vars(mod).values():
            if isinstance(obj, nd.Dispatcher) and obj._cache.cache_path:
                hits += sum(obj.stats.cache_hits.values())
                misses += sum(obj.stats.cache_misses.values())
cpu = numba.core.config.CPU_NAME
print(json.dumps({"hits": hits, "misses": misses, "root": str(jitcache._root), "cpu": cpu}))
"""


def _probe(env: dict[str, str], *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(jitcache.shipped_state() != "usable", reason="shipped kernels not usable")
@pytest.mark.parametrize("policy", ["aco", "hybrid"])
def test_a_fresh_cache_compiles_nothing_for_the_colony(tmp_path, policy):
    """A fresh install runs the colony on the shipped kernels, without compiling."""
    env = {**os.environ, jitcache.CACHE_ENV: str(tmp_path)}
    for name in (jitcache.SHIPPED_ENV, "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES"):
        env.pop(name, None)
    manifest, host = jitcache.read_manifest(), jitcache._host()
    portable = jitcache.wants_portable(manifest, host, {})
    if not portable and (manifest["cpu"], manifest["features"]) != (host["cpu"], host["features"]):
        pytest.skip("the shipped kernels hold nothing for this CPU")
    got = _probe(env, policy)
    assert Path(got["root"]).parent.parent == tmp_path  # <checkout>/<key>-<archive>
    assert Path(got["root"]).name == f"{manifest['key']}-{manifest['id'][:8]}"
    assert got["misses"] == 0
    assert got["hits"] >= 10
    assert got["cpu"] == (jitcache.PORTABLE_CPU if portable else None)


@pytest.mark.skipif(jitcache.shipped_state() != "usable", reason="shipped kernels not usable")
def test_on_another_cpu_the_portable_kernels_load(tmp_path):
    """A CPU the archive was not built on switches to the portable kernels: no compiling."""
    if jitcache.read_manifest().get("triple") != jitcache._host()["triple"]:
        pytest.skip("the shipped kernels are for another architecture or system")
    env = {**os.environ, jitcache.CACHE_ENV: str(tmp_path)}
    for name in (jitcache.SHIPPED_ENV, "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES"):
        env.pop(name, None)
    got = _probe(env, "aco", "some-other-cpu")
    assert got["cpu"] == jitcache.PORTABLE_CPU
    assert got["misses"] == 0 and got["hits"] >= 10
    # a CPU the user names is kept: the archive has nothing for it, so numba compiles
    got = _probe({**env, "NUMBA_CPU_NAME": "x86-64-v2"}, "mct", "some-other-cpu")
    assert got["cpu"] == "x86-64-v2"
    assert got["misses"] >= 10


def test_the_portable_kernels_are_chosen_only_where_they_serve():
    x86 = "x86_64-unknown-linux-gnu"
    built = {"cpu": "znver4", "features": "f1", "triple": x86}
    manifest = {**built, "portable": "generic"}
    other = {"cpu": "znver5", "features": "f2", "triple": x86}
    assert jitcache.wants_portable(manifest, other, {})
    assert not jitcache.wants_portable(manifest, built, {})  # the archive's own CPU
    # the same name with other features (a VM that hides some) has no native entries
    assert jitcache.wants_portable(manifest, {**built, "features": "f3"}, {})
    arm = {"cpu": "neoverse-n1", "features": "f4", "triple": "aarch64-unknown-linux-gnu"}
    assert not jitcache.wants_portable(manifest, arm, {})  # x86-64 code is no use there
    assert not jitcache.wants_portable(manifest, other, {"NUMBA_CPU_NAME": "znver5"})
    assert not jitcache.wants_portable(manifest, other, {"NUMBA_CPU_FEATURES": "+avx2"})
    assert not jitcache.wants_portable(manifest, other, {jitcache.SHIPPED_ENV: "0"})
    assert not jitcache.wants_portable(built, other, {})  # an older archive: none portable
    assert not jitcache.wants_portable(None, other, {})


def test_without_the_shipped_kernels_the_probe_sees_compilation(tmp_path):
    """The probe above can fail: with seeding off, a fresh cache compiles."""
    env = {**os.environ, jitcache.CACHE_ENV: str(tmp_path), jitcache.SHIPPED_ENV: "0"}
    got = _probe(env, "mct")
    assert got["misses"] >= 10 and got["hits"] == 0
    assert not list(tmp_path.rglob(jitcache.MARKER))
