"""Where a scheduler's compiled time goes: ``perf`` samples attributed to numba functions.

``perf`` sees numba's compiled code as anonymous memory (``[JIT]``), so a plain
profile says nothing about which kernel is hot. This script runs one of
``bench_cases``'s instances (or a smaller ``iot-*`` one) under
``perf record``, with an empty private kernel cache so that every kernel is
compiled in the process (a kernel loaded from numba's cache has no symbol
table to read), then asks numba for the address of every compiled function
and attributes each sample to the function whose code it falls in. A kernel
inlined into another (``inline="always"``, or by LLVM) counts as its caller.
The numba runtime's reference counting (``NRT_incref``/``NRT_decref``, compiled
in the process too) shows as its own rows.

Compilation is in the profile too (about a minute of it, in ``libllvmlite``,
before the measured run); only the compiled code's share is printed, as a share
of the samples that fell in compiled code, warm-up run included.

    python benchmarks/profile_kernels.py --case bursty --policy hybrid
    python benchmarks/profile_kernels.py --case trace30 --policy aco --policy-arg ls_gap=0.02
    python benchmarks/profile_kernels.py --case iot-default --tasks 4000 --policy sufferage

Needs Linux ``perf`` (``perf record`` allowed for this user).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = ("bursty", "trace30", "nodes1000")


def demangle(symbol: str) -> str:
    """``module.function`` of a numba symbol (``_ZN11hybridsched3sim4core8run_fromB3v39...``)."""
    name = symbol[symbol.find("_ZN") + 3 :] if "_ZN" in symbol else symbol
    parts: list[str] = []
    i = 0
    while i < len(name) and name[i].isdigit():
        j = i
        while j < len(name) and name[j].isdigit():
            j += 1
        n = int(name[i:j])
        parts.append(name[j : j + n])
        i = j + n
    text = ".".join(parts) if parts else symbol[:60]
    return re.sub(r"_3clocals_3e", "<locals>", text)


def compiled_functions() -> list[tuple[int, str]]:
    """``(address, symbol)`` of every function numba compiled in this process, ascending."""
    from numba.core.registry import CPUDispatcher

    libraries = {}
    for obj in gc.get_objects():
        if isinstance(obj, CPUDispatcher):
            for cres in obj.overloads.values():
                libraries[id(cres.library)] = cres.library
    found: dict[int, str] = {}
    for lib in libraries.values():
        try:
            functions = list(lib.get_defined_functions())
        except Exception:  # a library loaded from a cache: no module to read
            continue
        for fn in functions:
            try:
                address = lib.get_pointer_to_function(fn.name)
            except Exception:
                address = 0
            if address:
                found[address] = fn.name
    return sorted(found.items())


def run_case(a: argparse.Namespace) -> None:
    """The measured run (inside ``perf record``); writes the compiled functions' addresses."""
    sys.path.insert(0, str(HERE))
    from bench_cases import instance
    from bench_scale import Timed
    from bench_scale import run_case as warm_up
    from hybridsched.policies import make_policy
    from hybridsched.sim import Engine
    from hybridsched.workload.scenarios import generate_instance

    args = dict(kv.split("=", 1) for kv in a.policy_arg)
    warm_up(a.policy, 20, "short", 200)  # compile first: the measured run then only decides
    with tempfile.TemporaryDirectory() as tmp:
        if a.case in CASES:
            cluster, workload = instance(a.case, Path(tmp), a.trace)
        else:
            inst = generate_instance(a.case, a.tasks, a.load, 0)
            cluster, workload = inst.cluster, inst.workload
        timed = Timed(make_policy(a.policy, args))
        Engine(cluster, workload, decision_interval=0.5, queue="priority").run(timed, 0)
    print(f"{sum(timed.sizes)} tasks, {sum(timed.seconds):.2f} s in assign", flush=True)
    with open(a.addresses, "w") as f:
        for address, symbol in compiled_functions():
            f.write(f"{address:x} {symbol}\n")


def attribute(perf_data: Path, addresses: Path) -> tuple[collections.Counter, int]:
    """Samples per compiled function (by name) and the number of samples in compiled code."""
    rows = [line.split(" ", 1) for line in addresses.read_text().splitlines()]
    starts = [int(x, 16) for x, _ in rows]
    names = [demangle(s.strip()) for _, s in rows]
    out = subprocess.run(
        ["perf", "script", "-i", str(perf_data), "-F", "ip,dso,sym"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts: collections.Counter = collections.Counter()
    total = 0
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        ip, rest = fields[0], " ".join(fields[1:])
        if "perf-" not in rest and "[JIT]" not in rest:
            continue
        total += 1
        i = bisect.bisect_right(starts, int(ip, 16)) - 1
        counts[names[i] if i >= 0 else "(unknown compiled code)"] += 1
    return counts, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="bursty", help=f"{', '.join(CASES)} or an iot-* preset")
    ap.add_argument("--policy", default="hybrid")
    ap.add_argument("--policy-arg", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--tasks", type=int, default=8000, help="tasks of an iot-* preset")
    ap.add_argument("--load", type=float, default=0.9, help="load of an iot-* preset")
    ap.add_argument("--trace", type=Path, default=None, help="the GenAI request trace (trace30)")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--frequency", type=int, default=999, help="samples per second")
    ap.add_argument("--addresses", default="", help=argparse.SUPPRESS)  # the inner run
    a = ap.parse_args()
    if bad := [kv for kv in a.policy_arg if "=" not in kv]:
        ap.error(f"--policy-arg {bad[0]!r}: must be KEY=VALUE")
    if a.trace is None:
        sys.path.insert(0, str(HERE))
        from bench_cases import TRACE

        a.trace = TRACE
    from hybridsched.workload.scenarios import SCENARIOS

    if a.case not in CASES and a.case not in SCENARIOS:
        known = ", ".join([*CASES, *SCENARIOS])
        ap.error(f"--case {a.case!r}: must be one of {known}")
    if a.case == "trace30" and not a.trace.exists():
        ap.error(f"--case trace30: the trace {a.trace} is not there (give --trace)")
    if a.addresses:
        run_case(a)
        return
    if shutil.which("perf") is None:
        ap.error("needs Linux perf on the PATH (perf record / perf script)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {
            **os.environ,
            "HYBRIDSCHED_JIT_CACHE": str(work / "cache"),  # empty: compile here, symbols known
            "HYBRIDSCHED_JIT_SHIPPED": "0",
        }
        inner = [sys.executable, __file__, *sys.argv[1:], "--addresses", str(work / "addr")]
        inner += ["--trace", str(a.trace)]
        cmd = ["perf", "record", "-q", "-F", str(a.frequency), "-o", str(work / "perf.data")]
        done = subprocess.run([*cmd, "--", *inner], env=env)
        if done.returncode != 0 or not (work / "addr").exists():
            sys.exit(f"the profiled run failed (exit {done.returncode})")
        counts, total = attribute(work / "perf.data", work / "addr")
    print(f"{total} samples in compiled code; share of them:")
    for name, n in counts.most_common(a.top):
        print(f"  {n / max(total, 1):6.1%}  {name}")


if __name__ == "__main__":
    main()
