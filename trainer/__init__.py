"""Small MoE transformer trainer that produces runs tables (docs/runs-table.md) for bayesmoe.

Modules: ``config`` (architecture), ``model`` / ``moe`` / ``dispatch`` / ``cuda_dispatch`` (the network),
``flops`` (parameter and FLOP accounting), ``data`` (corpus, byte or BPE tokens, token files), ``plan``
(isoFLOP designs bracketing the optimum), ``centre`` (the optimum fitted to finished runs), ``train`` (one
resumable run), ``distributed`` (one run over torchrun processes), ``sweep`` (runs -> runs.csv: in process
or a shared worker queue), ``staged`` (a sweep planned budget by budget), ``__main__`` (command line,
docs/cli.md). The network, data and training modules need torch; ``config``, ``flops``, ``plan``, ``centre``
and ``staged`` do not (numpy only), so the ``bayesmoe`` inference package can reuse the accounting and the
planner without importing torch.
"""
