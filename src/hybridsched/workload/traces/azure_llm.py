"""Azure LLM inference trace 2023 (``AzureLLMInferenceTrace_{code,conv}.csv``).

One row per request: ``TIMESTAMP`` (``2023-11-16 18:17:03.9799600``, 100 ns
resolution), ``ContextTokens`` (prompt) and ``GeneratedTokens`` (output).

Mapping (docs/TRACES.md): arrival from ``TIMESTAMP``; work = context tokens x
prefill cost + generated tokens x decode cost (GI per token); data = context
tokens x bytes per token; one priority for all (the trace has no class); the
trace has no group field, so the region comes from a hash of the arrival
time itself.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from hybridsched.workload.traces import common


class AzureLLM(common.CsvTraceFormat):
    """Importer of the Azure LLM inference trace 2023."""

    name = "azure-llm-2023"
    summary = "Azure LLM inference requests (TIMESTAMP,ContextTokens,GeneratedTokens)"
    header = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
    columns: ClassVar[dict[str, common.Kind]] = {
        "TIMESTAMP": "time",
        "ContextTokens": "float",
        "GeneratedTokens": "float",
    }
    params: ClassVar[dict[str, common.Param]] = {
        "gi_per_context_token": common.Param(0.0005, "prefill work per context token, GI"),
        "gi_per_generated_token": common.Param(0.02, "decode work per generated token, GI"),
        "bytes_per_token": common.Param(4.0, "input bytes per context token (data_mb)"),
        "memory_mb": common.Param(0.0, "memory every task needs, MB"),
        "priority": common.Param(0, "priority of every task", int),
    }

    def process(
        self, chunk: common.Chunk, rows: common.RowFilter, ctx: common.Context
    ) -> common.Records:
        p = ctx.params
        t = common.require_time(
            chunk, rows, "TIMESTAMP", "must be a date-time YYYY-MM-DD HH:MM:SS[.fffffff]"
        )
        ctx_tok = common.require_number(chunk, rows, "ContextTokens", integer=True)
        gen_tok = common.require_number(chunk, rows, "GeneratedTokens", integer=True)
        work = ctx_tok * p["gi_per_context_token"] + gen_tok * p["gi_per_generated_token"]
        rows.skip(~(work > 0), "zero_work")
        keep = np.flatnonzero(rows.alive)
        tk = t[keep]
        return common.Records(
            t_ns=tk,
            work_gi=work[keep],
            data_mb=ctx_tok[keep] * (p["bytes_per_token"] / 1e6),
            memory_mb=np.full(keep.size, p["memory_mb"]),
            priority=np.full(keep.size, p["priority"], np.int64),
            key=common.hash_ints(tk),
            rows=keep,
        )
