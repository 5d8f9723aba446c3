"""Architecture of one model: a frozen dataclass shared by the model, the accounting and the planner."""
from __future__ import annotations

from dataclasses import asdict, dataclass

GATES = ("renorm", "softmax")


class ConfigError(ValueError):
    """An architecture that cannot be built (message names the offending field)."""


@dataclass(frozen=True)
class ModelConfig:
    """Decoder-only transformer with an optional MoE feed-forward block in every layer.

    ``d_ff`` is the hidden size of the dense SwiGLU FFN the MoE replaces (4 * d_model by default);
    an expert has hidden size ``d_expert = d_ff / granularity``. ``n_experts`` counts routed experts
    (after fine-grained splitting), ``top_k`` the routed experts a token activates and ``n_shared``
    the always-on shared experts (same width as a routed expert). Dense: n_experts = top_k = 1,
    n_shared = 0, granularity = 1 (a plain SwiGLU FFN, no router). ``gate``: ``renorm`` (default; the
    router's softmax renormalised over the chosen top-k, so routed weights sum to 1 like a shared expert's;
    with top_k = 1 the weight is 1 and the router learns from the balance and z losses only) or
    ``softmax`` (the raw softmax probabilities of the chosen experts, Switch / DeepSeekMoE).
    """

    vocab_size: int
    seq_len: int
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    n_experts: int = 1
    top_k: int = 1
    n_shared: int = 0
    granularity: int = 1
    gate: str = "renorm"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "seq_len", "d_model", "n_layers", "n_heads", "d_ff", "n_experts",
                     "top_k", "granularity"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.gate not in GATES:
            raise ConfigError(f"gate must be one of {', '.join(GATES)}, got {self.gate!r}")
        if self.n_shared < 0:
            raise ConfigError(f"n_shared must be >= 0, got {self.n_shared}")
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ConfigError(f"d_model {self.d_model} must split into {self.n_heads} heads of even size")
        if self.d_ff % self.granularity:
            raise ConfigError(f"d_ff {self.d_ff} is not divisible by granularity {self.granularity}")
        if self.top_k > self.n_experts:
            raise ConfigError(f"top_k {self.top_k} exceeds n_experts {self.n_experts}")
        if self.is_dense and (self.n_shared or self.granularity != 1):
            raise ConfigError("a dense model (n_experts = 1) takes no shared experts and granularity 1")

    @property
    def is_dense(self) -> bool:
        return self.n_experts == 1

    @property
    def d_expert(self) -> int:
        """Hidden size of one (routed or shared) expert."""
        return self.d_ff // self.granularity

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def shared_ratio(self) -> float:
        """S: shared experts' share of the activated expert parameters."""
        return self.n_shared / (self.n_shared + self.top_k)

    def to_dict(self) -> dict:
        return asdict(self)


def moe_config(*, vocab_size: int, seq_len: int, d_model: int, n_layers: int, expansion: int,
               granularity: int = 1, shared_ratio: float = 0.0, n_heads: int | None = None,
               ffn_mult: int = 4, gate: str = "renorm") -> ModelConfig:
    """Build a config from the papers' knobs, keeping activated expert parameters at one dense FFN.

    ``expansion`` (Krajewski's E) is routed-expert parameters over dense-FFN parameters: the layer gets
    ``expansion * granularity`` routed experts of hidden size ``ffn_mult * d_model / granularity``.
    A token activates ``granularity`` experts in all, of which ``shared_ratio * granularity`` are shared
    (must be an integer) and the rest routed. ``expansion == 1`` gives the dense model.
    """
    d_ff = ffn_mult * d_model
    if expansion == 1:
        if granularity != 1 or shared_ratio:
            raise ConfigError("a dense model (expansion 1) takes granularity 1 and shared_ratio 0")
        return ModelConfig(vocab_size, seq_len, d_model, n_layers, n_heads or default_heads(d_model), d_ff, gate=gate)
    n_shared_f = shared_ratio * granularity
    n_shared = round(n_shared_f)
    if abs(n_shared - n_shared_f) > 1e-9 or n_shared >= granularity:
        raise ConfigError(f"shared_ratio {shared_ratio} x granularity {granularity} must be an integer "
                          f"below the granularity")
    return ModelConfig(vocab_size, seq_len, d_model, n_layers, n_heads or default_heads(d_model), d_ff,
                       n_experts=expansion * granularity, top_k=granularity - n_shared, n_shared=n_shared,
                       granularity=granularity, gate=gate)


def default_heads(d_model: int) -> int:
    """Heads of size 32 when d_model >= 64 is a multiple of 32, else of size 16 (tiny models keep a few)."""
    return max(1, d_model // (32 if d_model >= 64 and d_model % 32 == 0 else 16))
