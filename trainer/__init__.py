"""Small MoE transformer trainer that produces runs tables (SPEC §1) for bayesmoe.

Modules: ``config`` (architecture), ``model`` / ``moe`` / ``dispatch`` / ``cuda_dispatch`` (the network),
``flops`` (parameter and FLOP accounting), ``data`` (corpus, tokenizer, token files), ``plan`` (isoFLOP
designs), ``train`` (one resumable run), ``sweep`` (many runs -> runs.csv), ``__main__`` (command line).
The network, data and training modules need torch; ``config`` and ``flops`` are pure Python (no torch,
no numpy), so the ``bayesmoe`` inference package can reuse the accounting without importing torch.
"""
