"""The gate of a squeeze-and-excitation block, in one call for packed inference.

Squeeze-and-excitation (Hu et al., arXiv 1709.01507, sec. 3) scales each channel of a map by a gate computed
from the map's spatial mean through two small fully connected layers. PokeBNN (Zhang et al., arXiv
2112.00133, Fig. 2) runs one after every conv of its block, with its operands quantised:

    gate = steps_3(linear_2(steps_2(linear_1(steps_1(mean over H, W of x)))))

(steps_1 an 8-bit fake quantisation, steps_2 ReLU and a 4-bit one, steps_3 the hard sigmoid). Compiled
node by node that is seven graph nodes of a few dozen values each, and at batch 1 each node costs more in
dispatch than in arithmetic; here one parallel task per image runs the whole chain. Every part is the loop
of the float model's own kernel, shared as an inline helper (the spatial mean of
:mod:`numbnn.kernels.pooling`, the fixed-order product of :mod:`numbnn.kernels.ordered_matmul`, the
float32 steps of :mod:`numbnn.kernels.steps`), and a bias is added to the product as the ``linear`` op
adds it, so the gate equals the node-by-node result, and the float model's, bit for bit.
"""

import numba as nb
import numpy as np

from numbnn.kernels.ordered_matmul import ordered_row
from numbnn.kernels.pooling import image_mean
from numbnn.kernels.steps import NO_OTHER, PROGRAM, ROWS, apply_steps
from numbnn.kernels.typed import typed_njit

_MAP = "float32[:, :, :, ::1]"
_VECTOR = "float32[::1]"


@typed_njit(f"void({_MAP}, {PROGRAM}, {ROWS}, {ROWS}, {_VECTOR}, boolean, {PROGRAM}, {ROWS}, {ROWS}, {_VECTOR}, boolean, "
         f"{PROGRAM}, {ROWS}, {ROWS})", parallel=True, cache=True, error_model="numpy")
def squeeze_excite_gate(x, codes_1, rows_1, params_1, wt_1, bias_1, with_bias_1, codes_2, rows_2, params_2, wt_2, bias_2,
                        with_bias_2, codes_3, rows_3, params_3, out):
    """out[n] = the gate of image n of x [N, H, W, C] (module docstring): wt_1 [C, D] and wt_2 [D, C_out] the
    two layers' weights transposed, each bias added when its flag is set; each steps program as
    :func:`numbnn.kernels.steps.run_stages` takes it (codes, first rows, params). No bounds checks: the
    ``squeeze_excite`` op checks every shape."""
    hidden = wt_1.shape[1]
    for b in nb.prange(x.shape[0]):
        mean = np.empty((1, x.shape[3]), np.float32)
        image_mean(x[b], mean[0])
        apply_steps(mean, 0, 0, 1, codes_1, rows_1, params_1, NO_OTHER, 1)
        middle = np.empty((1, hidden), np.float32)
        ordered_row(mean[0], wt_1, middle[0])
        if with_bias_1:
            for j in range(hidden):
                middle[0, j] = middle[0, j] + bias_1[j]
        apply_steps(middle, 0, 0, 1, codes_2, rows_2, params_2, NO_OTHER, 1)
        gate = out[b:b + 1]
        ordered_row(middle[0], wt_2, gate[0])
        if with_bias_2:
            for j in range(gate.shape[1]):
                gate[0, j] = gate[0, j] + bias_2[j]
        apply_steps(gate, 0, 0, 1, codes_3, rows_3, params_3, NO_OTHER, 1)
