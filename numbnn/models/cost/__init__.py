"""One cost model for every network: parameters, size, FLOPs, BOPs, OPs and ACE per layer.

``summarize(model)`` runs ONE eval-mode forward pass under ``no_grad`` on a zero image, recorded as ops
by :func:`numbnn.autograd.function.trace` (the op stream the packed compiler traces), and reads what
each layer's ops did: a convolution's output size, a linear layer's output rows, and the
``weight_bits``/``act_bits`` of the layer. No model has hand-written formulas, so a new model is
priced correctly as soon as it is built from numbnn's layers.

Conventions (:data:`CONVENTIONS` prints them with every summary). OPs follow ReActNet (arXiv 2003.03488,
its ImageNet comparison; Bi-Real Net's convention); ACE follows PokeBNN (arXiv 2112.00133; google/aqt
``aqt/jax_legacy/jax/imagenet/pokebnn.py``, ``size_stats``). The 16-bit price of a float operand is our
reading, checked in ``tests/test_cost.py``: it reproduces the abstract's 7.9 ACE for ReActNet-A.

- A *MAC* of a ``Conv2d``/``BinaryConv2d`` is one of N*Ho*Wo * KH*KW*C_in/groups * C_out; of a
  ``Linear``/``BinaryLinear`` one of rows * in * out. Counts are per image (divided by the batch).
- **BOPs**: MACs whose weight and activation are both 1-bit. **FLOPs**: every other MAC (float
  convolutions, the classifier, ReActNet's step-1 convs with real weights on binary activations,
  8-bit fake-quantized layers), plus a tree ensemble's comparisons (see :func:`tree_ensemble_cost`).
- **OPs = BOPs/64 + FLOPs** (Bi-Real Net / ReActNet).
- **ACE** = sum over MACs of weight bits x activation bits (PokeBNN), a real operand (32-bit float
  here) priced at 16 bits as PokeBNN prices bf16: a float MAC costs 256, a binary MAC 1, an int4 x int4
  MAC 16, a real weight on a binary activation (ReActNet step 1) 16 x 1 = 16. BN, activations,
  residual adds, pooling and tree comparisons are not MACs and are not in ACE.
- A layer's activation bits are its ``act_bits`` (1 for binary layers), lowered when the input of its
  MAC op is the output of a quantizing op: a fake quantization (its ``bits``: :class:`~numbnn.nn.FakeQuant`,
  PokeBNN's SE and 8-bit stem/head) or a sign :class:`~numbnn.functional.quantizers.Quantizer`
  (:class:`~numbnn.nn.RSign`'s, 1 bit).
  Weight bits are the layer's ``weight_bits``; a model that fake-quantizes weights sets that attribute.
- **params** are trainable parameters (the paper convention); BN running statistics are *buffers*,
  listed separately and not in params or ``size_bytes``. **size_bytes**: binary weights at 1 bit,
  weights quantized to b < 32 bits at b bits, every other parameter at 32 bits (rounded up to bytes).
- **packed_size_bytes**, the payload of a packed export: each binary weight tensor packed by
  :func:`numbnn.kernels.pack_bits` along its last (input-channel) axis into uint64 words, padded to
  64 bits per output channel and tap, plus a float32 per-output-channel scale when the layer has one
  (alpha = mean|W_o|), plus float32 for every other parameter and every buffer.

Hook for models whose deployed form differs from their layers (ReActXGB's tree head): a model may
define ``cost_extra(self) -> CostExtra``; it is called after the forward pass. ``CostExtra.exclude``
names module paths whose rows (parameters and MACs, descendants included) are dropped, e.g. the FC
classifier the trees replace; ``CostExtra.rows`` are added, e.g. ``tree_ensemble_cost("trees", ...)``.
A model without the attribute is priced from its layers alone.
"""

from numbnn.models.cost.records import CONVENTIONS, CostExtra, CostReport, LayerCost
from numbnn.models.cost.summary import default_input_shape, summarize
from numbnn.models.cost.trees import tree_ensemble_cost

__all__ = ["CONVENTIONS", "CostExtra", "CostReport", "LayerCost", "default_input_shape", "summarize",
           "tree_ensemble_cost"]
