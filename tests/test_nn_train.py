"""End to end: a small network with a binary convolution learns a synthetic task with Adam."""

import numpy as np

import numbnn.functional as F
import numbnn.nn as nn
from numbnn.autograd import Tensor
from numbnn.optim import Adam, Scheduler, linear_to_zero, split_decay


def bars(n, rng):
    """8x8 one-channel images of a horizontal (0), vertical (1) or diagonal (2) bar at a random offset, plus noise."""
    x = rng.normal(scale=0.3, size=(n, 8, 8, 1)).astype(np.float32)
    labels = rng.integers(0, 3, size=n)
    offsets = rng.integers(0, 8, size=n)
    for i, (label, k) in enumerate(zip(labels, offsets)):
        if label == 0:
            x[i, k, :, 0] += 1.5
        elif label == 1:
            x[i, :, k, 0] += 1.5
        else:
            x[i, np.arange(8), (np.arange(8) + k) % 8, 0] += 1.5
    return x, labels


class TinyBNN(nn.Module):
    """float conv -> binary conv (packed forward, STE backward) -> float classifier."""

    def __init__(self, rng):
        self.stem = nn.Conv2d(1, 8, 3, padding=1, rng=rng)
        self.stem_bn = nn.BatchNorm(8)
        self.rsign = nn.RSign(8)  # ReActNet's RSign; the binary conv takes its sign
        self.binary = nn.BinaryConv2d(8, 16, 3, stride=2, padding=1, rng=rng)
        self.binary_bn = nn.BatchNorm(16)
        self.act = nn.RPReLU(16)
        self.pool = nn.GlobalAvgPool()
        self.head = nn.Linear(16, 3, rng=rng)

    def forward(self, x):
        x = self.stem_bn(self.stem(x))
        x = self.act(self.binary_bn(self.binary(self.rsign.before_sign(x))))
        return self.head(self.pool(x))


def test_tiny_bnn_learns_with_adam():
    rng = np.random.default_rng(0)
    x, labels = bars(96, rng)
    model = TinyBNN(np.random.default_rng(1))
    optimizer = Adam(split_decay(model.named_parameters(), 1e-5, "conv_only"), lr=0.02)
    steps = 50
    scheduler = Scheduler(optimizer, linear_to_zero(steps))
    weights_before = model.binary.weight.data.copy()
    losses = []
    for step in range(steps):
        batch = rng.choice(96, size=32, replace=False)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(Tensor(x[batch])), labels[batch])
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())

    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert first > 0.9  # about log(3) at the start
    assert last < 0.4 * first, (first, last)
    assert np.mean(np.sign(model.binary.weight.data) != np.sign(weights_before)) > 0  # binary weights flipped
    model.eval()
    x_test, y_test = bars(200, np.random.default_rng(7))
    accuracy = np.mean(model(Tensor(x_test)).data.argmax(axis=1) == y_test)
    assert accuracy > 0.85, accuracy
