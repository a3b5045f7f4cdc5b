"""numba: the fused engine's kernels (``kernels``, ``core``), the one compiled trainer (``lane_trainer``, on the
lanes layout of ``lanes``, ``lane_cells`` and ``lane_loss``) that the compiled engine (``compiled``) and the
many engine run, and their warm-up (``warmup``). Nothing here imports the model."""
