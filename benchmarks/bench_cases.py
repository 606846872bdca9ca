"""The three cases issue 17 named, decision cost through ``assign``.

* ``nodes1000``: an ``iot-default``-shaped cluster of 1,000 nodes
  (``bench_scale.cluster_of``), 20,000 ``iot-default`` tasks at load 0.9;
* ``trace30``: a 30-node cluster of the same shape, the Alibaba GenAI request
  trace (``../shared/traces/alibaba_lora_request_trace.csv``, imported with
  ``hybridsched trace import --target-load 0.85 --limit 8800``);
* ``bursty``: the ``iot-bursty`` scenario, 30,000 tasks at load 0.9.

Decision interval 0.5 s, priority queues, seed 0. Each policy runs once per
case after a small warm-up (compilation); the figures are ``bench_scale``'s:
tasks/s in ``assign`` (wall and thread CPU), p50 / p99 per batch, quality.

    python benchmarks/bench_cases.py --policies mct,sufferage,aco,hybrid --json out.json
    python benchmarks/bench_cases.py --policies aco,hybrid --policy-arg ls_limit=64
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_scale import Timed, cluster_of, figures, run_case
from hybridsched.errors import ConfigError
from hybridsched.io import read_workload, write_cluster
from hybridsched.policies import make_policy
from hybridsched.sim import Engine
from hybridsched.workload import generate_workload, get_scenario
from hybridsched.workload.scenarios import generate_instance

TRACE = Path(__file__).resolve().parents[2] / "shared" / "traces" / "alibaba_lora_request_trace.csv"


def import_trace30(work: Path, trace: Path = TRACE, load: float = 0.85) -> Path:
    """The trace30 workload at ``load``, imported into ``work``; its cluster is
    ``work / "c30.yaml"``, the 30-node cluster of :func:`bench_scale.cluster_of`."""
    cluster = work / "c30.yaml"
    if not cluster.exists():
        write_cluster(cluster_of(30), cluster)
    out = work / f"trace30-{load}.parquet"
    cmd = [sys.executable, "-m", "hybridsched.cli", "trace", "import", str(trace)]
    cmd += ["--format", "alibaba-genai-2026", "--cluster", str(cluster)]
    cmd += ["--target-load", str(load), "--limit", "8800", "--out", str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out


def instance(case: str, work: Path, trace: Path = TRACE) -> tuple[Any, Any]:
    if case == "nodes1000":
        cluster = cluster_of(1000)
        return cluster, generate_workload(
            cluster, get_scenario("iot-default").workload, 20000, 0.9, 0
        )
    if case == "bursty":
        inst = generate_instance("iot-bursty", 30000, 0.9, 0)
        return inst.cluster, inst.workload
    if case == "trace30":
        return cluster_of(30), read_workload(import_trace30(work, trace))
    raise SystemExit(f"unknown case {case!r}: nodes1000, trace30 or bursty")


def measure(
    policy: str, cluster: Any, workload: Any, args: dict[str, str] | None = None
) -> dict[str, Any]:
    timed = Timed(make_policy(policy, args))
    res = Engine(cluster, workload, decision_interval=0.5, queue="priority").run(timed, 0)
    return {"policy": policy, "tasks": int(sum(timed.sizes)), **figures(timed, res.summary)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policies", default="mct,sufferage,aco,hybrid")
    ap.add_argument("--cases", default="nodes1000,trace30,bursty")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--trace", type=Path, default=TRACE, help="the GenAI request trace (csv)")
    ap.add_argument(
        "--policy-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an argument given to every policy (repeatable), e.g. ls_limit=64",
    )
    a = ap.parse_args()
    policies = a.policies.split(",")
    if bad := [kv for kv in a.policy_arg if "=" not in kv]:
        ap.error(f"--policy-arg {bad[0]!r}: must be KEY=VALUE")
    args = dict(kv.split("=", 1) for kv in a.policy_arg)
    for p in policies:
        try:
            make_policy(p, args)  # an argument a policy does not take fails here
        except ConfigError as e:
            ap.error(f"--policy-arg with --policies {p}: {e}")
    for p in policies:  # compile outside the measurement
        run_case(p, 20, "short", 200)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in a.cases.split(","):
            if case == "trace30" and not a.trace.exists():
                print(f"trace30: skipped, {a.trace} not found", flush=True)
                continue
            cluster, workload = instance(case, Path(tmp), a.trace)
            for p in policies:
                m = measure(p, cluster, workload, args)
                r = {"case": case, "nodes": cluster.n_nodes, "args": args, **m}
                rows.append(r)
                print(
                    f"{case:9s} {p:9s} batch {r['mean_batch']:7.1f}"
                    f"  tasks/s {r['tasks_per_s']:>9,.0f}"
                    f"  cpu {r['cpu_tasks_per_s']:>9,.0f}  p50/p99 ms {r['p50_ms']:.1f} /"
                    f" {r['p99_ms']:.1f}  resp {r['mean_response_s']:.4f}"
                    f"  miss {r['deadline_miss_rate']:.4f}  energy {r['energy_j'] / 1e6:.4f} MJ",
                    flush=True,
                )
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
