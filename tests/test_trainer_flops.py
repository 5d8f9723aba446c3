"""Parameter and FLOP accounting: hand-computed values and the modules' own parameter counts.

Only the module-count test needs torch: ``trainer.config`` and ``trainer.flops`` are pure Python, so the
inference package can reuse the accounting (checked with torch made unimportable).
"""
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.config import ConfigError, ModelConfig, moe_config
from trainer.flops import account

NO_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, NoTorch())
import trainer, trainer.flops
from trainer.config import moe_config
a = trainer.flops.account(moe_config(vocab_size=100, seq_len=16, d_model=8, n_layers=2, expansion=4,
                                     granularity=2, shared_ratio=0.5, n_heads=2))
assert a.flops_per_token == 14592 and "torch" not in sys.modules
"""


def test_accounting_imports_without_torch():
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-c", NO_TORCH], cwd=root, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_dense_hand_computed():
    cfg = ModelConfig(vocab_size=100, seq_len=16, d_model=8, n_layers=2, n_heads=2, d_ff=32)
    a = account(cfg)
    # per layer: attention 4*8*8 = 256, norms 2*8 = 16, SwiGLU 3*8*32 = 768 -> 1040; x2 layers + final norm 8
    assert a.n_total == a.n_active == 2088
    assert a.n_embedding == 2 * 100 * 8
    assert a.n_router == 0
    # M = 6 * 2 * (256 + 768) + 6 * 2 layers * 16 seq * 8 d_attn
    assert a.flops_per_token == 12288 + 1536
    assert a.six_na == 6 * 2088
    # the output head: 6 * V * d = 6 * 100 * 8 = 4800 FLOPs per token on top of M
    assert a.head_flops_per_token == 4800 and a.real_flops_per_token == 12288 + 1536 + 4800
    assert a.head_flop_share == pytest.approx(4800 / 18624)
    assert a.embedding_share == pytest.approx(1600 / (2088 + 1600))


def test_moe_fine_grained_shared_hand_computed():
    cfg = moe_config(vocab_size=100, seq_len=16, d_model=8, n_layers=2, expansion=4, granularity=2, shared_ratio=0.5,
                     n_heads=2)
    assert (cfg.n_experts, cfg.top_k, cfg.n_shared, cfg.d_expert) == (8, 1, 1, 16)
    assert cfg.shared_ratio == 0.5
    a = account(cfg)
    # one expert: 3*8*16 = 384; total 9 experts (8 routed + 1 shared), active 2 (1 routed + 1 shared)
    assert a.n_total == 2 * (256 + 16 + 9 * 384) + 8 == 7464
    assert a.n_active == 2 * (256 + 16 + 2 * 384) + 8 == 2088
    assert a.n_router == 2 * 8 * 8
    assert a.flops_per_token == 6 * 2 * (256 + 768 + 64) + 6 * 2 * 16 * 8 == 14592


@pytest.mark.parametrize("g", [1, 2, 4])
def test_granularity_keeps_active_params(g):
    dense = account(moe_config(vocab_size=50, seq_len=8, d_model=16, n_layers=1, expansion=1))
    cfg = moe_config(vocab_size=50, seq_len=8, d_model=16, n_layers=1, expansion=8, granularity=g)
    a = account(cfg)
    assert (cfg.n_experts, cfg.top_k, cfg.d_expert) == (8 * g, g, 64 // g)
    assert a.n_active == dense.n_active
    # routed experts hold 8x the dense FFN: N = attention + norms + 8 * 3 d d_ff + final norm
    assert a.n_total == 4 * 256 + 32 + 8 * 3 * 16 * 64 + 16


@pytest.mark.parametrize("kw", [dict(expansion=1), dict(expansion=4), dict(expansion=4, granularity=4),
                                dict(expansion=2, granularity=4, shared_ratio=0.25)])
def test_counts_match_module_parameters(kw):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from trainer.model import Transformer
    cfg = moe_config(vocab_size=64, seq_len=16, d_model=16, n_layers=3, **kw)
    a = account(cfg)
    model = Transformer(cfg)
    total = sum(p.numel() for p in model.parameters())
    emb = model.embed.weight.numel() + model.head.weight.numel()
    router = sum(p.numel() for n, p in model.named_parameters() if "router" in n)
    assert emb == a.n_embedding and router == a.n_router
    assert total == a.n_total + a.n_router + a.n_embedding
    # active: everything but the routed experts a token does not use
    expert_params = sum(p.numel() for n, p in model.named_parameters() if n.endswith(("ffn.w_in", "ffn.w_out")))
    if expert_params:
        unused = expert_params * (cfg.n_experts - cfg.top_k) // cfg.n_experts
        assert total - emb - router - unused == a.n_active


def test_bad_configs():
    with pytest.raises(ConfigError, match="shared_ratio"):
        moe_config(vocab_size=10, seq_len=8, d_model=16, n_layers=1, expansion=4, granularity=2, shared_ratio=0.3)
    with pytest.raises(ConfigError, match="granularity"):
        ModelConfig(10, 8, 16, 1, 1, 64, n_experts=4, top_k=1, granularity=3)
    with pytest.raises(ConfigError, match="top_k"):
        ModelConfig(10, 8, 16, 1, 1, 64, n_experts=2, top_k=3)


@pytest.mark.parametrize("kw", [dict(expansion=1), dict(expansion=4, granularity=2),
                                dict(expansion=2, granularity=4, shared_ratio=0.25)])
def test_real_flops_match_counted_matmuls(kw):
    """Every matmul of a forward + backward (output head and router included), counted by torch's
    FlopCounterMode, equals tokens x (real FLOPs per token - the attention score/value term 6 L l d)."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from trainer.model import Transformer
    torch.set_num_threads(1)
    cfg = moe_config(vocab_size=64, seq_len=16, d_model=32, n_layers=2, **kw)
    a = account(cfg)
    model = Transformer(cfg, backend="sdpa")
    ids = torch.randint(0, 64, (3, 16))
    with FlopCounterMode(display=False) as counter:
        model(ids).sum().backward()
    matmuls = sum(v for op, v in counter.get_flop_counts()["Global"].items() if "mm" in str(op))
    assert matmuls == 3 * 16 * (a.real_flops_per_token - 6 * cfg.n_layers * cfg.seq_len * cfg.d_model)
    assert a.real_flops_per_token - a.flops_per_token == 6 * 64 * 32
