"""Small MoE transformer trainer that produces runs tables (SPEC §1) for bayesmoe.

Modules: ``config`` (architecture), ``model`` / ``moe`` / ``dispatch`` / ``cuda_dispatch`` (the network),
``flops`` (parameter and FLOP accounting), ``data`` (corpus, tokenizer, token files), ``plan`` (isoFLOP
designs), ``train`` (one resumable run), ``sweep`` (many runs -> runs.csv), ``__main__`` (command line).
This package needs torch; the ``bayesmoe`` inference package never imports it.
"""
