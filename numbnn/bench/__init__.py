"""Timing, behind ``numbnn bench``: one module per subcommand, plus the cold-start probe.

- :mod:`numbnn.bench.kernels` (``numbnn bench kernels``): binary MAC/s of the XNOR-popcount kernels
  against float32 BLAS on the same shapes, as shares of the popcount ceiling that
  :mod:`numbnn.kernels.popcount_probe` measures;
- :mod:`numbnn.bench.train` (``numbnn bench train``): seconds per training step, and a profile of one;
- :mod:`numbnn.bench.model` (``numbnn bench model``): images/s and latency of a packed model against
  its float model, warm in this process and cold in fresh ones (:mod:`numbnn.bench.cold_start`).

This package sits above the code it times (kernels, train, inference, io); nothing in numbnn but the CLI
imports it. Importing it imports nothing else, so the cold-start probe times its own imports.
"""
