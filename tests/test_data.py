"""Data: loaders (shapes, shuffling, drop_last), splits, standardisation, and the offline
datasets — digits from scikit-learn's package, MNIST from real IDX/.npz files."""

import gzip
import importlib.util

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.data import DataLoader, DatasetError


def numbered(n, features=3):
    x = np.arange(n * features, dtype=np.float32).reshape(n, features)
    return x, np.arange(n)


def test_batches_have_the_right_shapes_and_cover_the_data_in_order():
    x, y = numbered(10)
    loader = DataLoader(x, y, batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 == len(batches)
    assert [b[0].shape for b in batches] == [(4, 3), (4, 3), (2, 3)]
    assert np.concatenate([b[1].numpy() for b in batches]).tolist() == list(range(10))
    assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.int64


def test_drop_last_drops_the_short_batch():
    loader = DataLoader(*numbered(10), batch_size=4, drop_last=True)
    assert len(loader) == 2 and [b[0].shape[0] for b in loader] == [4, 4]


def test_shuffling_sees_every_sample_once_per_epoch_and_repeats_with_the_seed():
    def epochs(seed):
        loader = DataLoader(*numbered(50), batch_size=8, shuffle=True, seed=seed)
        return [np.concatenate([yb.numpy() for _, yb in loader]) for _ in range(3)]

    first = epochs(seed=3)
    for order in first:
        assert sorted(order.tolist()) == list(range(50))
    assert not np.array_equal(first[0], first[1])  # a new order each epoch
    assert all(np.array_equal(a, b) for a, b in zip(first, epochs(seed=3), strict=True))
    assert not np.array_equal(first[0], epochs(seed=4)[0])


def test_x_and_y_stay_paired_when_shuffled():
    x, y = numbered(20, features=1)
    for xb, yb in DataLoader(x, y, batch_size=6, shuffle=True, seed=0):
        assert xb.numpy()[:, 0].tolist() == yb.numpy().tolist()


def test_batches_live_on_the_loaders_device():
    xb, yb = next(iter(DataLoader(*numbered(6), batch_size=4, device="array_api_strict",
                                  shuffle=True, seed=0)))
    assert xb.device == "array_api_strict" and yb.device == "array_api_strict"


def test_mismatched_lengths_and_bad_batch_sizes_are_errors():
    with pytest.raises(ValueError, match="samples"):
        DataLoader(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(np.zeros((3, 2)), batch_size=0)


@pytest.mark.parametrize("batch_size", [2.5, 4.0, True, "4", None])
def test_a_batch_size_that_is_not_an_integer_is_refused(batch_size):
    """int(2.5) would give batches of 2 without a word; PyTorch refuses floats too."""
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        DataLoader(*numbered(10), batch_size=batch_size)


@pytest.mark.parametrize("x, y", [(np.float32(3.0), None), (5, None),
                                  (np.zeros((4, 2)), np.int64(1))])
def test_a_single_value_instead_of_samples_is_named(x, y):
    """A bare number has no first axis to take samples along: said, naming x or y, not
    an IndexError ('tuple index out of range') from inside the loader."""
    with pytest.raises(ValueError, match=f"{'x' if y is None else 'y'} must hold samples"):
        DataLoader(x, y, batch_size=2)


@pytest.mark.parametrize("seed, error", [(1.5, TypeError), ("a", TypeError),
                                         (-1, ValueError)])
def test_a_seed_that_numpy_cannot_take_is_named(seed, error):
    """NumPy's own message speaks of a SeedSequence's entropy, not of the seed given."""
    with pytest.raises(error, match="seed"):
        DataLoader(*numbered(10), batch_size=2, shuffle=True, seed=seed)
    loader = DataLoader(*numbered(10), batch_size=2, shuffle=True, seed=np.int64(3))
    assert sorted(int(v) for _, yb in loader for v in yb.numpy()) == list(range(10))


def test_a_numpy_integer_batch_size_is_fine():
    loader = DataLoader(*numbered(10), batch_size=np.int64(4))
    assert type(loader.batch_size) is int
    assert [xb.shape[0] for xb, _ in loader] == [4, 4, 2]


def test_a_split_is_a_disjoint_cover():
    x, y = numbered(100)
    (xt, yt), (xv, yv) = gg.data.train_val_split(x, y, val_fraction=0.25, seed=1)
    assert len(yv) == 25 and len(yt) == 75
    assert sorted(np.concatenate([yt, yv]).tolist()) == list(range(100))
    assert np.array_equal(xt[:, 0], yt * 3)  # rows stay with their labels


@pytest.mark.parametrize("n, val_fraction", [(1, 0.1), (0, 0.1), (10, 0.99)])
def test_a_split_that_leaves_nothing_to_train_on_is_refused(n, val_fraction):
    x, y = numbered(n)
    with pytest.raises(ValueError, match=f"{n} sample.* none is left to train on"):
        gg.data.train_val_split(x, y, val_fraction=val_fraction)


def test_the_smallest_split_keeps_one_sample_on_each_side():
    x, y = numbered(2)
    (xt, yt), (xv, yv) = gg.data.train_val_split(x, y, val_fraction=0.1)
    assert len(yt) == 1 and len(yv) == 1


def test_standardising_uses_the_training_statistics():
    rng = np.random.default_rng(0)
    train = rng.normal(5.0, 3.0, (500, 4)).astype(np.float32)
    test = rng.normal(5.0, 3.0, (100, 4)).astype(np.float32)
    train_s, test_s = gg.data.standardize(train, test)
    np.testing.assert_allclose(train_s.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(train_s.std(axis=0), 1, atol=1e-4)
    np.testing.assert_allclose(test_s, (test - train.mean(0)) / train.std(0), atol=1e-4)
    assert train_s.dtype == np.float32


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                    reason="scikit-learn (which ships the digits) is not installed")
def test_digits_come_from_scikit_learns_package():
    from sklearn.datasets import load_digits as reference

    x, y = gg.data.load_digits()
    ref = reference()
    assert x.shape == (1797, 64) and y.shape == (1797,)
    np.testing.assert_allclose(x, ref.data / 16.0)
    assert np.array_equal(y, ref.target)


def write_idx(path, array, magic, compress=False):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def fake_mnist(folder, compress):
    rng = np.random.default_rng(0)
    data = {}
    for split, n in (("train", 12), ("t10k", 5)):
        images = rng.integers(0, 256, (n, 28, 28))
        labels = rng.integers(0, 10, n)
        write_idx(folder / f"{split}-images-idx3-ubyte", images, 2051, compress)
        write_idx(folder / f"{split}-labels-idx1-ubyte", labels, 2049, compress)
        data[split] = (images, labels)
    return data


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reads_the_standard_idx_files(tmp_path, compress):
    data = fake_mnist(tmp_path, compress)
    (xt, yt), (xs, ys) = gg.data.load_mnist(tmp_path)
    assert xt.shape == (12, 784) and xs.shape == (5, 784) and xt.dtype == np.float32
    np.testing.assert_allclose(xt, data["train"][0].reshape(12, -1) / 255.0)
    assert np.array_equal(ys, data["t10k"][1])


def test_mnist_reads_an_npz(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (4, 28, 28)), "y_train": np.arange(4),
              "x_test": rng.integers(0, 256, (2, 28, 28)), "y_test": np.arange(2)}
    np.savez(tmp_path / "mnist.npz", **arrays)
    (xt, yt), (xs, ys) = gg.data.load_mnist(tmp_path / "mnist.npz")
    assert xt.shape == (4, 784) and ys.tolist() == [0, 1]


def test_mnist_scales_pixels_and_keeps_features_a_user_standardised(tmp_path):
    """8-bit pixels (integers, or floats within [0, 255]) are scaled to [0, 1]; floats
    with negative values (standardised already) are kept as they are."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (4, 28, 28))
    standardised = rng.standard_normal((4, 28, 28)) * 3
    for images, expected in [(pixels, pixels / 255.0),
                             (pixels.astype(np.float64), pixels / 255.0),
                             (standardised, standardised)]:
        np.savez(tmp_path / "mnist.npz", x_train=images, y_train=np.arange(4),
                 x_test=images[:2], y_test=np.arange(2))
        (xt, _), _ = gg.data.load_mnist(tmp_path / "mnist.npz")
        np.testing.assert_allclose(xt, expected.reshape(4, -1).astype(np.float32))


def test_bad_mnist_files_say_what_was_expected(tmp_path):
    with pytest.raises(DatasetError, match="expected a folder"):
        gg.data.load_mnist(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte"):
        gg.data.load_mnist(tmp_path)  # an empty folder
    fake_mnist(tmp_path, compress=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x03rubbish")
    with pytest.raises(DatasetError, match="expected magic number 2049"):
        gg.data.load_mnist(tmp_path)
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((1, 784)))
    with pytest.raises(DatasetError, match="missing y_train"):
        gg.data.load_mnist(tmp_path / "partial.npz")


@pytest.mark.parametrize("content", [b"", b"x_train,y_train\n1,2\n", b"\x80\x04K\x01.",
                                     b"\x93NUMPY\x01\x00"])
def test_a_file_that_is_not_an_npz_is_named_as_such(tmp_path, content):
    """np.load took an empty file for a cut-short one (EOFError), text or a pickle for a
    pickle it may not load (advising to load it unsafely), a .npy for an array."""
    path = tmp_path / "data.npz"
    path.write_bytes(content)
    for load in (gg.data.load_npz, gg.data.load_mnist):
        with pytest.raises(DatasetError, match=r"data.npz: not an .npz archive"):
            load(path)


def test_a_truncated_npz_is_reported(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, x_train=np.ones((4, 3)), y_train=np.arange(4), x_test=np.ones((2, 3)),
             y_test=np.arange(2))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DatasetError, match="data.npz: not a readable .npz file"):
        gg.data.load_npz(path)


@pytest.mark.parametrize("split", ["train", "test"])
def test_an_npz_split_without_samples_is_named(tmp_path, split):
    arrays = {"x_train": np.ones((4, 3)), "y_train": np.arange(4), "x_test": np.ones((2, 3)),
              "y_test": np.arange(2)}
    arrays[f"x_{split}"], arrays[f"y_{split}"] = np.ones((0, 3)), np.arange(0)
    np.savez(tmp_path / "data.npz", **arrays)
    with pytest.raises(DatasetError, match=rf"x_{split} must hold samples .* shape \(0, 3\)"):
        gg.data.load_npz(tmp_path / "data.npz")


def test_a_truncated_idx_file_is_reported(tmp_path):
    fake_mnist(tmp_path, compress=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DatasetError, match="header says"):
        gg.data.load_mnist(tmp_path)


def test_a_feature_constant_in_training_is_only_centred():
    train = np.array([[0.0, 1.0], [0.0, 3.0]], dtype=np.float32)
    val = np.array([[0.5, 2.0]], dtype=np.float32)
    assert gg.data.standardize(train, val)[1].tolist() == [[0.5, 0.0]]


def test_without_a_seed_of_its_own_shuffling_follows_manual_seed():
    def first_epoch():
        loader = DataLoader(*numbered(30), batch_size=30, shuffle=True)
        return next(iter(loader))[1].numpy()

    gg.manual_seed(11)
    a = first_epoch()
    gg.manual_seed(11)
    assert np.array_equal(a, first_epoch())


def test_without_a_seed_the_order_is_drawn_when_the_epoch_starts_as_in_pytorch():
    # A loader built before gg.manual_seed follows it; building one draws nothing, so a
    # model made after an evaluation loader is initialised as without it.
    loader = DataLoader(*numbered(30), batch_size=30, shuffle=True)
    gg.manual_seed(5)
    a = next(iter(loader))[1].numpy()
    gg.manual_seed(5)
    assert np.array_equal(a, next(iter(loader))[1].numpy())
    gg.manual_seed(0)
    expected = gg.randn(3).numpy()
    gg.manual_seed(0)
    DataLoader(*numbered(30), batch_size=8)
    DataLoader(*numbered(30), batch_size=8, shuffle=True)
    assert np.array_equal(gg.randn(3).numpy(), expected)
