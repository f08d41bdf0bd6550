"""Naive plain-numpy twins of the Numba kernels: slow, obviously correct, used as test oracles.

Binary kernels are checked on +1/-1 floats: a set bit means -1, a clear bit +1 (sign(0) = +1).
"""

import numpy as np


def out_size(size, k, stride, pad, dilation):
    return (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1


def pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def signs(x):
    """+1/-1 float64 signs with sign(0) = +1."""
    return np.where(np.asarray(x) < 0, -1.0, 1.0)


# ---- float im2col -------------------------------------------------------------------------------


def im2col(x, kernel_size, stride=1, padding=0, dilation=1, groups=1):
    """Receptive field of each output pixel, one row per (n, oy, ox), columns ordered (kh, kw, c);
    with groups, the im2col of each group's channel slice side by side."""
    if groups > 1:
        parts = np.split(np.asarray(x), groups, axis=-1)
        return np.concatenate([im2col(part, kernel_size, stride, padding, dilation) for part in parts], axis=1)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(pair, (kernel_size, stride, padding, dilation))
    n, h, w, c = x.shape
    ho, wo = out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)
    cols = np.zeros((n, ho, wo, kh, kw, c), dtype=x.dtype)
    for b in range(n):
        for oy in range(ho):
            for ox in range(wo):
                for i in range(kh):
                    for j in range(kw):
                        iy, ix = oy * sh - ph + i * dh, ox * sw - pw + j * dw
                        if 0 <= iy < h and 0 <= ix < w:
                            cols[b, oy, ox, i, j, :] = x[b, iy, ix, :]
    return cols.reshape(n * ho * wo, kh * kw * c)


def col2im(cols, input_shape, kernel_size, stride=1, padding=0, dilation=1, groups=1):
    """Scatter-add each column entry onto the input pixel it was read from; with groups, each group's
    block of columns onto its channel slice."""
    if groups > 1:
        part_shape = tuple(input_shape[:3]) + (input_shape[3] // groups,)
        parts = np.split(np.asarray(cols), groups, axis=1)
        parts = [col2im(part, part_shape, kernel_size, stride, padding, dilation) for part in parts]
        return np.concatenate(parts, axis=-1)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(pair, (kernel_size, stride, padding, dilation))
    n, h, w, c = input_shape
    ho, wo = out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)
    blocks = cols.reshape(n, ho, wo, kh, kw, c)
    x = np.zeros(input_shape, dtype=cols.dtype)
    for b in range(n):
        for oy in range(ho):
            for ox in range(wo):
                for i in range(kh):
                    for j in range(kw):
                        iy, ix = oy * sh - ph + i * dh, ox * sw - pw + j * dw
                        if 0 <= iy < h and 0 <= ix < w:
                            x[b, iy, ix, :] += blocks[b, oy, ox, i, j, :]
    return x


def conv_input_grad(grad, w, input_shape, kernel_size, stride=1, padding=0, dilation=1, groups=1):
    """dx of a grouped convolution: col2im of each group's grad_g @ w_g (float64 products)."""
    o = w.shape[0]
    og = o // groups
    cols = [grad[:, i * og : (i + 1) * og].astype(np.float64) @ w[i * og : (i + 1) * og].reshape(og, -1).astype(np.float64)
            for i in range(groups)]
    return col2im(np.concatenate(cols, axis=1), input_shape, kernel_size, stride, padding, dilation, groups)


def sign_conv_input_grad(grad, w, input_shape, kernel_size, stride=1, padding=0, dilation=1, groups=1, scale=None):
    """dx of a convolution with weights scale_o * sign(w_o) (sign(0) = +1): col2im of float64 products."""
    scale = np.ones(len(w)) if scale is None else np.asarray(scale, dtype=np.float64)
    weights = np.where(np.asarray(w) < 0, -1.0, 1.0) * scale[:, None, None, None]
    return conv_input_grad(grad, weights, input_shape, kernel_size, stride, padding, dilation, groups)


# ---- bit packing --------------------------------------------------------------------------------


def pack_bits(x, axis=-1):
    """Bit i of word j along `axis` is 1 iff x[..., 64*j + i] < 0; built word by word from Python ints."""
    moved = np.moveaxis(np.asarray(x), axis, -1)
    n = moved.shape[-1]
    n_words = (n + 63) // 64
    rows = moved.reshape(-1, n)
    out = np.zeros((rows.shape[0], n_words), dtype=np.uint64)
    for r in range(rows.shape[0]):
        for j in range(n_words):
            word = 0
            for i in range(64):
                t = 64 * j + i
                if t < n and rows[r, t] < 0:
                    word |= 1 << i
            out[r, j] = np.uint64(word)
    return np.moveaxis(out.reshape(moved.shape[:-1] + (n_words,)), -1, axis)


def unpack_bits(p, n, axis=-1):
    """+1/-1 float32 values from the bits of each word (set bit = -1)."""
    moved = np.moveaxis(np.asarray(p), axis, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    out = np.ones((rows.shape[0], n), dtype=np.float32)
    for r in range(rows.shape[0]):
        for t in range(n):
            if (int(rows[r, t // 64]) >> (t % 64)) & 1:
                out[r, t] = -1.0
    return np.moveaxis(out.reshape(moved.shape[:-1] + (n,)), -1, axis)


# ---- binary matmul / convolution ----------------------------------------------------------------


def binary_matmul(a, b, k):
    """Dot products of the +1/-1 rows that the bits encode."""
    return (unpack_bits(a, k).astype(np.int64) @ unpack_bits(b, k).astype(np.int64).T).astype(np.int32)


def float_conv2d(x, w, stride=1, padding=0, dilation=1, pad_value=0.0, groups=1):
    """Grouped NHWC x OHWI convolution of float arrays; the border is filled with `pad_value`."""
    (sh, sw), (ph, pw), (dh, dw) = map(pair, (stride, padding, dilation))
    n, h, width, c = x.shape
    o_count, kh, kw, c_group = w.shape
    assert c == c_group * groups
    padded = np.full((n, h + 2 * ph, width + 2 * pw, c), float(pad_value))
    padded[:, ph : ph + h, pw : pw + width, :] = x
    ho, wo = out_size(h, kh, sh, ph, dh), out_size(width, kw, sw, pw, dw)
    per_group = o_count // groups
    out = np.zeros((n, ho, wo, o_count))
    for oy in range(ho):
        for ox in range(wo):
            window = padded[:, oy * sh : oy * sh + dh * (kh - 1) + 1 : dh, ox * sw : ox * sw + dw * (kw - 1) + 1 : dw, :]
            for o in range(o_count):
                g = o // per_group
                out[:, oy, ox, o] = np.einsum("nhwc,hwc->n", window[..., g * c_group : (g + 1) * c_group], w[o])
    return out


def binary_conv2d(x, w, in_channels, stride=1, padding=0, dilation=1, pad_value=0, groups=1):
    """Unpack each group's channels to +1/-1 floats and run the float convolution."""
    c_group = in_channels // groups
    words = (c_group + 63) // 64
    xs = np.concatenate([unpack_bits(x[..., g * words : (g + 1) * words], c_group) for g in range(groups)], axis=-1)
    ws = unpack_bits(w, c_group)
    return float_conv2d(xs, ws, stride, padding, dilation, pad_value, groups).astype(np.int32)


# ---- +1/-1 matrices packed along their rows (table-lookup products) ----------------------------------


def unpack_sign_rows(bits, rows):
    """The +1/-1 [rows, K] matrix of uint8 bits [chunks, 4, K]: row 32j + 8q + i is bit i of byte (j, q, k)."""
    chunks, four, k = bits.shape
    out = np.empty((chunks * 32, k))
    for j in range(chunks):
        for q in range(four):
            for i in range(8):
                out[32 * j + 8 * q + i] = np.where((bits[j, q] >> i) & 1, -1.0, 1.0)
    return out[:rows]


def pack_sign_columns(x, kernel_size, stride=1, padding=0, dilation=1, groups=1):
    """im2col of sign(x) (group by group) with padding taps +1, as the rows' bits."""
    (ph, pw) = pair(padding)
    padded = np.pad(signs(x), ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=1.0)
    cols = im2col(padded, kernel_size, stride, 0, dilation, groups)
    rows, k = cols.shape
    chunks = -(-rows // 32)
    full = np.ones((chunks * 32, k))
    full[:rows] = cols
    bits = np.zeros((chunks, 4, k), dtype=np.uint8)
    for r in range(chunks * 32):
        bits[r // 32, (r % 32) // 8] |= ((full[r] < 0).astype(np.uint8) << (r % 8)).astype(np.uint8)
    return bits


def sign_rows_matmul(bits, g, groups=1):
    """S^T g in float64, S the +1/-1 matrix of the bits with len(g) rows; with groups, S_g^T g_g for
    each group's column block of S and channel block of g, side by side."""
    s, g = unpack_sign_rows(bits, len(g)), np.asarray(g, dtype=np.float64)
    pairs = zip(np.split(s, groups, axis=1), np.split(g, groups, axis=1))
    return np.concatenate([s_g.T @ g_g for s_g, g_g in pairs], axis=1)


def padding_tap_sums(g, input_hw, kernel_size, stride=1, padding=0, dilation=1):
    """Per tap, the sum of g's rows (output pixels) whose tap reads the padding."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = map(pair, (kernel_size, stride, padding, dilation))
    h, w = input_hw
    ho, wo = out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)
    maps = np.asarray(g, dtype=np.float64).reshape(-1, ho, wo, g.shape[1])
    sums = np.zeros((kh * kw, g.shape[1]))
    for oy, ox, tap in padding_taps(h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo):
        sums[tap] += maps[:, oy, ox].sum(axis=0)
    return sums


def padding_taps(h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo):
    """Every (oy, ox, tap) of a convolution whose tap (i * kw + j) reads the padding, not the image."""
    for oy in range(ho):
        for ox in range(wo):
            for i in range(kh):
                for j in range(kw):
                    iy, ix = oy * sh - ph + i * dh, ox * sw - pw + j * dw
                    if not (0 <= iy < h and 0 <= ix < w):
                        yield oy, ox, i * kw + j


# ---- average pooling ----------------------------------------------------------------------------


def _pool_windows(h, w, kernel_size, stride, pad_before, out_hw):
    """((oy, ox), rows slice, cols slice) of every window's real pixels."""
    (kh, kw), (sh, sw), (pt, pl), (ho, wo) = kernel_size, stride, pad_before, out_hw
    for oy in range(ho):
        for ox in range(wo):
            y0, x0 = oy * sh - pt, ox * sw - pl
            yield (oy, ox), slice(max(y0, 0), min(y0 + kh, h)), slice(max(x0, 0), min(x0 + kw, w))


def avg_pool2d(x, kernel_size, stride, pad_before, out_hw):
    """Mean of each window's real (non-padding) pixels, in float64."""
    n, h, w, c = x.shape
    out = np.empty((n, *out_hw, c))
    for (oy, ox), rows, cols in _pool_windows(h, w, kernel_size, stride, pad_before, out_hw):
        out[:, oy, ox] = np.asarray(x, dtype=np.float64)[:, rows, cols].mean(axis=(1, 2))
    return out


def spatial_mean(x):
    """float32 mean over axes 1, 2 of [N, H, W, C]: x[:, 0, 0] + each other pixel in row-major order, / (H*W)."""
    n, h, w, c = x.shape
    total = x[:, 0, 0].copy()
    for i in range(h):
        for k in range(w):
            if i or k:
                total = total + x[:, i, k]
    return total / np.float32(h * w)


def avg_pool2d_adjoint(grad, input_hw, kernel_size, stride, pad_before):
    """Scatter each window's gradient / its pixel count back onto its real pixels, in float64."""
    n, ho, wo, c = grad.shape
    dx = np.zeros((n, *input_hw, c))
    for (oy, ox), rows, cols in _pool_windows(*input_hw, kernel_size, stride, pad_before, (ho, wo)):
        count = (rows.stop - rows.start) * (cols.stop - cols.start)
        dx[:, rows, cols] += np.asarray(grad, dtype=np.float64)[:, oy, ox][:, None, None] / count
    return dx


# ---- float products in a fixed order ------------------------------------------------------------


def ordered_matmul(x, wt):
    """x @ wt with every output summed over k in ascending order, one term at a time."""
    out = np.zeros((x.shape[0], wt.shape[1]), dtype=x.dtype)
    for k in range(x.shape[1]):
        out += x[:, k : k + 1] * wt[k : k + 1, :]
    return out


# ---- popcount probe -----------------------------------------------------------------------------


def xor_popcount_chains(iterations, starts):
    """The probe's chains step by step: v <- v XOR s, s <- s + popcount(v); the sum of all lanes of s."""
    values = starts.copy()
    sums = np.zeros_like(values)
    with np.errstate(over="ignore"):
        for _ in range(iterations):
            values ^= sums
            sums += np.bitwise_count(values).astype(np.uint64)
    return int(sums.sum(dtype=np.uint64).astype(np.int64))


# ---- packing through thresholds -----------------------------------------------------------------


def pack_grouped(bits, groups):
    """bits [..., C] booleans -> each group's C/groups bits packed on their own (bit 1 = True)."""
    parts = np.split(np.where(bits, -1.0, 1.0), groups, axis=-1)
    return np.concatenate([pack_bits(part) for part in parts], axis=-1)


def pack_below(x, thresholds, groups):
    """Bit = x[r, c] < thresholds[c], packed per group."""
    return pack_grouped(x < thresholds, groups)


def pack_acc_below(acc, thresholds, flip, groups):
    """Bit = (acc[r, c] < thresholds[c]) XOR flip[c], packed per group."""
    return pack_grouped((acc < thresholds) != flip, groups)


def gather_pack(x, index, shift, fill, thresholds, groups):
    """:func:`pack_below` of the rearranged rows (index [rows, C]), ``shift`` [source channels] (or
    empty: none) of each moved element's source channel added in float32."""
    source = np.maximum(index, 0)
    moved = (x[:, source] + shift[source % shift.size]).astype(np.float32) if shift.size else x[:, source]
    values = np.where(index >= 0, moved, fill[np.maximum(-1 - index, 0)] if fill.size else 0)
    return pack_below(values.reshape(-1, index.shape[-1]), thresholds, groups)


# ---- per-channel float32 steps ------------------------------------------------------------------

# Step codes of numbnn.kernels.steps, in order.
STEP_CODES = ["mul", "add", "sub", "rsub", "div", "rdiv", "affine", "dprelu", "relu", "hard_sigmoid", "fake_quant",
              "sign", "neg", "add_input", "sub_input", "rsub_input", "mul_input", "add_padded_input", "add_mean_input"]
STEP_ROWS = {"affine": 2, "dprelu": 4, "fake_quant": 3, "mul": 1, "add": 1, "sub": 1, "rsub": 1, "div": 1, "rdiv": 1}


def squeeze_excite_gate(x, program_1, wt_1, bias_1, program_2, wt_2, bias_2, program_3):
    """Per image: steps_3(ordered_matmul(steps_2(ordered_matmul(steps_1(spatial_mean(x)), wt_1) + bias_1), wt_2)
    + bias_2), each program (codes, first rows, params) as run_steps takes it, a bias None when absent."""
    no_other = np.zeros((1, 1), np.float32)
    values = run_steps(*program_1, spatial_mean(x), no_other, len(x))
    values = ordered_matmul(values, wt_1) + (0 if bias_1 is None else bias_1)
    values = run_steps(*program_2, values.astype(np.float32), no_other, len(x))
    values = ordered_matmul(values, wt_2) + (0 if bias_2 is None else bias_2)
    return run_steps(*program_3, values.astype(np.float32), no_other, len(x))


def run_steps(codes, first_rows, params, x, other, other_div):
    """Each step as one numpy float32 ufunc over the whole [R, C] array, one after the other; row r,
    channel c of ``other`` [R', Co] is other[r // other_div, c % Co], or for add_padded_input
    other[r // other_div, c] zero-padded to C channels."""
    y = np.asarray(x).astype(np.float32)
    rows, channels = y.shape
    width = other.shape[1]
    o = np.tile(other[np.arange(rows) // other_div], (1, channels // width)) if rows and channels % width == 0 else None
    padded = np.zeros((rows, channels), np.float32)
    if width <= channels:
        padded[:, :width] = other[np.arange(rows) // other_div]
    with np.errstate(all="ignore"):
        for code, first in zip(codes, first_rows):
            p = params[first:]
            name = STEP_CODES[code]
            if name == "mul":
                y = y * p[0]
            elif name == "add":
                y = y + p[0]
            elif name == "sub":
                y = y - p[0]
            elif name == "rsub":
                y = p[0] - y
            elif name == "div":
                y = y / p[0]
            elif name == "rdiv":
                y = p[0] / y
            elif name == "affine":
                y = y * p[0] + p[1]
            elif name == "dprelu":
                u = y - p[0]
                y = np.where(u >= 0, p[1], p[2]) * u - p[3]
            elif name == "relu":
                y = y * (y > 0)
            elif name == "hard_sigmoid":
                y = np.clip(y + np.float32(3), np.float32(0), np.float32(6)) / np.float32(6)
            elif name == "fake_quant":
                y = np.rint(np.clip(y, p[0], p[1]) / p[2]) * p[2]
            elif name == "sign":
                y = np.where(y < 0, np.float32(-1), np.float32(1))
            elif name == "neg":
                y = -y
            elif name == "add_input":
                y = y + o
            elif name == "sub_input":
                y = y - o
            elif name == "rsub_input":
                y = o - y
            elif name == "mul_input":
                y = y * o
            elif name == "add_padded_input":
                y = y + padded
            elif name == "add_mean_input":  # numpy's float32 mean over each group of width // C channels
                groups = other[np.arange(rows) // other_div].reshape(rows, channels, width // channels)
                y = y + groups.mean(axis=-1, dtype=np.float32)
    return y


# ---- depthwise convolution ----------------------------------------------------------------------


def depthwise_conv2d(x, w, stride=1, padding=0, dilation=1):
    """out[..., c*m + j] = 0 + x tap * w[c*m + j, tap] over taps in row-major order, each product and sum
    rounded to x's type (zero padding): one numpy multiply-add per tap."""
    (sh, sw), (ph, pw), (dh, dw) = map(pair, (stride, padding, dilation))
    n, h, width, c = x.shape
    o, kh, kw, _ = w.shape
    ho, wo = out_size(h, kh, sh, ph, dh), out_size(width, kw, sw, pw, dw)
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    taps = np.repeat(xp, o // c, axis=3)  # input channel c feeds outputs c*m .. c*m + m-1
    out = np.zeros((n, ho, wo, o), x.dtype)
    for i in range(kh):
        for k in range(kw):
            window = taps[:, i * dh : i * dh + sh * (ho - 1) + 1 : sh, k * dw : k * dw + sw * (wo - 1) + 1 : sw]
            out = out + window * w[:, i, k, 0]
    return out


def stem_conv2d_steps(x, w, stride, padding, dilation, codes, first_rows, params):
    """The 1-channel stem convolution, then the steps (none reading a second input) over its output rows."""
    y = depthwise_conv2d(x, w, stride, padding, dilation)
    rows = y.reshape(-1, y.shape[-1])
    return run_steps(codes, first_rows, params, rows, np.zeros((1, 1), np.float32), max(1, len(rows))).reshape(y.shape)


def repeat_channels(x, m):
    """x [..., C] with channel c repeated m times as channels c*m .. c*m + m-1."""
    return np.repeat(x, m, axis=-1)


def depthwise_conv2d_grads(x, w, grad, stride=1, padding=0, dilation=1):
    """(dx, dw) of :func:`depthwise_conv2d`: the adjoint of each tap's strided window, one numpy pass per tap."""
    (sh, sw), (ph, pw), (dh, dw) = map(pair, (stride, padding, dilation))
    n, h, width, c = x.shape
    o, kh, kw, _ = w.shape
    m = o // c
    ho, wo = grad.shape[1:3]
    xp = np.repeat(np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0))), m, axis=3)
    dxp = np.zeros(xp.shape, x.dtype)
    dw_ = np.zeros(w.shape, x.dtype)
    for i in range(kh):
        for k in range(kw):
            rows = slice(i * dh, i * dh + sh * (ho - 1) + 1, sh)
            cols = slice(k * dw, k * dw + sw * (wo - 1) + 1, sw)
            dxp[:, rows, cols] += grad * w[:, i, k, 0]
            dw_[:, i, k, 0] = (xp[:, rows, cols] * grad).sum(axis=(0, 1, 2))
    dx = dxp[:, ph : ph + h, pw : pw + width].reshape(n, h, width, c, m).sum(axis=4)
    return dx, dw_


# ---- padding correction of binary convolutions --------------------------------------------------


def border_corrections(h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, wsum, pad_value):
    """[Ho*Wo, O] int64: (pad_value - 1) * the sum of wsum[:, tap] over each output pixel's padding taps."""
    correction = np.zeros((ho * wo, wsum.shape[0]), np.int64)
    for oy, ox, tap in padding_taps(h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo):
        correction[oy * wo + ox] += (pad_value - 1) * wsum[:, tap]
    return correction


# ---- tree ensembles -----------------------------------------------------------------------------


def decode_pre_order(feature, tree_start):
    """right[i] of every split (-1 for leaves) by recursion over each tree, or None if malformed."""
    right = np.full(len(feature), -1, np.int64)

    def subtree_end(node, end):
        if node >= end:
            raise ValueError
        if feature[node] < 0:
            return node + 1
        right[node] = subtree_end(node + 1, end)
        return subtree_end(right[node], end)

    try:
        for t in range(len(tree_start) - 1):
            if subtree_end(tree_start[t], tree_start[t + 1]) != tree_start[t + 1]:
                return None
    except ValueError:
        return None
    return right


def tree_margins(x, feature, value, default_left, right, tree_start, tree_class, leaf_vectors, base):
    """base + each tree's leaf for each row, added in tree order in float32: a class tree's leaf value to
    its class, a vector tree's (class -1) leaf vector to every class. Vector leaves are rows of
    ``leaf_vectors`` counted in node order over the vector trees' leaves."""
    out = np.tile(base, (len(x), 1)).astype(np.float32)
    vector_leaves = [node for t in range(len(tree_class)) if tree_class[t] < 0
                     for node in range(tree_start[t], tree_start[t + 1]) if feature[node] < 0]
    for r in range(len(x)):
        for t in range(len(tree_class)):
            node = tree_start[t]
            while feature[node] >= 0:
                v = x[r, feature[node]]
                node = node + 1 if (default_left[node] if np.isnan(v) else v < value[node]) else right[node]
            if tree_class[t] >= 0:
                out[r, tree_class[t]] = np.float32(out[r, tree_class[t]] + value[node])
            else:
                for k in range(len(base)):
                    out[r, k] = np.float32(out[r, k] + leaf_vectors[vector_leaves.index(node), k])
    return out


# ---- element-wise and per-channel kernels (activations, channels, norm, optim) ------------------


def sign(x):
    """-1 where x < 0, else +1, in x's dtype."""
    return np.where(x < 0, -1.0, 1.0).astype(x.dtype)


def negative_counts(x):
    """Per column of x [R, C], the number of entries < 0 (int64)."""
    return (x < 0).sum(axis=0).astype(np.int64)


def ste_grad(grad, x, clip):
    """The straight-through gradient: grad where |x| <= clip, else 0."""
    return grad * (np.abs(x) <= clip)


def scaled_sign_rows(w, scale):
    """scale[o] * sign(w[o, k]) for a [O, K] weight matrix."""
    return (sign(w) * scale[:, None]).astype(w.dtype)


def scaled_ste_grad_rows(grad, w, scale, clip):
    """grad[o, k] * scale[o] where |w[o, k]| <= clip, else 0."""
    return np.where(np.abs(w) <= clip, grad * scale[:, None], 0).astype(grad.dtype)


def approx_sign_grad(grad, x):
    """ApproxSign's gradient grad * max(0, 2 - 2|x|), computed in float64 and rounded once."""
    return (grad.astype(np.float64) * np.maximum(0, 2 - 2 * np.abs(x.astype(np.float64)))).astype(x.dtype)


def approx_sign_grad_shifted_sums(grad, x, shift, pending=None):
    """(t + pending, the per-channel float64 sum of t) for t = ApproxSign's gradient at x + shift; t without pending."""
    t = approx_sign_grad(grad, x + shift)
    return (t if pending is None else t + pending), t.astype(np.float64).sum(axis=0)


def approx_sign_grad_unshuffled(grad, x, groups, pending=None):
    """x's gradient when the conv read x's channels shuffled in ``groups``: ApproxSign's gradient at the shuffled
    values, shuffled back, plus ``pending``."""
    t = shuffle_columns(approx_sign_grad(grad, x), groups, inverse=True)
    return t if pending is None else t + pending


def dprelu_forward(x, pos, neg, shift_x, shift_y):
    """(pos if u >= 0 else neg) * u - shift_y with u = x - shift_x, per channel."""
    u = x - shift_x
    return np.where(u >= 0, pos, neg) * u - shift_y


def dprelu_backward(g, x, pos, neg, shift_x):
    """(dx, [d pos, d neg, d shift_x (negated), d shift_y (negated)] per channel) of :func:`dprelu_forward`,
    the parameter sums in float64."""
    u = x - shift_x
    dx = g * np.where(u >= 0, pos, neg)
    g64, u64 = g.astype(np.float64), x.astype(np.float64) - shift_x
    slope = np.where(u64 >= 0, pos, neg).astype(np.float64)
    return dx, [(g64 * u64 * (u64 >= 0)).sum(0), (g64 * u64 * (u64 < 0)).sum(0), (g64 * slope).sum(0), g64.sum(0)]


def add(a, b):
    return a + b


def add_channels(x, v):
    """x [rows, C] + v [C] broadcast over the rows."""
    return x + v


def add_maps(a, b):
    """a + b."""
    return a + b


def scale_columns(acc, scale, dtype):
    """int32 acc [rows, C] cast to ``dtype``, times scale [C]."""
    return acc.astype(dtype) * scale


def as_floats(acc, dtype):
    """int32 acc cast to ``dtype``."""
    return acc.astype(dtype)


def copy_columns(source, target, first):
    """target with source written into columns first .. first + source.shape[1] - 1."""
    target = target.copy()
    target[:, first : first + source.shape[1]] = source
    return target


def take_columns(source, first, width):
    return np.ascontiguousarray(source[:, first : first + width])


def sum_column_blocks(source, width, pending=None):
    """The sum of source's column blocks of ``width``, left to right (after ``pending``), rounded at each add."""
    total = source[:, :width].copy() if pending is None else pending + source[:, :width]
    for first in range(width, source.shape[1], width):
        total = total + source[:, first : first + width]
    return total


def roll_pixels(x, shift_h, shift_w):
    """np.roll of NHWC x over its rows and columns."""
    return np.roll(x, (shift_h, shift_w), axis=(1, 2))


def space_to_depth(x, block):
    """TensorFlow's NHWC space_to_depth by reshape and transpose."""
    n, h, w, c = x.shape
    return x.reshape(n, h // block, block, w // block, block, c).transpose(0, 1, 3, 2, 4, 5) \
        .reshape(n, h // block, w // block, block * block * c)


def depth_to_space(x, block):
    """The inverse of :func:`space_to_depth` (DCR order) by reshape and transpose."""
    n, h, w, c = x.shape
    return x.reshape(n, h, w, block, block, c // (block * block)).transpose(0, 1, 3, 2, 4, 5) \
        .reshape(n, h * block, w * block, c // (block * block))


def shuffle_columns(source, groups, inverse=False):
    """ShuffleNet's channel shuffle as numpy's reshape-transpose-reshape ([G, C/G] -> [C/G, G]), or its inverse."""
    rows, c = source.shape
    if inverse:
        return source.reshape(rows, c // groups, groups).transpose(0, 2, 1).reshape(rows, c)
    return source.reshape(rows, groups, c // groups).transpose(0, 2, 1).reshape(rows, c)


def gate_channels(x, gate):
    """x [N, P, C] times gate [N, C] broadcast over the pixels."""
    return x * gate[:, None, :]


def gate_channels_grads(g, x, gate):
    """(g * gate, sum over pixels of the float32 products g * x, in float64, cast to x's dtype)."""
    return g * gate[:, None, :], (g * x).astype(np.float64).sum(axis=1).astype(x.dtype)


def spread_last_axis(values, k):
    return np.repeat(values[..., None], k, axis=-1)


def chunk_total(partial):
    """Sum over axis -2, chunk 0 first, one add at a time."""
    total = partial[..., 0, :].copy()
    for k in range(1, partial.shape[-2]):
        total = total + partial[..., k, :]
    return total


def chunk_sums(x, center, squared):
    """Per channel, sum over rows of (x - center), or of its square, in float64."""
    d = x.astype(np.float64) - center
    return (d * d if squared else d).sum(axis=0)


def chunk_moments(x, center):
    """(sum of x - center, sum of (x - center)^2) per channel, in float64."""
    d = x.astype(np.float64) - center
    return d.sum(axis=0), (d * d).sum(axis=0)


def affine(x, scale, shift):
    return x * scale + shift


def affine2(g, x, a, b, shift):
    return a * g + b * x + shift


def grad_sums(g, x, center):
    """(sum g, sum g * (x - center)) per channel, in float64."""
    g64 = g.astype(np.float64)
    return g64.sum(axis=0), (g64 * (x.astype(np.float64) - center)).sum(axis=0)


def bn_add_dprelu(x, r, scale, shift, pos, neg, shift_x, shift_y, add_after=False):
    """DPReLU(x * scale + shift + r), or DPReLU(x * scale + shift) + r with ``add_after``: the affine, the
    residual add and the DPReLU one after the other, as numpy arrays in x's dtype (each step rounded as the
    unfused chain rounds it)."""
    if add_after:
        return dprelu_forward(affine(x, scale, shift), pos, neg, shift_x, shift_y) + r
    return dprelu_forward(affine(x, scale, shift) + r, pos, neg, shift_x, shift_y)


def bn_add_dprelu_grad_sums(g, x, r, scale, shift, pos, neg, shift_x, mean, add_after=False):
    """(h, [sum g*u*(u>=0), sum g*u*(u<0), sum h, sum g, sum h * (x - mean)]) of :func:`bn_add_dprelu`:
    h = g * slope(u) in x's dtype, the sums in float64 (g*u rounded to x's dtype first, as the kernel)."""
    u = affine(x, scale, shift) - shift_x if add_after else affine(x, scale, shift) + r - shift_x
    h = g * np.where(u >= 0, pos, neg)
    gu = (g * u).astype(np.float64)
    h64 = h.astype(np.float64)
    sums = [np.where(u >= 0, gu, 0.0).sum(0), np.where(u < 0, gu, 0.0).sum(0), h64.sum(0),
            g.astype(np.float64).sum(0), (h64 * (x.astype(np.float64) - mean)).sum(0)]
    return h, sums


def adam_step(data, grad, exp_avg, exp_avg_sq, shrink, l2, beta1, beta2, step_size, bias2_root, eps):
    """(data, exp_avg, exp_avg_sq) after one Adam/AdamW step, in float64."""
    w = data.astype(np.float64) * shrink
    d = grad + l2 * w
    m = beta1 * exp_avg + (1 - beta1) * d
    v = beta2 * exp_avg_sq + (1 - beta2) * d * d
    return w - step_size * m / (np.sqrt(v) / bias2_root + eps), m, v
