"""Alibaba GenAI serving trace 2026 (``lora_request_trace.csv``, cluster-trace-v2026-GenAI).

One row per request to a Stable Diffusion serving system: ``gmt_create``
(request time, 1 s resolution), ``predict_type`` (TXT_2_IMG, IMG_2_IMG,
INPAINTING), ``predict_status`` (SUCCEED, FAILED, PENDING, PROCESSING),
``exec_time_seconds``, ``groupId``, prompt lengths and generation settings.

Mapping (docs/TRACES.md): arrival from ``gmt_create``; work =
``exec_time_seconds`` x reference speed; data = prompt text plus the input
images of IMG_2_IMG (one) and INPAINTING (image and mask); priority from the
request type; region from a hash of ``groupId``. Failed requests and those
still pending or processing are skipped.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from hybridsched.workload.traces import common

TYPES = ("TXT_2_IMG", "IMG_2_IMG", "INPAINTING")
"""Request types, in priority order (index = default priority)."""
INPUT_IMAGES = np.array([0.0, 1.0, 2.0])
"""Input images sent with each request type: none, the image, the image and its mask."""
STATUSES = ("SUCCEED", "FAILED", "PENDING", "PROCESSING")
"""Request statuses; only SUCCEED requests become tasks."""


class AlibabaGenAI(common.CsvTraceFormat):
    """Importer of the Alibaba GenAI 2026 request trace."""

    name = "alibaba-genai-2026"
    summary = "Alibaba GenAI (Stable Diffusion) serving requests, lora_request_trace.csv"
    header = ("gmt_create", "predict_type", "predict_status", "exec_time_seconds", "groupId")
    columns: ClassVar[dict[str, common.Kind]] = {
        "gmt_create": "time",
        "predict_type": "str",
        "predict_status": "str",
        "exec_time_seconds": "float",
        "groupId": "str",
        "prompt_length": "float",
        "negative_prompt_length": "float",
    }
    optional = frozenset({"prompt_length", "negative_prompt_length"})
    params: ClassVar[dict[str, common.Param]] = {
        "image_mb": common.Param(1.0, "size of one input image (IMG_2_IMG: 1, INPAINTING: 2), MB"),
        "prompt_bytes": common.Param(
            1.0, "bytes per unit of prompt_length and negative_prompt_length"
        ),
        "memory_mb": common.Param(0.0, "memory every task needs, MB"),
        "priority": common.Param(
            None, "one priority for every task (default: by request type)", int
        ),
    }

    def process(
        self, chunk: common.Chunk, rows: common.RowFilter, ctx: common.Context
    ) -> common.Records:
        p = ctx.params
        status = common.categories(chunk, rows, "predict_status", STATUSES)
        rows.skip(status == 1, "failed")
        rows.skip(status >= 2, "incomplete")
        t = common.require_time(
            chunk, rows, "gmt_create", "must be a date-time YYYY-MM-DD HH:MM:SS"
        )
        kind = common.categories(chunk, rows, "predict_type", TYPES)
        exec_s = common.require_number(chunk, rows, "exec_time_seconds")
        rows.skip(exec_s == 0, "zero_duration")
        prompt = common.require_number(chunk, rows, "prompt_length", missing_ok=True)
        negative = common.require_number(chunk, rows, "negative_prompt_length", missing_ok=True)
        keep = np.flatnonzero(rows.alive)
        k = kind[keep]
        data_mb = (prompt[keep] + negative[keep]) * (p["prompt_bytes"] / 1e6) + INPUT_IMAGES[k] * p[
            "image_mb"
        ]
        priority = common.priorities(p, k)
        return common.Records(
            t_ns=t[keep],
            work_gi=exec_s[keep] * ctx.options.reference_speed,
            data_mb=data_mb,
            memory_mb=np.full(keep.size, p["memory_mb"]),
            priority=priority,
            key=common.hash_strings(chunk.array("groupId").take(keep)),
            rows=keep,
        )
