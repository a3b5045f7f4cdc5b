"""numba: the fused engine's kernels (``kernels``, ``core``), the one compiled trainer (``lane_trainer``, on the
lanes layout of ``lanes``, ``lane_cells`` and ``lane_loss``, its tuples and buffers in ``workspace``; on the GPU
``cuda_trainer``) with its one host for 1..K models (``compiled``), and their warm-up (``warmup``). Nothing
here imports the model."""
