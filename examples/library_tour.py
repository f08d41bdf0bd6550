"""numbnn as a numpy-level library: pack, convolve, build, train, save, export, predict.

Run it with ``python3 examples/library_tour.py [--limit N]``; CI runs it on a few hundred images
(``tests/test_examples.py``). Everything here is plain numpy in and numpy out.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np

import numbnn
from numbnn.kernels import binary_conv2d, pack_bits, unpack_bits
from numbnn.models import build_model
from numbnn.models.cost import summarize
from numbnn.train import fit, load_split, make_config


def kernels_demo(rng: np.random.Generator) -> None:
    """A +1/-1 convolution on packed bits equals the float convolution of the signs, exactly."""
    x = rng.standard_normal((1, 9, 9, 100)).astype(np.float32)  # NHWC, 100 channels: two words
    w = rng.standard_normal((16, 3, 3, 100)).astype(np.float32)  # OHWI
    acc = binary_conv2d(pack_bits(x), pack_bits(w), in_channels=100, padding=1)  # int32 [1, 9, 9, 16]

    signs_x = unpack_bits(pack_bits(x), 100)  # +1/-1 float32
    signs_w = unpack_bits(pack_bits(w), 100)
    padded = np.pad(signs_x, ((0, 0), (1, 1), (1, 1), (0, 0)))  # zero padding (pad_value=0)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))  # [1,9,9,C,3,3]
    reference = np.einsum("nhwcij,oijc->nhwo", windows, signs_w)
    assert np.array_equal(acc, reference.astype(np.int32))
    print(f"binary_conv2d: {acc.shape} int32, equal to the float reference")


def model_demo(limit: int, workdir: Path) -> None:
    """Train a small BNN briefly, save it, compile it to the packed path and predict."""
    model = build_model("bnn-small")
    report = summarize(model)
    print(f"bnn-small: {report.total.params:,} params, {report.total.bops:,} BOPs, {report.total.ops:,.0f} OPs per image")

    train_set = load_split("train", limit=limit)
    test_images, test_labels = load_split("test", limit=500)
    result = fit(model, make_config("bnn-small", epochs=1), train_set, (test_images, test_labels), progress=False)
    print(f"trained 1 epoch on {limit} images: test accuracy {result.test_accuracy:.3f}")

    checkpoint = workdir / "bnn-small.h5"
    numbnn.save(model, checkpoint)
    restored = numbnn.load(checkpoint)

    packed = numbnn.inference.compile(restored)  # binary layers now run on packed bits only
    packed.save(workdir / "bnn-small.packed.h5")
    packed = numbnn.inference.load(workdir / "bnn-small.packed.h5")
    probabilities = packed.predict_proba(test_images)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == test_labels))
    print(f"packed model: accuracy {accuracy:.3f} on {len(test_labels)} test images")
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=5000, help="training images to use")
    args = parser.parse_args()
    kernels_demo(np.random.default_rng(0))
    with tempfile.TemporaryDirectory() as directory:
        model_demo(args.limit, Path(directory))


if __name__ == "__main__":
    main()
