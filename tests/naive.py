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


def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """Receptive field of each output pixel, one row per (n, oy, ox), columns ordered (kh, kw, c)."""
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


def col2im(cols, input_shape, kernel_size, stride=1, padding=0, dilation=1):
    """Scatter-add each column entry onto the input pixel it was read from."""
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
