"""numba: the fused engine's kernels (``kernels``, ``core``), the compiled engine (``compiled``), the many
engine's kernels (``lanes``, ``many``) and their warm-up (``warmup``). Nothing here imports the model."""
