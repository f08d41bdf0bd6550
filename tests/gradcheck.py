"""Float64 central-difference gradient checker for numbnn ops.

``check_gradients(fn, *inputs)`` projects the output onto a fixed random tensor R, so the checked
scalar is L = sum(fn(*inputs) * R), and compares autograd's dL/d(input) with
(L(x + eps*e) - L(x - eps*e)) / (2 eps). Small inputs are checked entry by entry (every column of
the Jacobian-vector product); larger ones along a few random unit directions v, comparing
<grad, v> with the directional difference. Everything runs in float64.
"""

import numpy as np

from numbnn.autograd import Tensor


def check_gradients(fn, *inputs, eps=1e-6, atol=1e-6, rtol=1e-5, max_full=400, n_directions=6, seed=0):
    """Assert autograd's gradient of ``fn`` matches central differences for every float input.

    ``inputs`` are float64 arrays (checked) or other objects (passed through unchanged).
    ``fn`` takes the same positional arguments with arrays replaced by Tensors and returns a Tensor.
    """
    rng = np.random.default_rng(seed)
    arrays = [np.array(a, dtype=np.float64) if _is_float_array(a) else a for a in inputs]
    checked = [i for i, a in enumerate(arrays) if _is_float_array(a)]
    projection = None

    def loss(values) -> float:
        out = fn(*[Tensor(v) if i in checked else v for i, v in enumerate(values)])
        return float(np.sum(out.data * projection))

    tensors = [Tensor(a, requires_grad=True) if i in checked else a for i, a in enumerate(arrays)]
    out = fn(*tensors)
    assert out.dtype == np.float64, f"op returned {out.dtype} for float64 inputs"
    projection = rng.standard_normal(out.shape)
    out.backward(projection)

    for i in checked:
        analytic = tensors[i].grad
        assert analytic is not None, f"input {i} received no gradient"
        assert analytic.shape == arrays[i].shape and analytic.dtype == np.float64
        if arrays[i].size <= max_full:
            directions = [_unit(arrays[i].shape, k) for k in range(arrays[i].size)]
        else:
            directions = [rng.standard_normal(arrays[i].shape) for _ in range(n_directions)]
        for v in directions:
            plus = list(arrays)
            minus = list(arrays)
            plus[i] = arrays[i] + eps * v
            minus[i] = arrays[i] - eps * v
            numeric = (loss(plus) - loss(minus)) / (2 * eps)
            predicted = float(np.sum(analytic * v))
            tol = atol + rtol * max(abs(numeric), abs(predicted), 1.0) * (1 if arrays[i].size <= max_full else 10)
            assert abs(numeric - predicted) <= tol, (
                f"input {i}: autograd gives {predicted:.10g}, finite differences {numeric:.10g}"
            )


def _unit(shape, k):
    v = np.zeros(int(np.prod(shape)))
    v[k] = 1.0
    return v.reshape(shape)


def _is_float_array(a) -> bool:
    return isinstance(a, np.ndarray) and a.dtype.kind == "f"
