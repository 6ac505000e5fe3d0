"""Data sources and their errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from studio.core.train.data import SYNTHETIC_NOTE, DataError, load_data


def _images(root, classes=("cat", "dog"), n=3, size=12):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{i}.png")


def test_demo_split():
    d = load_data("demo")
    assert (len(d.train), len(d.val), d.num_classes, d.input_size) == (1438, 359, 10, (1, 8, 8))
    x, y = d.train[0]
    assert x.shape == (1, 8, 8) and 0 <= int(y) < 10


def test_other_demo_splits_are_stratified_and_disjoint():
    from studio.core.model import demo

    d = demo.load_digits()
    # the stored split is exactly what the splitting function draws with seed 0
    t0, v0 = demo.stratified_split(d["labels"], 0)
    assert (t0 == d["train_idx"]).all() and (v0 == d["val_idx"]).all()
    t1, v1 = demo.split_indices(1)
    assert not set(t1) & set(v1) and len(t1) + len(v1) == len(d["labels"])
    assert set(v1) != set(v0)
    assert np.array_equal(np.bincount(d["labels"][v1]), np.bincount(d["labels"][v0]))
    ds = load_data("demo:1")
    assert "split 1" in ds.name and len(ds.val) == len(v1)
    x, _ = ds.val[0]
    assert torch.equal(x, demo.to_tensor(d["images"][v1[:1]])[0])
    with pytest.raises(DataError, match="demo:1"):
        load_data("demo:x")


def test_image_folder_train_val(tmp_path):
    _images(tmp_path / "train")
    _images(tmp_path / "val", n=2)
    d = load_data(str(tmp_path), (3, 16, 16))
    assert (len(d.train), len(d.val), d.classes) == (6, 4, ["cat", "dog"])
    assert d.val[0][0].shape == (3, 16, 16)


def test_image_folder_split_by_seed(tmp_path):
    _images(tmp_path, n=10)
    a = load_data(str(tmp_path), (1, 8, 8), val_split=0.3, seed=1)
    b = load_data(str(tmp_path), (1, 8, 8), val_split=0.3, seed=1)
    assert len(a.val) == 6 and len(a.train) == 14
    assert a.val.indices == b.val.indices
    assert a.train[0][0].shape == (1, 8, 8)  # converted to grey for a 1-channel model


def test_empty_folder(tmp_path):
    (tmp_path / "cls").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_data(str(tmp_path), (3, 8, 8))


def test_unreadable_image_is_named(tmp_path):
    _images(tmp_path / "train")
    _images(tmp_path / "val")
    bad = tmp_path / "val" / "dog" / "broken.png"
    bad.write_bytes(b"not a png")
    d = load_data(str(tmp_path), (3, 8, 8))
    with pytest.raises(DataError, match="broken.png"):
        [d.val[i] for i in range(len(d.val))]


def test_class_count_and_channels_must_match_the_model(demo):
    import torchvision

    d = load_data("demo")
    syn = load_data("synthetic", (3, 32, 32), num_classes=10)
    with pytest.raises(DataError, match="1000 outputs but synthetic has 10 classes"):
        syn.check_model(torchvision.models.resnet18(), (3, 32, 32))
    with pytest.raises(DataError, match="3-channel input"):
        d.check_model(demo.model, (3, 8, 8))


def test_missing_cifar_says_where_the_files_go(tmp_path):
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        load_data(f"cifar10:{tmp_path}")
    with pytest.raises(DataError, match="cifar-100-python"):
        load_data(f"cifar100:{tmp_path}")


def test_synthetic_is_labelled():
    d = load_data("synthetic", (3, 16, 16), num_classes=5)
    assert d.synthetic and d.note == SYNTHETIC_NOTE
    x, y = d.val[0]
    assert x.shape == (3, 16, 16) and int(y) < 5


def test_unknown_source():
    with pytest.raises(DataError, match="not found"):
        load_data("nowhere/at/all")


def test_holdout_never_touches_validation():
    d = load_data("demo", augment=False)
    fit, held = d.holdout(0.1)
    assert len(fit) + len(held) == len(d.train)
    val_x = {tuple(x.flatten().tolist()) for x, _ in d.val}
    assert not any(tuple(held[i][0].flatten().tolist()) in val_x for i in range(10))
    assert isinstance(held[0][0], torch.Tensor)


def test_demo_digits_fit_any_image_model():
    """The digits resized and repeated over the channels: real data for a 3x64x64 CNN."""
    d = load_data("demo", (3, 64, 64))
    x, y = d.val[0]
    assert x.shape == (3, 64, 64) and d.input_size == (3, 64, 64) and "3×64×64" in d.name
    assert torch.equal(x[0], x[2]) and x.std() > 0.1
    xs, _ = d.train[0]
    assert xs.shape == (3, 64, 64)
    base = load_data("demo").val[0][0]
    assert torch.allclose(x[0, ::8, ::8].mean(), base.mean(), atol=0.5)  # the same digit
    with pytest.raises(DataError, match="images"):
        load_data("demo", (128,))


def test_a_data_source_typo_is_named_before_any_job_reads_it(tmp_path):
    from studio.core.train.data import spec_problem

    (tmp_path / "imgs").mkdir()
    (tmp_path / "file.txt").write_text("x")
    for ok in ("demo", "demo:2", "clutter", "synthetic", str(tmp_path / "imgs")):
        assert spec_problem(ok) is None, ok
    assert spec_problem(f"cifar10:{tmp_path}") is None
    for bad, why in (
        ("bogus source", "not found"),
        ("demo:x", "demo:1"),
        ("cifar10", "cifar10:DIR"),
        (f"cifar100:{tmp_path / 'nope'}", "not a folder"),
        (str(tmp_path / "file.txt"), "is a file"),
        ("", "no data source"),
    ):
        assert why in spec_problem(bad), bad


def test_an_empty_split_number_is_refused_as_load_data_refuses_it():
    from studio.core.train.data import spec_problem

    assert spec_problem("demo:") and spec_problem("clutter:")
    with pytest.raises(DataError):
        load_data("demo:")
