"""``reactxgb``: ReActXGB (Chu & Chen, arXiv 2405.08020): ReActNet-A whose FC classifier is replaced by
gradient-boosted trees (XGBoost) fitted on the pooled features.

Block diagram::

    x -> ReActNet-A feature extractor (numbnn.models.reactnet, unchanged) -> global average pool  [N, C]
      -> stage 1 (training): float Linear C -> 10, trained end to end like ReActNet-A
      -> stage 2 (deployed): XGBoost ensemble on the frozen pooled features -> 10 class margins

Stage 1 is ordinary training of the network with its FC head; stage 2 (:meth:`ReActXGB.fit_trees`)
extracts the pooled features of the training images in eval mode and fits ``xgboost`` with objective
``multi:softprob``. Once trees are fitted, the model's eval-mode forward returns the trees' margins
(softmax of them = the trees' class probabilities); in training mode, or before stage 2, it returns
the FC head's logits. ``fc_logits`` always gives the FC head, so both heads can be compared.

Options and assumptions (the paper's body was not available; its abstract, arXiv 2405.08020, gives only
the +1.47% top-1, -7.14% FLOPs and -1.02% model size against ReActNet-A on FashionMNIST; the 20 trees
and depth 10 are from a third-party summary, sciencestack.ai/paper/2405.08020, not checked against
the paper):

- ``trees`` is the number of boosting rounds, the paper's "ensemble capped at 20 trees". XGBoost's
  multi-class mode grows one tree per class per round, so ``trees=20`` stores 20 x 10 = 200 trees
  (the summary and the checkpoint report the actual count). Reading "20 trees" as 2 rounds of 10
  per-class trees would be far too small an ensemble to beat the FC head, so rounds it is.
- ``max_depth`` = 10 (that summary); ``learning_rate`` (XGBoost's eta) 0.3, XGBoost's default; histogram
  tree method; the features are the global-average-pooled output of the last block (C = 256 here,
  1024 in the paper), which the abstract's -1.02% model-size figure suggests: dropping a 1024 x 10
  float32 FC (41 KB) from a full-width ReActNet-A (28.3M binary weights, 3.5 MB, plus float
  parameters) is about 1% (our arithmetic).
- Storage: the fitted booster is XGBoost's JSON model, kept as bytes in the checkpoint's ``/arrays``
  group (``xgboost_json``); loading parses JSON only, never executes code from the file.

XGBoost is an optional extra (``pip install numbnn[xgb]``): building, training stage 1 and evaluating
the FC head work without it; fitting or using trees raises :class:`MissingDependencyError`.
"""

from __future__ import annotations

import json

import numpy as np

from numbnn.autograd import Tensor, no_grad
from numbnn.errors import CheckpointError, InputError, MissingDependencyError
from numbnn.models.cost import CostExtra, tree_ensemble_cost
from numbnn.models.reactnet import DEFAULT_WIDTHS, ReActNetA
from numbnn.models.registry import register_model
from numbnn.nn.init import BINARY_LATENT_INIT

TREES_ARRAY = "xgboost_json"


def import_xgboost():
    """The ``xgboost`` module, or a MissingDependencyError that says how to install it."""
    try:
        import xgboost  # optional dependency, slow to import (start-up time)
    except ImportError as error:
        raise MissingDependencyError(
            "reactxgb's tree head needs xgboost, which is not installed: pip install 'numbnn[xgb]' "
            f"(or pip install xgboost) [{error}]"
        ) from None
    return xgboost


@register_model("reactxgb", summary="ReActXGB: ReActNet-A features, FC head replaced by XGBoost trees (20 rounds, depth 10)",
                paper="Chu & Chen, arXiv 2405.08020")
class ReActXGB(ReActNetA):
    """ReActNet-A (see :mod:`numbnn.models.reactnet` for the network options) plus a tree head.

    ``trees``: boosting rounds (x num_classes trees); ``max_depth``; ``learning_rate``: XGBoost's eta.
    """

    def __init__(self, widths=DEFAULT_WIDTHS, stem_stride: int = 2, binary_weights: bool = True,
                 latent_init: float = BINARY_LATENT_INIT, num_classes: int = 10, in_channels: int = 1, trees: int = 20,
                 max_depth: int = 10, learning_rate: float = 0.3):
        super().__init__(widths, stem_stride, binary_weights, latent_init, num_classes, in_channels)
        for name, value in (("trees", trees), ("max_depth", max_depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if not 0 < learning_rate <= 1:
            raise InputError(f"learning_rate must be in (0, 1], got {learning_rate!r}")
        self.num_classes = num_classes
        self.trees, self.max_depth, self.learning_rate = trees, max_depth, float(learning_rate)
        self.booster = None  # the fitted xgboost.Booster (stage 2), or None

    @property
    def has_trees(self) -> bool:
        return self.booster is not None

    def clear_trees(self) -> None:
        """Drop the tree head (until :meth:`fit_trees`), so the model predicts with its FC head."""
        self.booster = None

    # -- forward ------------------------------------------------------------------------------------------
    def fc_logits(self, x):
        """The FC head's logits, whether or not trees are fitted."""
        return super().forward(x)

    def forward(self, x):
        if self.training or self.booster is None:
            return self.fc_logits(x)
        with no_grad():
            features = self.features(x).data
        return Tensor(self.tree_margins(features))

    def tree_margins(self, features: np.ndarray) -> np.ndarray:
        """Per-class margins [N, num_classes] of the trees (their softmax is the predicted distribution)."""
        xgboost = import_xgboost()
        if self.booster is None:
            raise InputError("reactxgb: the tree head is not fitted yet (call fit_trees)")
        margins = self.booster.predict(xgboost.DMatrix(np.asarray(features, np.float32)), output_margin=True)
        return margins.reshape(len(features), self.num_classes).astype(np.float32)

    # -- stage 2 --------------------------------------------------------------------------------------------
    def fit_trees(self, features: np.ndarray, labels: np.ndarray, *, seed: int = 0, threads: int | None = None) -> None:
        """Fit the XGBoost head on pooled ``features`` [N, C] (from :meth:`features` in eval mode) and ``labels``."""
        xgboost = import_xgboost()
        features, labels = np.asarray(features, np.float32), np.asarray(labels)
        if features.ndim != 2 or len(features) != len(labels) or len(labels) == 0:
            raise InputError(f"features must be [N, C] with one label each, got {features.shape} and {labels.shape}")
        params = {
            "objective": "multi:softprob", "num_class": self.num_classes, "max_depth": self.max_depth,
            "eta": self.learning_rate, "tree_method": "hist", "seed": int(seed), "verbosity": 0,
        }
        if threads is not None:
            params["nthread"] = int(threads)
        train = xgboost.DMatrix(features, label=labels.astype(np.int64))
        self.booster = xgboost.train(params, train, num_boost_round=self.trees)

    def tree_structure(self) -> list[tuple[list[int], list[int]]]:
        """Each stored tree as (left_children, right_children), xgboost's JSON layout (-1 = leaf)."""
        if self.booster is None:
            return []
        model = json.loads(bytes(self.booster.save_raw(raw_format="json")))
        trees = model["learner"]["gradient_booster"]["model"]["trees"]
        return [(tree["left_children"], tree["right_children"]) for tree in trees]

    # -- checkpoint hooks (numbnn.io.save / load) -------------------------------------------------------------
    def checkpoint_arrays(self) -> dict:
        """Extra blobs to store with the weights: the booster as XGBoost JSON bytes (nothing before stage 2)."""
        if self.booster is None:
            return {}
        return {TREES_ARRAY: bytes(self.booster.save_raw(raw_format="json"))}

    def load_checkpoint_arrays(self, arrays: dict) -> None:
        """Restore the booster from :meth:`checkpoint_arrays` output (JSON is parsed; no code is run)."""
        blob = arrays.get(TREES_ARRAY)
        if blob is None:
            self.booster = None
            return
        raw = bytes(blob) if isinstance(blob, (bytes, bytearray)) else np.asarray(blob, np.uint8).tobytes()
        if not raw.lstrip().startswith(b"{"):
            raise CheckpointError(f"reactxgb: /{TREES_ARRAY} is not an XGBoost JSON model")
        xgboost = import_xgboost()
        booster = xgboost.Booster()
        try:
            booster.load_model(bytearray(raw))
        except xgboost.core.XGBoostError as error:
            raise CheckpointError(f"reactxgb: cannot read the stored trees: {error}") from None
        self.booster = booster

    # -- cost model hook (numbnn.models.cost) ----------------------------------------------------------------
    def cost_extra(self):
        """Once trees are fitted, price them instead of the FC classifier they replace."""
        if self.booster is None:
            return CostExtra()
        return CostExtra(rows=[tree_ensemble_cost("trees", self.tree_structure())], exclude=["classifier"])
