"""Cold start of ``hybridsched simulate``: a fresh install, with and without the shipped kernels.

Each run is a whole ``hybridsched simulate`` process (iot-default, 200 tasks,
load 0.9, 0.5 s batches, priority queues) timed from outside, in three states:

* ``fresh``: an empty cache folder, filled from the shipped kernels (what a new
  install does on its first run);
* ``fresh, no shipped``: an empty cache folder and ``HYBRIDSCHED_JIT_SHIPPED=0``,
  so numba compiles every kernel (what a new install did before);
* ``warm``: the folder of an earlier run.

``--as-cpu NAME`` runs each process as if on a CPU of that name (llvmlite's
host CPU name is replaced before the package loads), where the shipped
kernels' own CPU has no entries: the package then loads its portable ones
(``hybridsched.jitcache``), as on a machine unlike the one that built them.

    python benchmarks/bench_cold.py --policies aco,hybrid --repeats 3
    python benchmarks/bench_cold.py --policies aco,hybrid --repeats 3 --as-cpu other
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hybridsched import jitcache

CLI = [sys.executable, "-m", "hybridsched.cli"]
STATES = ("fresh", "fresh, no shipped", "warm")
AS_CPU = (
    "import runpy, sys, llvmlite.binding as ll; cpu = sys.argv.pop(1); "
    "ll.get_host_cpu_name = lambda: cpu; "
    "runpy.run_module('hybridsched.cli', run_name='__main__', alter_sys=True)"
)


def _run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(
    policy: str, state: str, work: Path, repeats: int, as_cpu: str | None = None
) -> dict[str, float]:
    walls, cpus, compiles = [], [], []
    warm_root = work / f"warm-{policy}"
    for k in range(repeats + (state == "warm")):
        root = warm_root if state == "warm" else work / f"{state}-{policy}-{k}".replace(" ", "")
        env = {**os.environ, jitcache.CACHE_ENV: str(root)}
        for name in ("NUMBA_CACHE_DIR", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES"):
            env.pop(name, None)
        env.pop(jitcache.SHIPPED_ENV, None)
        if state == "fresh, no shipped":
            env[jitcache.SHIPPED_ENV] = "0"
        out = work / "out"
        cli = CLI if as_cpu is None else [sys.executable, "-c", AS_CPU, as_cpu]
        args = [*cli, "simulate", "--cluster", str(work / "c.yaml"), "--workload"]
        args += [str(work / "w.parquet"), "--policy", policy, "--decision-interval", "0.5"]
        args += ["--queue", "priority", "--out", str(out)]
        wall, cpu = _run(args, env)
        if state == "warm" and k == 0:
            continue  # fills the folder
        walls.append(wall)
        cpus.append(cpu)
        summary = json.loads((out / "summary.json").read_text())
        compiles.append(float(summary.get("compile_seconds", float("nan"))))
    return {
        "wall_s": statistics.median(walls),
        "cpu_s": statistics.median(cpus),
        "compile_s": statistics.median(compiles),
        "runs": len(walls),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policies", default="aco,hybrid")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="JSON file of the results")
    ap.add_argument("--as-cpu", default=None, help="run as if on a CPU of this name")
    ap.add_argument("--states", default=",".join(STATES), help="which of: " + ", ".join(STATES))
    a = ap.parse_args()
    print(f"shipped kernels: {jitcache.shipped_state()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        work = Path(tmp)
        gen = [*CLI, "generate", "--scenario", "iot-default", "--tasks", "200", "--load", "0.9"]
        gen += ["--seed", "0", "--out", str(work / "w.parquet")]
        gen += ["--cluster-out", str(work / "c.yaml")]
        subprocess.run(gen, check=True, stdout=subprocess.DEVNULL)
        for policy in a.policies.split(","):
            for state in a.states.split(","):
                if state not in STATES:
                    raise SystemExit(f"--states: {state!r} is not one of {', '.join(STATES)}")
                r = measure(policy, state, work, a.repeats, a.as_cpu)
                rows.append({"policy": policy, "state": state, "as_cpu": a.as_cpu, **r})
                print(
                    f"{policy:8s} {state:18s} wall {r['wall_s']:7.2f} s  cpu {r['cpu_s']:7.2f} s"
                    f"  compile_seconds {r['compile_s']:7.2f}  (median of {r['runs']})",
                    flush=True,
                )
    if a.out:
        a.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
