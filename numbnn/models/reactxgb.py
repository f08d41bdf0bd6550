"""``reactxgb``: ReActXGB (Chu & Chen, arXiv 2405.08020): ReActNet-A whose FC classifier is replaced by
gradient-boosted trees (XGBoost) fitted on the pooled features.

Block diagram::

    x -> ReActNet-A feature extractor (numbnn.models.reactnet, unchanged) -> global average pool  [N, C]
      -> stage 1 (training): float Linear C -> 10, trained end to end like ReActNet-A
      -> stage 2 (deployed): 20 XGBoost trees on the frozen pooled features -> 10 class margins

Stage 1 is ordinary training of the network with its FC head; stage 2 (:meth:`ReActXGB.fit_trees`)
extracts the pooled features of the training images in eval mode and fits ``xgboost`` with objective
``multi:softprob``. Once trees are fitted, the model's eval-mode forward returns the trees' margins
(softmax of them = the trees' class probabilities); in training mode, or before stage 2, it returns
the FC head's logits. ``fc_logits`` always gives the FC head, so both heads can be compared.

Faithful (arXiv 2405.08020, abstract): ReActNet-A with its FC layer replaced by XGBoost, and the claims
tested against it: +1.47% top-1, -7.14% FLOPs and a model 1.02% smaller than ReActNet-A, on FashionMNIST.
Assumed (the paper's body was not available; "20 trees, depth 10" comes from a third-party summary,
sciencestack.ai/paper/2405.08020, not checked against the paper):

- ``trees`` = 20 trees in total. By default each boosting round grows ONE tree whose leaves hold a
  vector of 10 class margins (xgboost's ``multi_strategy="multi_output_tree"``,
  https://xgboost.readthedocs.io/en/stable/tutorials/multioutput.html), so 20 rounds store 20 trees.
  ``leaves="scalar"`` is xgboost's default per-class layout instead: a round grows one single-value
  tree per class, so ``trees`` must be a multiple of the classes and makes ``trees / classes`` rounds.
  (Before this option existed, ``trees=20`` meant 20 per-class rounds, 200 trees: 508 KiB against
  ReActNet-A's 173 KiB, where the paper reports a smaller model.)
- ``max_depth`` = 3, chosen for the size claim, not the summary's 10. Priced as
  :func:`numbnn.models.cost.tree_ensemble_cost` does (32 bits per split feature index, threshold and
  leaf value), a vector-leaf tree of depth <= 3 has <= 7 splits and <= 8 leaves of 10 values:
  (2 x 7 + 10 x 8) x 4 B = 376 B; 20 trees + 10 base margins <= 7,560 B (7.4 KiB), against the FC's
  (256 x 10 + 10) x 4 B = 10,280 B (10.0 KiB). The model is then at most 177,320 - 10,280 + 7,560 =
  174,600 B, 1.5% smaller than ReActNet-A (the paper: 1.02%). Depth 4 (<= 15,240 B) would make it
  larger than ReActNet-A; depth 10 (<= 1,023 splits and 1,024 vector leaves a tree) up to 960 KiB.
  Per image the trees make <= 20 x 3 = 60 comparisons instead of the FC's 2,560 MACs: 56,508 FLOPs
  against 59,008, -4.2% (the paper: -7.14%).
- ``learning_rate`` (XGBoost's eta) 0.3, XGBoost's default; histogram tree method; the features are
  the global-average-pooled output of the last block (C = 256 here, 1024 in the paper), which the
  abstract's -1.02% model-size figure suggests: dropping a 1024 x 10 float32 FC (41 KB) from a
  full-width ReActNet-A (28.3M binary weights, 3.5 MB, plus float parameters) is about 1% (our arithmetic).
- Storage: the fitted booster is XGBoost's JSON model, kept as bytes in the checkpoint's ``/arrays``
  group (``xgboost_json``); loading parses JSON only, never executes code from the file. The stored
  booster is what is evaluated and priced, whatever the constructor arguments say.

XGBoost is an optional extra (``pip install numbnn[xgb]``, xgboost >= 3.2 for the vector-leaf JSON
layout that :mod:`numbnn.inference.trees` reads): building, training stage 1 and evaluating the FC
head work without it; fitting or using trees raises :class:`MissingDependencyError`.
"""

from __future__ import annotations

import json

import numpy as np

from numbnn.autograd import Tensor, no_grad
from numbnn.checks import check_int
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


@register_model("reactxgb", summary="ReActXGB: ReActNet-A features, FC head replaced by 20 XGBoost trees "
                "(vector leaves of 10 class margins, depth 3)", paper="Chu & Chen, arXiv 2405.08020")
class ReActXGB(ReActNetA):
    """ReActNet-A (see :mod:`numbnn.models.reactnet` for the network options) plus a tree head.

    ``trees``: trees in total; ``leaves``: "vector" (one tree per round, a margin per class in each
    leaf) or "scalar" (one tree per class per round); ``max_depth``; ``learning_rate``: XGBoost's eta.
    """

    def __init__(self, widths=DEFAULT_WIDTHS, stem_stride: int = 2, binary_weights: bool = True,
                 latent_init: float = BINARY_LATENT_INIT, num_classes: int = 10, in_channels: int = 1, trees: int = 20,
                 max_depth: int = 3, learning_rate: float = 0.3, leaves: str = "vector"):
        super().__init__(widths, stem_stride, binary_weights, latent_init, num_classes, in_channels)
        trees, max_depth = check_int(trees, "trees"), check_int(max_depth, "max_depth")
        if not 0 < learning_rate <= 1:
            raise InputError(f"learning_rate must be in (0, 1], got {learning_rate!r}")
        if leaves not in ("vector", "scalar"):
            raise InputError(f"leaves must be 'vector' or 'scalar', got {leaves!r}")
        if leaves == "scalar" and trees % num_classes:
            raise InputError(f"leaves='scalar' grows one tree per class per round: trees must be a multiple of "
                             f"{num_classes}, got {trees}")
        self.num_classes = num_classes
        self.trees, self.max_depth, self.learning_rate, self.leaves = trees, max_depth, float(learning_rate), leaves
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
        rounds = self.trees
        if self.leaves == "vector":
            params["multi_strategy"] = "multi_output_tree"
        else:
            rounds //= self.num_classes
        if threads is not None:
            params["nthread"] = int(threads)
        train = xgboost.DMatrix(features, label=labels.astype(np.int64))
        self.booster = xgboost.train(params, train, num_boost_round=rounds)

    def _stored_trees(self) -> list[dict]:
        """The booster's trees as xgboost's JSON objects ([] before stage 2)."""
        if self.booster is None:
            return []
        model = json.loads(bytes(self.booster.save_raw(raw_format="json")))
        return model["learner"]["gradient_booster"]["model"]["trees"]

    def tree_structure(self) -> list[tuple[list[int], list[int]]]:
        """Each stored tree as (left_children, right_children), xgboost's JSON layout (-1 = leaf)."""
        return [_children(tree) for tree in self._stored_trees()]

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
        trees = self._stored_trees()
        if not trees:
            return CostExtra()
        leaf_size = int(trees[0]["tree_param"].get("size_leaf_vector", 1))  # one kind of tree per booster
        row = tree_ensemble_cost("trees", [_children(tree) for tree in trees], self.num_classes, leaf_size=leaf_size)
        return CostExtra(rows=[row], exclude=["classifier"])


def _children(tree: dict) -> tuple[list[int], list[int]]:
    """(left, right) children of an xgboost JSON tree with -1 for both of a leaf's; a vector-leaf tree
    stores its leaf's row of ``leaf_weights`` as the right child, which is not a node."""
    left = tree["left_children"]
    return left, [-1 if child == -1 else right for child, right in zip(left, tree["right_children"])]
