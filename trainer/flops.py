"""Parameter and FLOP accounting for ``ModelConfig`` (all counts are raw numbers, not millions).

Per layer (d = d_model, h = d_expert, E routed experts, k routed top-k, s shared experts, L layers):
  attention      4 d^2            (q, k, v, output projections; d_attn = n_heads * head_dim = d)
  norms          2 d              (two RMSNorm gains; plus one final-norm gain of d per model)
  dense FFN      3 d d_ff         (SwiGLU gate, up, down)
  MoE experts    3 d h (E + s) total, 3 d h (k + s) active
  router         d E              (reported apart; excluded from n_total / n_active, as in Krajewski 2024)
n_total  = L (4 d^2 + 2 d + ffn_total)  + d      non-embedding, all experts
n_active = L (4 d^2 + 2 d + ffn_active) + d      non-embedding, what one token uses
n_embedding = 2 V d                              untied input embedding and output head
The module's own parameter count equals n_total + n_router + n_embedding.

FLOPs per token, DeepSeek LLM convention (arXiv 2401.02954, M = 72 L d^2 + 6 L l_seq d for their
dense model), forward + backward, non-embedding, attention included:
  M = 6 (L (4 d^2 + ffn_active + d E) ) + 6 L l_seq d_attn
i.e. 6 x (matmul parameters a token uses, router included, norm gains excluded) plus 6 L l_seq d_attn for
the causal score and value products (2 matmuls x 2 FLOPs x l_seq/2 average context x 3 for backward).
Real FLOPs per token add the output head, the one matmul M leaves out (the input embedding is a lookup):
  M_real = M + 6 V d            (``head_flops_per_token`` = 6 V d)
Training compute in the runs table is real: C = M_real x tokens (docs/runs-table.md); ``flops_per_token``
stays M (non-embedding), so C / (M x tokens) - 1 is the head's overhead.
``six_na`` = 6 n_active is the Kaplan/Chinchilla approximation.
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import ModelConfig


@dataclass(frozen=True)
class Accounting:
    n_total: int
    n_active: int
    n_embedding: int
    n_router: int
    flops_per_token: int
    six_na: int
    head_flops_per_token: int

    @property
    def real_flops_per_token(self) -> int:
        """M + 6 V d: every matmul a token uses, the output head included, plus attention (FLOPs/token)."""
        return self.flops_per_token + self.head_flops_per_token

    @property
    def embedding_share(self) -> float:
        """n_embedding / (n_active + n_embedding)."""
        return self.n_embedding / (self.n_active + self.n_embedding)

    @property
    def head_flop_share(self) -> float:
        """Output head's share of the real FLOPs per token."""
        return self.head_flops_per_token / self.real_flops_per_token

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def account(cfg: ModelConfig) -> Accounting:
    """All counts for one architecture (see the module docstring for the formulas)."""
    d, n_layers = cfg.d_model, cfg.n_layers
    attn = 4 * d * d
    norms = 2 * d
    if cfg.is_dense:
        ffn_total = ffn_active = 3 * d * cfg.d_ff
        router = 0
    else:
        per_expert = 3 * d * cfg.d_expert
        ffn_total = per_expert * (cfg.n_experts + cfg.n_shared)
        ffn_active = per_expert * (cfg.top_k + cfg.n_shared)
        router = d * cfg.n_experts
    n_total = n_layers * (attn + norms + ffn_total) + d
    n_active = n_layers * (attn + norms + ffn_active) + d
    matmul_active = n_layers * (attn + ffn_active + router)
    m = 6 * matmul_active + 6 * n_layers * cfg.seq_len * cfg.n_heads * cfg.head_dim
    return Accounting(n_total=n_total, n_active=n_active, n_embedding=2 * cfg.vocab_size * d,
                      n_router=n_layers * router, flops_per_token=m, six_na=6 * n_active,
                      head_flops_per_token=6 * cfg.vocab_size * d)
