"""numbnn.datasets: IDX parsing and writing, the shipped FashionMNIST, lookup order, verified downloads."""

import gzip
import hashlib
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numbnn.datasets.download as download_module
import numbnn.datasets.fashion as fashion
from numbnn.datasets import (
    FASHION_MNIST_MANIFEST,
    clear_cache,
    fashion_mnist,
    find_fashion_mnist,
    load_idx_dataset,
    parse_idx,
    read_idx,
    write_idx,
)
from numbnn.errors import ChecksumError, DatasetNotFoundError, DataError, InputError

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "fashion-mnist"
TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No repo data, no system data, an empty cache, no $NUMBNN_DATA: only what a test puts there."""
    monkeypatch.setattr(fashion, "REPO_DATA_DIR", tmp_path / "repo-data")
    monkeypatch.setattr(fashion, "SYSTEM_DATA_DIR", tmp_path / "system-data")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NUMBNN_DATA", raising=False)
    monkeypatch.delenv("NUMBNN_DATA_MIRROR", raising=False)
    return tmp_path


def copy_test_split(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in TEST_FILES:
        shutil.copy(SHIPPED / name, directory / name)
    return directory


def write_wrong_test_split(directory: Path) -> None:
    """Well-formed IDX files with FashionMNIST's names and shapes but other content."""
    directory.mkdir(parents=True, exist_ok=True)
    write_idx(directory / "t10k-images-idx3-ubyte.gz", np.zeros((10000, 28, 28), np.uint8))
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", np.zeros(10000, np.uint8))


def idx_bytes(code: int, shape, payload: bytes) -> bytes:
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload


# -- the shipped files ----------------------------------------------------------------------------------


def test_shipped_train_split_shapes_labels_and_checksums():
    images, labels = fashion_mnist("train", data_dir=SHIPPED.parent, download=False)
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels.dtype == np.uint8
    assert set(np.unique(labels)) == set(range(10))
    assert np.bincount(labels).tolist() == [6000] * 10  # FashionMNIST is balanced
    assert not images.flags.writeable  # shared cached array


def test_shipped_test_split_and_cache_returns_same_arrays():
    images, labels = fashion_mnist("test", data_dir=SHIPPED, download=False)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert np.bincount(labels).tolist() == [1000] * 10
    again = fashion_mnist("test", data_dir=SHIPPED, download=False)
    assert again[0] is images and again[1] is labels


def test_shipped_files_match_manifest_json_and_package_manifest():
    manifest = json.loads((SHIPPED / "MANIFEST.json").read_text())
    assert set(manifest["files"]) == set(FASHION_MNIST_MANIFEST)
    for name, record in manifest["files"].items():
        entry = FASHION_MNIST_MANIFEST[name]
        raw = (SHIPPED / name).read_bytes()
        assert len(raw) == record["size"] == entry.size
        assert hashlib.sha256(raw).hexdigest() == record["sha256"] == entry.sha256
        content = gzip.decompress(raw)
        assert len(content) == record["content_size"]
        assert hashlib.sha256(content).hexdigest() == record["content_sha256"] == entry.content_sha256
        assert record["url"] == entry.url
        assert (record["upstream_sha256"], record["upstream_size"]) == (entry.upstream_sha256, entry.upstream_size)
    assert "Zalando SE" in (SHIPPED / "LICENSE").read_text()


@pytest.mark.parametrize("name,mtime", [
    ("train-labels-idx1-ubyte.gz", 1504176606),
    ("t10k-labels-idx1-ubyte.gz", 1504176627),
    ("t10k-images-idx3-ubyte.gz", 1504176627),
])
def test_upstream_checksums_follow_from_shipped_deflate_stream(name, mtime):
    """The manifest's claim: upstream's file is ours with the original gzip header (name + mtime) restored."""
    raw = (SHIPPED / name).read_bytes()
    stem = name.removesuffix(".gz").encode()
    upstream = b"\x1f\x8b\x08\x08" + struct.pack("<I", mtime) + b"\x00\x03" + stem + b"\x00" + raw[10:]
    record = json.loads((SHIPPED / "MANIFEST.json").read_text())["files"][name]
    assert hashlib.md5(upstream).hexdigest() == record["upstream_md5"]
    assert hashlib.sha256(upstream).hexdigest() == record["upstream_sha256"]
    assert len(upstream) == record["upstream_size"]


# -- IDX round trips and exact layout ----------------------------------------------------------------------


@settings(max_examples=25)
@given(
    dtype=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(0, 5), min_size=1, max_size=4),
    compress=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_write_read_round_trip(tmp_path_factory, dtype, shape, compress, seed):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        array = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    else:
        array = (rng.standard_normal(shape) * 1e3).astype(dtype)
    path = tmp_path_factory.mktemp("idx") / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == tuple(shape)
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable
    np.testing.assert_array_equal(parse_idx(path.read_bytes()), array)


def test_write_idx_exact_big_endian_layout(tmp_path):
    path = write_idx(tmp_path / "x", np.array([[1, -2], [258, 4]], dtype=np.int16))
    assert path.read_bytes() == idx_bytes(0x0B, (2, 2), bytes.fromhex("0001fffe01020004"))
    assert [p.name for p in tmp_path.iterdir()] == ["x"]  # no temporary left behind


def test_write_idx_gz_is_reproducible(tmp_path):
    array = np.arange(100, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


@pytest.mark.parametrize("array", [np.zeros(3, bool), np.zeros(3, np.int64), np.zeros(3, np.uint16),
                                   np.zeros(3, np.complex64), np.array(5, np.uint8)])
def test_write_idx_rejects_unstorable_arrays(tmp_path, array):
    with pytest.raises(InputError, match="array"):
        write_idx(tmp_path / "x", array)
    assert list(tmp_path.iterdir()) == []


def test_write_idx_into_missing_directory(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        write_idx(tmp_path / "nope" / "x", np.zeros(2, np.uint8))


# -- hostile IDX files ---------------------------------------------------------------------------------------

GOOD = idx_bytes(0x08, (2, 3), bytes(range(6)))


@pytest.mark.parametrize("data,message", [
    (b"", "shorter than the 4-byte magic"),
    (b"\x00\x00", "shorter than the 4-byte magic"),
    (b"\x01" + GOOD[1:], "does not start with 0000"),
    (b"PK\x03\x04" + GOOD[4:], "does not start with 0000"),
    (GOOD[:2] + b"\x07" + GOOD[3:], "unknown IDX element type 0x07"),
    (GOOD[:3] + b"\x00" + GOOD[4:], "0 dimensions"),
    (GOOD[:3] + b"\x05" + GOOD[4:], None),  # 5 dims declared: header eats the data, then too short
    (GOOD[:6], "truncated IDX header"),
    (GOOD[:12], "truncated IDX data"),
    (GOOD[:-1], "needs 6 bytes, found 5"),
    (GOOD + b"\x00", "unexpected bytes after"),
    (idx_bytes(0x08, (2**32 - 1, 2**32 - 1), b"\x00" * 10), "truncated IDX data"),  # huge claim, no huge alloc
])
@pytest.mark.parametrize("compress", [False, True])
def test_malformed_idx_is_a_data_error_naming_the_file(tmp_path, data, message, compress):
    path = tmp_path / ("bad.gz" if compress else "bad")
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(DataError, match=message) as caught:
        read_idx(path)
    assert str(path) in str(caught.value)


def test_wrong_dims_for_the_data_length(tmp_path):
    path = tmp_path / "wrong-dims"
    path.write_bytes(idx_bytes(0x08, (3, 3), bytes(range(6))))  # 9 declared, 6 present
    with pytest.raises(DataError, match=r"shape \(3, 3\)"):
        read_idx(path)


def test_corrupt_and_truncated_gzip_streams(tmp_path):
    compressed = gzip.compress(idx_bytes(0x08, (100, 100), bytes(10000)))
    for offset in (3, 11, len(compressed) // 2, len(compressed) - 4):
        path = tmp_path / f"cut{offset}.gz"
        path.write_bytes(compressed[:offset])
        with pytest.raises(DataError, match="corrupt or truncated gzip"):
            read_idx(path)
    flipped = bytearray(compressed)
    flipped[-6] ^= 0xFF  # the CRC32 trailer: the data decompresses but fails its check
    (tmp_path / "crc.gz").write_bytes(bytes(flipped))
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        read_idx(tmp_path / "crc.gz")


def test_missing_idx_file(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="no such IDX file"):
        read_idx(tmp_path / "nope")


# -- generic IDX directories ------------------------------------------------------------------------------


def test_mnist_like_directory_with_custom_prefixes(tmp_path):
    images = np.arange(5 * 4 * 4, dtype=np.uint8).reshape(5, 4, 4)
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    write_idx(tmp_path / "emnist-digits-test-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "emnist-digits-test-labels-idx1-ubyte", labels)
    got_images, got_labels = load_idx_dataset(tmp_path, "test", prefix_test="emnist-digits-test")
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    with pytest.raises(DatasetNotFoundError, match="no train split"):
        load_idx_dataset(tmp_path, "train")


def test_dotted_names_and_raw_preferred_over_gz(tmp_path):
    write_idx(tmp_path / "train-images.idx3-ubyte", np.ones((2, 2, 2), np.uint8))
    write_idx(tmp_path / "train-labels.idx1-ubyte", np.zeros(2, np.uint8))
    write_idx(tmp_path / "train-labels.idx1-ubyte.gz", np.zeros(7, np.uint8))  # ignored: raw copy exists
    images, labels = load_idx_dataset(tmp_path, "train")
    assert images.shape == (2, 2, 2) and labels.shape == (2,)


def test_count_mismatch_and_label_rank_are_data_errors(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 2, 2), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(DataError, match="4 images .* but 3 labels"):
        load_idx_dataset(tmp_path, "train")
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros((4, 1), np.uint8))
    with pytest.raises(DataError, match="one dimension"):
        load_idx_dataset(tmp_path, "train")


def test_changed_file_is_read_again(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 2, 2), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(2, np.uint8))
    first = load_idx_dataset(tmp_path, "train")[1]
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([7, 7, 7], np.uint8))  # new size and mtime
    with pytest.raises(DataError, match="but 3 labels"):
        load_idx_dataset(tmp_path, "train")
    assert first.tolist() == [0, 0]


@pytest.mark.parametrize("split", ["val", "Train", 1, None])
def test_bad_split_is_an_input_error(split):
    with pytest.raises(InputError, match="split"):
        fashion_mnist(split, data_dir=SHIPPED)
    with pytest.raises(InputError, match="split"):
        load_idx_dataset(SHIPPED, split)


# -- FashionMNIST verification and lookup order ------------------------------------------------------------


def test_checksum_mismatch_on_disk(tmp_path):
    write_wrong_test_split(tmp_path)
    with pytest.raises(ChecksumError, match="t10k-images-idx3-ubyte.gz: sha256 of the uncompressed data"):
        fashion_mnist("test", data_dir=tmp_path)


def test_checksum_is_over_content_so_uncompressed_copies_load(tmp_path):
    for name in TEST_FILES:
        (tmp_path / name.removesuffix(".gz")).write_bytes(gzip.decompress((SHIPPED / name).read_bytes()))
    images, labels = fashion_mnist("test", data_dir=tmp_path)
    reference = fashion_mnist("test", data_dir=SHIPPED)
    np.testing.assert_array_equal(images, reference[0])
    np.testing.assert_array_equal(labels, reference[1])


def test_explicit_dir_wins_and_is_strict(isolated, monkeypatch):
    copy_test_split(isolated / "repo-data" / "fashion-mnist")
    mine = copy_test_split(isolated / "mine")  # flat layout
    monkeypatch.setenv("NUMBNN_DATA", str(copy_test_split(isolated / "env")))
    assert find_fashion_mnist("test", isolated / "mine") == mine
    (isolated / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="data_dir: no FashionMNIST test files"):
        fashion_mnist("test", data_dir=isolated / "empty")  # no fallback to env or repo copies


def test_lookup_order_env_repo_system_cache(isolated, monkeypatch):
    assert find_fashion_mnist("test") is None
    cache = copy_test_split(isolated / "cache" / "numbnn" / "fashion-mnist")
    assert find_fashion_mnist("test") == cache
    system = copy_test_split(isolated / "system-data" / "fashion-mnist")
    assert find_fashion_mnist("test") == system
    repo = copy_test_split(isolated / "repo-data" / "fashion-mnist")
    assert find_fashion_mnist("test") == repo
    monkeypatch.setenv("NUMBNN_DATA", str(isolated / "env"))  # set but empty: falls through
    assert find_fashion_mnist("test") == repo
    env = copy_test_split(isolated / "env")
    assert find_fashion_mnist("test") == env
    assert find_fashion_mnist("train") is None  # each split is looked up on its own


def test_env_copy_is_verified_not_skipped(isolated, monkeypatch):
    copy_test_split(isolated / "repo-data")
    write_wrong_test_split(isolated / "env")
    monkeypatch.setenv("NUMBNN_DATA", str(isolated / "env"))
    with pytest.raises(ChecksumError):
        fashion_mnist("test")


def test_nothing_found_without_download(isolated):
    with pytest.raises(DatasetNotFoundError, match="download=False"):
        fashion_mnist("test", download=False)


# -- downloads (no network: file:// mirrors and fake openers) -----------------------------------------------


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*")) if directory.exists() else []


def test_download_from_mirror_into_cache(isolated, monkeypatch):
    mirror = copy_test_split(isolated / "mirror")
    monkeypatch.setenv("NUMBNN_DATA_MIRROR", mirror.as_uri())
    images, labels = fashion_mnist("test", progress=True)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    cache = isolated / "cache" / "numbnn" / "fashion-mnist"
    assert listing(cache) == sorted(TEST_FILES)
    assert find_fashion_mnist("test") == cache


def test_download_with_wrong_content_saves_nothing(isolated, monkeypatch):
    mirror = isolated / "mirror"
    write_wrong_test_split(mirror)
    monkeypatch.setenv("NUMBNN_DATA_MIRROR", mirror.as_uri())
    with pytest.raises(ChecksumError, match="nothing was saved"):
        fashion_mnist("test", progress=False)
    assert listing(isolated / "cache") == ["fashion-mnist", "numbnn"]  # directories only, no files


def test_download_of_missing_url(isolated, monkeypatch):
    monkeypatch.setenv("NUMBNN_DATA_MIRROR", (isolated / "no-such-mirror").as_uri())
    with pytest.raises(DatasetNotFoundError, match="could not download file://"):
        fashion_mnist("test", progress=False)
    assert listing(isolated / "cache") == ["fashion-mnist", "numbnn"]


class BrokenStream:
    """A response that delivers some bytes, then fails the way a dropped connection or Ctrl-C does."""

    def __init__(self, payload: bytes, error: BaseException):
        self.payload, self.error, self.headers = payload, error, {"Content-Length": str(10 * len(payload))}

    def read(self, n):
        if self.payload:
            chunk, self.payload = self.payload[:n], self.payload[n:]
            return chunk
        raise self.error

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("error,expected", [
    (ConnectionResetError("connection reset by peer"), DatasetNotFoundError),
    (TimeoutError("timed out"), DatasetNotFoundError),
    (KeyboardInterrupt(), KeyboardInterrupt),
])
def test_interrupted_download_leaves_no_partial_file(isolated, monkeypatch, error, expected):
    payload = (SHIPPED / TEST_FILES[0]).read_bytes()[:200_000]
    monkeypatch.setattr(download_module, "urlopen", lambda url, timeout: BrokenStream(payload, error))
    with pytest.raises(expected):
        fashion_mnist("test", progress=False)
    assert listing(isolated / "cache") == ["fashion-mnist", "numbnn"]


def test_download_fetches_only_the_missing_file(isolated, monkeypatch):
    cache = isolated / "cache" / "numbnn" / "fashion-mnist"
    cache.mkdir(parents=True)
    shutil.copy(SHIPPED / TEST_FILES[0], cache / TEST_FILES[0])
    requested = []
    real = download_module.urlopen

    def recording(url, timeout):
        requested.append(url.rsplit("/", 1)[-1])
        return real(url, timeout=timeout)

    monkeypatch.setattr(download_module, "urlopen", recording)
    monkeypatch.setenv("NUMBNN_DATA_MIRROR", copy_test_split(isolated / "mirror").as_uri())
    fashion_mnist("test", progress=False)
    assert requested == [TEST_FILES[1]]
