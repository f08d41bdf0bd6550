"""Per-channel float32 steps (batch norm, scales, biases, residuals, activations) and numpy ufuncs."""

from __future__ import annotations

import math

import numpy as np

from numbnn.inference.ops.base import GraphError, Op, Spec, const_array, expect, get_attr, int_list, register_op
from numbnn.inference.ops.packing import movement_index
from numbnn.kernels import steps as _steps
from numbnn.kernels.threshold_packing import gather_runs

# name -> (code in numbnn.kernels.steps, parameter rows it reads, reads the second input)
STAGES = {
    "mul": (_steps.MUL, 1, False),
    "add": (_steps.ADD, 1, False),
    "sub": (_steps.SUB, 1, False),
    "rsub": (_steps.RSUB, 1, False),
    "div": (_steps.DIV, 1, False),
    "rdiv": (_steps.RDIV, 1, False),
    "affine": (_steps.AFFINE, 2, False),  # y * scale + shift (batch norm in eval mode)
    "dprelu": (_steps.DPRELU, 4, False),  # shift_x, pos_slope, neg_slope, shift_y
    "relu": (_steps.RELU, 0, False),
    "hard_sigmoid": (_steps.HARD_SIGMOID, 0, False),
    "fake_quant": (_steps.FAKE_QUANT, 3, False),  # lo, hi, step
    "sign": (_steps.SIGN, 0, False),
    "neg": (_steps.NEG, 0, False),
    "add_input": (_steps.ADD_INPUT, 0, True),
    "sub_input": (_steps.SUB_INPUT, 0, True),
    "rsub_input": (_steps.RSUB_INPUT, 0, True),
    "mul_input": (_steps.MUL_INPUT, 0, True),
    "add_padded_input": (_steps.ADD_PADDED_INPUT, 0, True),
    "add_mean_input": (_steps.ADD_MEAN_INPUT, 0, True),
}
WIDE_ROW = 64  # elements per row when a map's channels divide it (Elementwise._wide_rows)
GATHERED_WIDE_ROW = 256  # the same for steps on a rearranged input (Elementwise.__call__ with moves)
MEAN_INPUT_GROUPS = range(2, 8)  # add_mean_input: channels averaged per output channel (a short last axis)


@register_op
class Elementwise(Op):
    """float32 y[..., c] = steps applied in order to float32(x[..., c]) (int32 or float32 x).

    ``stages`` names the steps (:data:`STAGES`); ``params`` float32 [rows, C] holds their per-channel
    values in order. At most one second input ``other``, read by the *_input steps: same leading shape
    as x, or one row per image (a gate broadcast over pixels); channel c reads other[..., c % C_other]
    (a residual whose channels are repeated), or with ``add_padded_input`` other[..., c] and 0.0 past
    C_other (a residual zero-padded along channels), or with ``add_mean_input`` the mean of other[..., k*c :
    k*c + k] for C_other = k*C, 2 <= k <= 7 (a residual averaging channel groups). With ``moves``/``source_shape`` attributes x is read through
    a rearrangement of the input (as :class:`GatherPack` reads it).
    """

    name = "elementwise"
    arity = None
    const_names = ("params",)

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.moves = None
        if "moves" in attrs:  # x is read through a rearrangement (see GatherPack), never materialised
            self.source_shape = tuple(int_list(get_attr(attrs, "source_shape", self.name), self.name, "source_shape"))
            expect(len(self.source_shape) >= 1 and min(self.source_shape) >= 1, "elementwise: bad source_shape")
            self.moves, self.fill = movement_index(self.source_shape, attrs["moves"], self.name)
            self.run, _ = gather_runs(self.moves.reshape(-1), self.moves.shape[-1], self.source_shape[-1])
        stages = get_attr(attrs, "stages", self.name)
        expect(isinstance(stages, list) and all(isinstance(s, str) and s in STAGES for s in stages),
                f"elementwise: stages must be a list of {sorted(STAGES)}, got {stages!r}")
        self.stages = stages
        self.params = const_array(consts, "params", self.name, np.float32, 2)
        rows = [0]
        for stage in stages:
            rows.append(rows[-1] + STAGES[stage][1])
        expect(self.params.shape[0] == rows[-1], f"elementwise: steps {stages} need {rows[-1]} parameter rows, "
                f"got {self.params.shape[0]}")
        self.codes = np.array([STAGES[s][0] for s in stages], np.int64)
        self.first_rows = np.array(rows[:-1], np.int64)
        self.uses_other = any(STAGES[s][2] for s in stages)
        # steps whose second input has its own channel layout (padded, averaged) keep rows of C
        self.fixed_width = "add_padded_input" in stages or "add_mean_input" in stages
        self._repeated = {}  # (C, width) -> params repeated along width lanes (repeated_params)

    def output_spec(self, specs):
        expect(len(specs) == (2 if self.uses_other else 1),
                f"elementwise: steps {self.stages} need {2 if self.uses_other else 1} input(s), got {len(specs)}")
        x = specs[0]
        if self.moves is not None:
            expect(x.dtype == "float32" and x.shape == self.source_shape, f"elementwise: input must be {self.source_shape}")
            x = Spec("float32", self.moves.shape)
        expect(x.dtype in ("float32", "int32") and len(x.shape) >= 1, f"elementwise: bad input {x}")
        channels = x.shape[-1]
        expect(self.params.shape[1] == channels or (self.params.shape[0] == 0),
                f"elementwise: params have {self.params.shape[1]} channels, input {channels}")
        if self.uses_other:
            other = specs[1]
            expect(other.dtype == "float32", "elementwise: the second input must be float32")
            same_rows = other.shape[:-1] == x.shape[:-1]
            per_image = all(s == 1 for s in other.shape[:-1]) and len(other.shape) == len(x.shape)
            padded = "add_padded_input" in self.stages  # then the only step reading it (no repeated channels)
            averaged = "add_mean_input" in self.stages  # likewise: k*C channels, k of them per channel
            if padded:
                fits = other.shape[-1] <= channels
            elif averaged:
                fits = other.shape[-1] % channels == 0 and other.shape[-1] // channels in MEAN_INPUT_GROUPS
            else:
                fits = channels % other.shape[-1] == 0
            expect(not (padded or averaged) or sum(STAGES[s][2] for s in self.stages) == 1,
                   "elementwise: add_padded_input or add_mean_input must be the only step reading the second input")
            expect((same_rows or per_image) and other.shape[-1] >= 1 and fits,
                    f"elementwise: second input {other.shape} does not fit input {x.shape}")
        return Spec("float32", x.shape)

    @property
    def writes_in_place(self):
        return self.moves is None

    def __call__(self, x, other=None, out=None):
        """The steps on x (and the second input); ``out``: x itself, to overwrite (rows are read before
        they are written)."""
        if self.moves is not None:
            shape = (x.shape[0], *self.moves.shape)
            out = np.empty((math.prod(shape) // shape[-1], shape[-1]), np.float32)
            other2, div = self.other_rows(other, out.shape[0])
            channels = shape[-1]
            # whole blocks of ROW_BLOCK rows stepped as rows of GATHERED_WIDE_ROW where C divides it
            wide = (channels < GATHERED_WIDE_ROW and GATHERED_WIDE_ROW % channels == 0
                    and (_steps.ROW_BLOCK * channels) % GATHERED_WIDE_ROW == 0)
            _steps.run_stages_gathered(np.ascontiguousarray(x).reshape(x.shape[0], -1), self.moves.reshape(-1), self.run, self.fill,
                                         self.codes, self.first_rows, self.channel_params(channels),
                                         self.repeated_params(channels, GATHERED_WIDE_ROW if wide else channels),
                                         other2, div, out)
            return out.reshape(shape)
        channels = x.shape[-1]
        x2 = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, channels)  # int32 -> float32 is exact, as in the model
        out2 = np.empty(x2.shape, np.float32) if out is None else out.reshape(x2.shape)
        other2, div = self.other_rows(other, x2.shape[0])
        params = self.channel_params(channels)
        wide = self._wide_rows(x2, other2, div, x.shape[0] if x.ndim > 1 else 1)
        if wide is not None:
            x2, other2, div, params = wide
            out2 = out2.reshape(x2.shape)
        _steps.run_stages(x2, self.codes, self.first_rows, params, other2, div, out2)
        return out2.reshape(x.shape)

    def _wide_rows(self, x2, other2, div, images):
        """(x, other, other_div, params) as rows of WIDE_ROW elements, or None: with C a divisor of
        WIDE_ROW below it, every WIDE_ROW consecutive elements are whole pixels, and element e's channel is
        e % C, so the same steps run on the same elements with the parameters repeated across a row,
        vectorised over WIDE_ROW lanes instead of C (a 1-channel image's steps ran one element per row).
        The second input must fit: none, the same shape, or one row per image of C (or fewer, repeated)
        channels with whole wide rows per image."""
        channels = x2.shape[1]
        if channels >= WIDE_ROW or WIDE_ROW % channels or x2.size % WIDE_ROW or self.fixed_width:
            return None
        rows = x2.size // WIDE_ROW
        if other2 is _steps.NO_OTHER:
            div = max(1, rows)
        elif other2.shape == x2.shape:
            other2, div = other2.reshape(rows, WIDE_ROW), 1
        elif other2.shape[0] == images and (x2.size // images) % WIDE_ROW == 0 and channels % other2.shape[1] == 0:
            div = rows // images
        else:
            return None
        return x2.reshape(rows, WIDE_ROW), other2, div, self.repeated_params(channels, WIDE_ROW)

    def repeated_params(self, channels, width):
        """The steps' parameters for C = ``channels`` repeated along rows of ``width`` elements (a multiple of C):
        element e of a wide row is channel e % C. Built once per (C, width)."""
        key = (channels, width)
        if key not in self._repeated:
            self._repeated[key] = np.ascontiguousarray(np.tile(self.channel_params(channels), (1, width // channels)))
        return self._repeated[key]

    def channel_params(self, channels):
        return self.params if self.params.shape[0] else np.zeros((0, channels), np.float32)

    @staticmethod
    def other_rows(other, rows):
        """The second input as [R, Co] rows and the number of our rows per row of it."""
        if other is None:
            return _steps.NO_OTHER, max(1, rows)
        other2 = np.ascontiguousarray(other, dtype=np.float32).reshape(-1, other.shape[-1])
        return other2, rows // other2.shape[0]


@register_op
class Ufunc(Op):
    """A numpy ufunc with numpy's broadcasting, for the element-wise ops that are not per-channel steps.

    ``operands`` lists each argument: ``"input:i"`` (the node's i-th input) or ``"const:name"``.
    """

    name = "ufunc"
    arity = None
    const_names = ("a", "b")
    FUNCTIONS = {"add": 2, "subtract": 2, "multiply": 2, "divide": 2, "negative": 1, "maximum": 2, "minimum": 2}

    def __init__(self, attrs, consts):
        super().__init__(attrs, consts)
        self.fn = get_attr(attrs, "fn", self.name)
        expect(self.fn in self.FUNCTIONS, f"ufunc: fn must be one of {sorted(self.FUNCTIONS)}, got {self.fn!r}")
        operands = get_attr(attrs, "operands", self.name)
        expect(isinstance(operands, list) and len(operands) == self.FUNCTIONS[self.fn],
                f"ufunc: {self.fn} takes {self.FUNCTIONS[self.fn]} operands, got {operands!r}")
        self.operands = []
        for operand in operands:
            kind, _, ref = str(operand).partition(":")
            if kind == "input" and ref.isdigit():
                self.operands.append(("input", int(ref)))
            elif kind == "const" and ref in consts:
                self.operands.append(("const", consts[ref]))
            else:
                raise GraphError(f"ufunc: bad operand {operand!r}")
        self.ufunc = getattr(np, self.fn)

    def output_spec(self, specs):
        n_inputs = sum(kind == "input" for kind, _ in self.operands)
        expect(len(specs) == n_inputs and sorted(r for k, r in self.operands if k == "input") == list(range(n_inputs)),
                f"ufunc: operands do not match {len(specs)} inputs")
        shapes, dtypes = [], []
        for kind, ref in self.operands:
            if kind == "input":
                shapes.append((1,) + specs[ref].shape)
                dtypes.append(np.dtype(specs[ref].dtype))
            else:
                shapes.append(ref.shape)
                dtypes.append(ref.dtype)
        expect(all(d.kind == "f" for d in dtypes), "ufunc: operands must be floating point")
        try:
            shape = np.broadcast_shapes(*shapes)
        except ValueError:
            raise GraphError(f"ufunc: shapes {shapes} do not broadcast") from None
        expect(len(shape) >= 1 and shape[0] == 1, "ufunc: a constant may not add a batch axis")
        dtype = self.ufunc(*[np.ones(1, d) for d in dtypes]).dtype  # ones: no 0/0 warning
        return Spec(dtype.name, shape[1:])

    def __call__(self, *xs):
        return self.ufunc(*[xs[ref] if kind == "input" else ref for kind, ref in self.operands])
