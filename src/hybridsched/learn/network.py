"""The pair-scoring network: one shared MLP scores every (task, node) pair.

``score(pair_features) -> logits (B, N)``: the same weights score each node's
row of :mod:`hybridsched.learn.features`, so a trained network runs on clusters
of any size; a masked softmax over nodes turns the scores into a policy. A
value head pools the pair embeddings over the feasible nodes (mean and max) for
the learned baseline of policy-gradient training (the trainer pools over the
few best-scoring candidate nodes, see :mod:`hybridsched.train.trainer`).

The score is ``head(trunk(x)) + prior(x)``: a linear term beside the MLP. With
``init="mct"`` the linear term starts as ``-20 * regret`` (and the MLP head at
zero), so the untrained greedy policy is exactly MCT (its argmin, ties to the
lowest index) while the sampled policy still explores the near-ties (a node 3%
behind the best keeps about half the best's probability); ``init="zero"``
starts from a uniform policy.

Checkpoints are one ``.pt`` file: the weights and the resolved configuration
(a JSON string), loadable with ``torch.load(weights_only=True)``. A network reads
the first ``n_features`` columns of the pair features: 18 for one made before the
observed features (they still load and score as they did), all
:data:`~hybridsched.learn.features.N_FEATURES` for a new one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hybridsched.errors import ConfigError
from hybridsched.learn.features import FEATURE_NAMES, N_BASE_FEATURES, N_FEATURES
from hybridsched.learn.forward import (  # noqa: F401 (re-exported)
    NEG,
    block_logits,
    compiled_weights,
)

CHECKPOINT_FORMAT = 1
"""Version of the checkpoint layout written by :func:`save_checkpoint`."""

INITS = ("mct", "zero")
"""Known initialisations of the linear prior term."""

MCT_PRIOR = 20.0
"""Slope of the initial linear score on the ``regret`` feature with ``init="mct"``."""


def masked_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Logits with infeasible nodes (``mask`` False) pushed to :data:`NEG`."""
    return torch.where(mask, logits, torch.full_like(logits, NEG))


class PairScorer(nn.Module):
    """Shared MLP over pair features with a masked softmax over nodes and a value head.

    Args:
        n_features: pair features per (task, node), ``F``.
        hidden: width of the trunk and of the value head.
        init: ``"mct"`` (greedy policy starts as MCT) or ``"zero"`` (uniform).
    """

    def __init__(self, n_features: int = N_FEATURES, hidden: int = 32, init: str = "mct") -> None:
        super().__init__()
        if init not in INITS:
            raise ConfigError(f"init: must be one of {', '.join(INITS)}, got {init!r}")
        if hidden < 1 or n_features < 1:
            raise ConfigError(f"hidden and n_features must be >= 1, got {hidden}, {n_features}")
        self.n_features = n_features
        self.hidden = hidden
        self.trunk = nn.Sequential(
            nn.Linear(n_features, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
        )
        self.head = nn.Linear(hidden, 1)
        self.prior = nn.Linear(n_features, 1, bias=False)
        self.value_head = nn.Sequential(
            nn.Linear(2 * hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1)
        )
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        nn.init.zeros_(self.prior.weight)
        if init == "mct" and n_features > FEATURE_NAMES.index("regret"):
            with torch.no_grad():
                self.prior.weight[0, FEATURE_NAMES.index("regret")] = -MCT_PRIOR

    def _own(self, x: torch.Tensor) -> torch.Tensor:
        """The feature columns this network reads (the first ``n_features``)."""
        return x if x.shape[-1] == self.n_features else x[..., : self.n_features]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pair embeddings, ``(B, N, H)``."""
        return self.trunk(self._own(x))

    def score(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """Unmasked logits of every pair, ``(B, N)``, from pair features ``(B, N, F)``."""
        x = self._own(x)
        if h is None:
            h = self.trunk(x)
        return self.head(h).squeeze(-1) + self.prior(x).squeeze(-1)

    def value(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The baseline ``(B,)`` from pair embeddings pooled over the feasible nodes."""
        m = mask.unsqueeze(-1).to(h.dtype)
        count = m.sum(dim=1).clamp_min(1.0)
        mean = (h * m).sum(dim=1) / count
        mx = torch.where(mask.unsqueeze(-1), h, torch.full_like(h, -2.0)).amax(dim=1)
        return self.value_head(torch.cat([mean, mx], dim=-1)).squeeze(-1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Masked logits ``(B, N)``: the policy is their softmax over nodes."""
        return masked_logits(self.score(x), mask)


def save_checkpoint(path: str | Path, model: PairScorer, config: dict[str, Any]) -> Path:
    """Write the model's weights and the resolved ``config`` to one ``.pt`` file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "format": CHECKPOINT_FORMAT,
        "config": json.dumps(config, sort_keys=True),
        "n_features": model.n_features,
        "hidden": model.hidden,
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path) -> tuple[PairScorer, dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`: ``(model in eval mode, config)``.

    A folder is accepted too: its ``best.pt`` (what training keeps) is read.

    Raises:
        ConfigError: a missing file, or one that is not a checkpoint of this format.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt"
    if not path.is_file():
        raise ConfigError(f"checkpoint {path}: no such file")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ConfigError(f"checkpoint {path}: not a readable checkpoint ({exc})") from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(
            f"checkpoint {path}: expected format {CHECKPOINT_FORMAT}, "
            f"got {blob.get('format') if isinstance(blob, dict) else type(blob).__name__}"
        )
    if blob["n_features"] not in (N_BASE_FEATURES, N_FEATURES):
        raise ConfigError(
            f"checkpoint {path}: made for {blob['n_features']} pair features, "
            f"this version reads {N_BASE_FEATURES} or {N_FEATURES}"
        )
    model = PairScorer(blob["n_features"], blob["hidden"], init="zero")
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return model, json.loads(blob["config"])
