"""The harness's data pipeline (``mixkit.train.data``): loaders, subsets, CIFAR files, ImageFolders.

Everything runs offline: the CIFAR download is served from a loopback HTTP server started here,
ImageFolder trees are written to a temporary folder, and the real JPEG tree under
``/work/shared/data/cifar10`` (when present) is read for a few files per class only.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mixkit.data import load_demo
from mixkit.train.data import (CIFAR, NORMALIZATION, ArrayData, ChecksumError, CorruptImageError,
                               FolderDataset, LazyLoader, MemoryLoader, build_data, dataset_stats,
                               denormalize, download_cifar, load_cifar, load_folder_to_memory, normalize,
                               per_class_subset, plan_epoch, read_index_file, read_index_stats,
                               safe_extract_tar, scan_folder, write_index_file)

SHARED_CIFAR = Path("/work/shared/data/cifar10")


def make_data(n: int = 23, c: int = 3, h: int = 6, w: int = 5, classes: int = 3, seed: int = 0) -> ArrayData:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(1, 256, (n, c, h, w), generator=g, dtype=torch.uint8)  # no 0: padding shows
    return ArrayData(images, torch.arange(n) % classes, [f"c{i}" for i in range(classes)])


def epoch(loader, e: int, start: int = 0):
    loader.set_epoch(e)
    return list(loader.iter_from(start))


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


# ------------------------------------------------------------------------------------------------
# ArrayData
# ------------------------------------------------------------------------------------------------

def test_array_data_checks_and_subset():
    d = make_data()
    assert len(d) == 23 and d.num_classes == 3 and d.image_size == (6, 5)
    s = d.subset(torch.tensor([4, 0]))
    assert torch.equal(s.images[0], d.images[4]) and s.labels.tolist() == [1, 0] and s.classes == d.classes
    assert d.class_counts().tolist() == [8, 8, 7]
    with pytest.raises(TypeError, match="images of shape"):
        ArrayData(d.images.float(), d.labels, d.classes)
    with pytest.raises(ValueError, match="differ in length"):
        ArrayData(d.images, d.labels[:3], d.classes)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        ArrayData(d.images, d.labels, ["a", "b"])
    with pytest.raises(ValueError, match="indices must lie"):
        d.subset([0, 23])


# ------------------------------------------------------------------------------------------------
# MemoryLoader: order, resume, DDP shards
# ------------------------------------------------------------------------------------------------

def test_loader_is_deterministic_and_epochs_differ():
    d = make_data()
    kw = dict(crop_padding=2, flip=True, seed=5)
    a, b = MemoryLoader(d, 4, **kw), MemoryLoader(d, 4, **kw)
    assert len(a) == 6
    assert_same_batches(epoch(a, 0), epoch(b, 0))
    e0, e1 = epoch(a, 0), epoch(a, 1)
    assert not torch.equal(torch.cat([y for _, y in e0]), torch.cat([y for _, y in e1])) or \
        not torch.equal(e0[0][0], e1[0][0])
    other = epoch(MemoryLoader(d, 4, crop_padding=2, flip=True, seed=6), 0)
    assert any(not torch.equal(x, z) for (x, _), (z, _) in zip(e0, other))
    # every image exactly once per epoch
    idx = torch.cat([a.indices(s, epoch=3) for s in range(len(a))])
    assert sorted(idx.tolist()) == list(range(23))


def test_mid_epoch_resume_gives_exactly_the_same_batches():
    d = make_data()
    kw = dict(crop_padding=3, flip=True, mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4), seed=11)
    uninterrupted = MemoryLoader(d, 5, **kw)
    full = [epoch(uninterrupted, e) for e in range(3)]
    # "interrupted" at (epoch 1, step 2): a fresh loader resumes there
    resumed = MemoryLoader(d, 5, **kw)
    assert_same_batches(epoch(resumed, 1, start=2), full[1][2:])
    assert_same_batches(epoch(resumed, 2), full[2])
    # random access agrees with iteration
    x, y = resumed.batch(3, epoch=0)
    assert torch.equal(x, full[0][3][0]) and torch.equal(y, full[0][3][1])
    assert list(resumed.iter_from(len(resumed))) == []
    with pytest.raises(ValueError, match="past the epoch"):
        next(resumed.iter_from(len(resumed) + 1))


@pytest.mark.parametrize("world_size,drop_last", [(2, False), (3, False), (3, True), (4, False)])
def test_ddp_shards_are_disjoint_covering_and_equal_in_length(world_size, drop_last):
    n, bs = 23, 3
    d = make_data(n)
    loaders = [MemoryLoader(d, bs, seed=2, rank=r, world_size=world_size, drop_last=drop_last)
               for r in range(world_size)]
    assert len({len(lo) for lo in loaders}) == 1
    for e in (0, 1):
        seen = [torch.cat([lo.indices(s, epoch=e) for s in range(len(lo))]).tolist() for lo in loaders]
        flat = [i for s in seen for i in s]
        assert len(flat) == len(set(flat))  # disjoint
        if drop_last:
            assert len(flat) == (n // (bs * world_size)) * bs * world_size
            assert all(len(lo.indices(s, e)) == bs for lo in loaders for s in range(len(lo)))
        else:
            assert sorted(flat) == list(range(n))  # covering
        assert all(len(lo.indices(s, e)) > 0 for lo in loaders for s in range(len(lo)))


def test_ddp_ranks_augment_like_one_process_with_the_global_batch():
    d = make_data(24)
    kw = dict(crop_padding=2, flip=True, seed=9)
    single = epoch(MemoryLoader(d, 6, **kw), 4)
    ranks = [epoch(MemoryLoader(d, 2, rank=r, world_size=3, **kw), 4) for r in range(3)]
    for step, (x, y) in enumerate(single):
        for r in range(3):
            assert torch.equal(ranks[r][step][0], x[r::3]) and torch.equal(ranks[r][step][1], y[r::3])


def test_plan_epoch_merges_a_too_small_last_batch():
    # 9 items, 2 ranks of batch 4: the last global batch would hold one image (one rank empty)
    plans = [plan_epoch(9, 4, seed=0, epoch=0, shuffle=False, rank=r, world_size=2) for r in range(2)]
    assert [len(p) for p in plans] == [1, 1]
    assert sorted(plans[0][0].tolist() + plans[1][0].tolist()) == list(range(9))


# ------------------------------------------------------------------------------------------------
# MemoryLoader: crop, flip, normalisation, formats
# ------------------------------------------------------------------------------------------------

def expected_batch(loader: MemoryLoader, step: int, e: int) -> torch.Tensor:
    """torchvision RandomCrop(size, padding=p) + hflip semantics, by hand, for the drawn params."""
    p = loader.crop_padding
    dy, dx, flip = loader.augment_params(step, e)
    out = []
    for i, j in enumerate(loader.indices(step, e).tolist()):
        img = F.pad(loader.data.images[j], (p, p, p, p))  # zero padding on every side
        h, w = loader.data.image_size
        crop = img[:, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out.append(crop.flip(-1) if flip[i] else crop)
    return torch.stack(out)  # (B, C, H, W) uint8


def as_uint8(x: torch.Tensor) -> torch.Tensor:
    """A batch scaled to [0, 1] back to its uint8 pixels (exact: x = pixel · (1/255))."""
    return (x * 255).round().to(torch.uint8)


def test_crop_and_flip_match_random_crop_semantics():
    d = make_data(20, h=7, w=6)
    loader = MemoryLoader(d, 8, crop_padding=3, flip=True, seed=4)
    seen_flip, seen_pad = False, False
    for e in range(2):
        loader.set_epoch(e)
        for s, (x, _) in enumerate(loader):
            assert torch.equal(as_uint8(x), expected_batch(loader, s, e))
            dy, dx, flip = loader.augment_params(s, e)
            assert int(dy.min()) >= 0 and int(dy.max()) <= 6 and int(dx.max()) <= 6
            seen_flip |= bool(flip.any()) and not bool(flip.all())
            seen_pad |= bool((x == 0).any())
    assert seen_flip and seen_pad


def test_crop_matches_torchvision_functional_for_given_offsets():
    tvf = pytest.importorskip("torchvision.transforms.v2.functional")
    img = torch.arange(3 * 5 * 4, dtype=torch.uint8).view(1, 3, 5, 4) + 1
    d = ArrayData(img, torch.zeros(1, dtype=torch.long), ["a"])
    loader = MemoryLoader(d, 1, crop_padding=2, flip=True, seed=0)
    for e in range(12):
        (x, _), = epoch(loader, e)
        dy, dx, flip = (int(t) for t in loader.augment_params(0, e))
        ref = tvf.crop(tvf.pad(img[0], [2, 2, 2, 2], fill=0), dy, dx, 5, 4)  # RandomCrop(size, padding=2)
        ref = tvf.horizontal_flip(ref) if flip else ref
        assert torch.equal(as_uint8(x)[0], ref)


def test_no_augmentation_flip_only_and_dataset_order():
    d = make_data(10)
    plain = MemoryLoader(d, 4, shuffle=False)
    x, y = plain.batch(0)
    assert torch.equal(as_uint8(x), d.images[:4])
    torch.testing.assert_close(x, d.images[:4].float() / 255)
    assert y.tolist() == d.labels[:4].tolist()
    flips = MemoryLoader(make_data(400), 400, flip=True, seed=1)
    x, _ = flips.batch(0)
    x, ref = as_uint8(x), flips.data.images[flips.indices(0)]
    flipped = flips.augment_params(0)[2].bool()
    assert torch.equal(x[flipped], ref[flipped].flip(-1)) and torch.equal(x[~flipped], ref[~flipped])
    assert 150 < int(flipped.sum()) < 250  # p = 0.5
    # turning flips off does not change the crops
    a = MemoryLoader(d, 5, crop_padding=2, flip=True, seed=3).augment_params(1)
    b = MemoryLoader(d, 5, crop_padding=2, flip=False, seed=3).augment_params(1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not b[2].any()


def test_normalisation_constants_helpers_and_channels_last():
    d = make_data(12)
    st = NORMALIZATION["cifar10"]
    loader = MemoryLoader(d, 6, mean=st.mean, std=st.std, seed=0, flip=True, crop_padding=1)
    raw = MemoryLoader(d, 6, seed=0, flip=True, crop_padding=1)
    x, _ = loader.batch(1)
    x0, _ = raw.batch(1)
    torch.testing.assert_close(x, normalize(x0, "cifar10"), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(denormalize(x, st), x0, rtol=1e-6, atol=1e-6)
    from_uint8 = normalize(d.images[:2], st.mean, st.std)
    torch.testing.assert_close(from_uint8, normalize(d.images[:2].float() / 255, st))
    assert NORMALIZATION["cifar100"].mean[0] == pytest.approx(129.3 / 255)
    assert NORMALIZATION["imagenet"].std == (0.229, 0.224, 0.225)
    cl = MemoryLoader(d, 6, mean=st.mean, std=st.std, seed=0, flip=True, crop_padding=1, channels_last=True)
    xc, _ = cl.batch(1)
    assert xc.is_contiguous(memory_format=torch.channels_last) and torch.equal(xc, x)
    stats = dataset_stats(d.images)
    mean = (d.images.double() / 255).mean(dim=(0, 2, 3))
    torch.testing.assert_close(torch.tensor(stats.mean, dtype=torch.float64), mean)
    with pytest.raises(ValueError, match="3 values"):
        MemoryLoader(d, 4, mean=(0.5,), std=(0.5,))
    with pytest.raises(ValueError, match="both mean and std"):
        MemoryLoader(d, 4, mean=(0.5,) * 3)
    with pytest.raises(ValueError, match="std > 0"):
        normalize(x0, (0, 0, 0), (1, 0, 1))


def test_loader_argument_errors():
    d = make_data(10)
    with pytest.raises(TypeError, match="ArrayData"):
        MemoryLoader(d.images, 4)
    with pytest.raises(ValueError, match="batch_size >= 1"):
        MemoryLoader(d, 0)
    with pytest.raises(TypeError, match="crop_padding to be an int"):
        MemoryLoader(d, 2, crop_padding=1.5)
    with pytest.raises(ValueError, match="rank < world_size"):
        MemoryLoader(d, 2, rank=2, world_size=2)
    with pytest.raises(ValueError, match="no batches"):
        MemoryLoader(d, 20, drop_last=True)
    with pytest.raises(IndexError, match="out of range"):
        MemoryLoader(d, 4).batch(3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_equal_cpu_batches():
    d = make_data(40)
    kw = dict(crop_padding=4, flip=True, mean=(0.5,) * 3, std=(0.25,) * 3, seed=1)
    cpu, gpu = epoch(MemoryLoader(d, 8, **kw), 2), epoch(MemoryLoader(d, 8, device="cuda", **kw), 2)
    for (x, y), (xg, yg) in zip(cpu, gpu):
        assert xg.is_cuda and torch.equal(xg.cpu(), x) and torch.equal(yg.cpu(), y)


# ------------------------------------------------------------------------------------------------
# Subsets and index files
# ------------------------------------------------------------------------------------------------

def test_per_class_subset_counts_balance_and_nesting():
    labels = torch.arange(100) % 4
    labels[:10] = 3  # unbalanced: 20 / 22 / 22 / 36 ... per class
    sizes = torch.bincount(labels)
    idx = per_class_subset(labels, count=7, seed=3)
    assert torch.bincount(labels[idx]).tolist() == [7] * 4
    assert bool((idx.diff() > 0).all())
    assert torch.equal(idx, per_class_subset(labels, count=7, seed=3))
    assert not torch.equal(idx, per_class_subset(labels, count=7, seed=4))
    bigger = per_class_subset(labels, count=12, seed=3)
    assert set(idx.tolist()) <= set(bigger.tolist())  # nested
    half = per_class_subset(labels, fraction=0.5, seed=0)
    assert torch.bincount(labels[half]).tolist() == [int(k / 2 + 0.5) for k in sizes.tolist()]
    assert per_class_subset(labels, fraction=1.0).tolist() == list(range(100))
    assert torch.bincount(labels[per_class_subset(labels, fraction=0.001)]).tolist() == [1] * 4
    with pytest.raises(ValueError, match="exactly one of fraction and count"):
        per_class_subset(labels)
    with pytest.raises(ValueError, match="fewer images"):
        per_class_subset(labels, count=30)
    with pytest.raises(ValueError, match=r"fraction in \(0, 1\]"):
        per_class_subset(labels, fraction=1.5)


def test_index_file_round_trip_and_validation(tmp_path):
    idx = torch.tensor([5, 1, 9])
    path = write_index_file(tmp_path / "sub" / "idx.json", idx, {"method": "cv", "k": 3})
    assert torch.equal(read_index_file(path), idx)
    assert read_index_stats(path) == {"method": "cv", "k": 3}
    with pytest.raises(ValueError, match="out of range"):
        read_index_file(path, num_items=9)
    with pytest.raises(ValueError, match="duplicates"):
        write_index_file(tmp_path / "d.json", torch.tensor([1, 1]))
    (tmp_path / "bad.json").write_text('{"format": "other", "version": 1}')
    with pytest.raises(ValueError, match="not a 'mixkit-index' file"):
        read_index_file(tmp_path / "bad.json")
    (tmp_path / "v.json").write_text('{"format": "mixkit-index", "version": 99, "indices": []}')
    with pytest.raises(ValueError, match="version 99"):
        read_index_file(tmp_path / "v.json")
    with pytest.raises(FileNotFoundError, match="no index file"):
        read_index_file(tmp_path / "missing.json")


# ------------------------------------------------------------------------------------------------
# CIFAR: official format, download over a loopback server, checksum, safe extraction
# ------------------------------------------------------------------------------------------------

def _pickle_py2_style(obj) -> bytes:
    # the official files are protocol-2 pickles that name numpy.core.multiarray (NumPy 1.x)
    return pickle.dumps(obj, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def make_cifar_archive(folder: Path, name: str) -> tuple:
    """A tiny archive in the official layout; returns (archive path, md5, train images, labels)."""
    rng = np.random.default_rng(0)
    src = folder / "src"
    if name == "cifar10":
        base, files, key, meta = "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "labels", \
            ("batches.meta", {"label_names": [f"class{i}" for i in range(10)]})
        test_files = ["test_batch"]
    else:
        base, files, key, meta = "cifar-100-python", ["train"], "fine_labels", \
            ("meta", {"fine_label_names": [f"fine{i}" for i in range(100)], "coarse_label_names": ["x"] * 20})
        test_files = ["test"]
    (src / base).mkdir(parents=True)
    all_images, all_labels = [], []
    for i, f in enumerate(files + test_files):
        data = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, 3)]
        batch = {"batch_label": f, "data": data, key: labels, "filenames": ["a.png", "b.png", "c.png"]}
        if i == 0:
            batch = {k.encode(): v for k, v in batch.items()}  # bytes keys, as with encoding="bytes"
        if name == "cifar100":
            batch["coarse_labels"] = [0, 0, 0]
        (src / base / f).write_bytes(_pickle_py2_style(batch))
        if f in files:
            all_images.append(data.reshape(-1, 3, 32, 32))
            all_labels += labels
    (src / base / meta[0]).write_bytes(_pickle_py2_style(meta[1]))
    archive = folder / "served" / CIFAR[name].archive
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / base, arcname=base)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    return archive, md5, torch.from_numpy(np.concatenate(all_images)), torch.tensor(all_labels)


@pytest.fixture
def http_server():
    """Serve files from a folder over HTTP on 127.0.0.1 (a fresh port) in a background thread."""
    servers = []

    def start(folder: Path) -> str:
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                 functools.partial(Quiet, directory=str(folder)))
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_download_verify_extract_and_load(tmp_path, http_server, name):
    archive, md5, images, labels = make_cifar_archive(tmp_path, name)
    url = f"{http_server(archive.parent)}/{archive.name}"
    root = tmp_path / "data"
    with pytest.raises(FileNotFoundError, match=r"not found under .*data.*download=True"):
        load_cifar(root, name, "train")
    folder = download_cifar(root, name, url=url, md5=md5)
    assert folder.is_dir() and (root / archive.name).is_file()
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporary folder left
    train, test = load_cifar(root, name, "train"), load_cifar(root, name, "test")
    assert torch.equal(train.images, images) and torch.equal(train.labels, labels)
    assert len(test) == 3 and train.num_classes == (10 if name == "cifar10" else 100)
    assert train.classes[1] == ("class1" if name == "cifar10" else "fine1")
    assert download_cifar(root, name, url="http://127.0.0.1:9/unused", md5="0" * 32) == folder  # present


def test_cifar_checksum_mismatch_removes_the_partial_file(tmp_path, http_server):
    archive, md5, _, _ = make_cifar_archive(tmp_path, "cifar10")
    url = f"{http_server(archive.parent)}/{archive.name}"
    root = tmp_path / "data"
    with pytest.raises(ChecksumError, match=f"expected MD5 {'f' * 32}, got {md5}"):
        download_cifar(root, "cifar10", url=url, md5="f" * 32)
    assert list(root.iterdir()) == []
    with pytest.raises(ValueError, match="expected name in"):
        download_cifar(root, "cifar1000")


def test_safe_extract_rejects_path_traversal_and_links(tmp_path):
    for member in ("../evil.txt", "/abs/evil.txt", "link"):
        archive = tmp_path / "bad.tar"
        with tarfile.open(archive, "w") as tar:
            info = tarfile.TarInfo(member)
            if member == "link":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = 4
                tar.addfile(info, io.BytesIO(b"evil"))
        with pytest.raises(ValueError, match="outside|not a regular file"):
            safe_extract_tar(archive, tmp_path / "out")
        assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "link").exists()


def test_cifar_pickles_with_foreign_globals_are_refused(tmp_path):
    _, _, _, _ = make_cifar_archive(tmp_path, "cifar10")
    base = tmp_path / "src" / "cifar-10-batches-py"
    (base / "data_batch_2").write_bytes(pickle.dumps({"data": Path("x")}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_cifar(tmp_path / "src", "cifar10", "train")


# ------------------------------------------------------------------------------------------------
# ImageFolder trees
# ------------------------------------------------------------------------------------------------

def write_tree(root: Path, per_class: int = 3, size=(8, 10), classes=("b_dog", "a_cat")) -> None:
    from PIL import Image

    g = np.random.default_rng(1)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            arr = g.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{i:03d}.png")
    (root / classes[0] / "notes.txt").write_text("not an image")


def test_scan_and_load_folder(tmp_path):
    from PIL import Image

    write_tree(tmp_path)
    files, labels, classes = scan_folder(tmp_path)
    assert classes == ["a_cat", "b_dog"] and labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert [f.name for f in files[:3]] == ["000.png", "001.png", "002.png"]
    for workers in (0, 2):
        d = load_folder_to_memory(tmp_path, num_workers=workers)
        assert d.images.shape == (6, 3, 8, 10) and d.classes == classes
        assert torch.equal(d.images[4], torch.from_numpy(np.array(Image.open(files[4]))).permute(2, 0, 1))
    assert load_folder_to_memory(tmp_path, size=4, max_per_class=1).images.shape == (2, 3, 4, 4)
    with pytest.raises(FileNotFoundError, match="no folder"):
        scan_folder(tmp_path / "nope")


def test_corrupt_images_are_reported_by_path(tmp_path):
    write_tree(tmp_path)
    bad1 = tmp_path / "a_cat" / "zz_garbage.jpg"
    bad1.write_bytes(b"this is not a jpeg")
    from PIL import Image

    good = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 100, np.uint8)).save(good, format="JPEG")
    bad2 = tmp_path / "b_dog" / "zz_truncated.jpg"
    bad2.write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    with pytest.raises(CorruptImageError) as info:
        load_folder_to_memory(tmp_path, num_workers=2)
    assert info.value.paths == [bad1, bad2]  # all bad files, not just the first
    assert str(bad1) in str(info.value) and str(bad2) in str(info.value)
    ds = FolderDataset.from_root(tmp_path)
    with pytest.raises(CorruptImageError, match="zz_garbage.jpg"):
        ds[ds.files.index(bad1)]


@pytest.mark.skipif(not SHARED_CIFAR.is_dir(), reason="shared CIFAR-10 JPEG tree not present")
def test_shared_cifar10_jpeg_tree_loads_and_matches_the_demo_set():
    files, labels, classes = scan_folder(SHARED_CIFAR / "train", max_per_class=3)
    assert len(classes) == 10 and classes[0] == "airplane" and len(files) == 30
    assert torch.bincount(labels).tolist() == [3] * 10
    d = load_folder_to_memory(SHARED_CIFAR / "test", max_per_class=2, num_workers=2)
    assert d.images.shape == (20, 3, 32, 32) and d.classes == classes
    demo = load_demo("train")  # the demo set holds the first files of each class of this tree
    mine = load_folder_to_memory(SHARED_CIFAR / "train", max_per_class=2)
    first = [demo.files.index(f"{c}/{n:04d}.jpg") for c in classes for n in range(2)]
    assert torch.equal(mine.images, demo.images[first])


# ------------------------------------------------------------------------------------------------
# Lazy loading and build_data
# ------------------------------------------------------------------------------------------------

def test_lazy_loader_resumes_exactly_with_torchvision_transforms(tmp_path):
    pytest.importorskip("torchvision")
    from mixkit.train.data.transforms import large_train_transform

    write_tree(tmp_path, per_class=5, size=(20, 24))
    ds = FolderDataset.from_root(tmp_path, large_train_transform(12, (0.5,) * 3, (0.2,) * 3,
                                                                 auto_augment="randaugment"))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    loader = LazyLoader(ds, 3, seed=7)
    full = epoch(loader, 1)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left as it was
    assert [tuple(x.shape) for x, _ in full] == [(3, 3, 12, 12)] * 3 + [(1, 3, 12, 12)]
    assert_same_batches(epoch(LazyLoader(ds, 3, seed=7, num_workers=2), 1, start=2), full[2:])
    assert not torch.equal(epoch(loader, 2)[0][0], full[0][0])


def test_build_data_demo_subsets_and_index_file(tmp_path):
    b = build_data("demo", batch_size=50, train_per_class=20, subset_seed=1, seed=0)
    assert b.num_classes == 10 and b.image_size == (32, 32) and b.mean == NORMALIZATION["cifar10"].mean
    assert len(b.train_set) == 200 and torch.bincount(b.train_set.labels).tolist() == [20] * 10
    assert len(b.train) == 4 and len(b.test) == 10  # test batch size defaults to batch_size
    x, y = next(iter(b.train))
    assert x.shape == (50, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(float(x.mean())) < 0.5
    path = write_index_file(tmp_path / "idx.json", b.train_indices)
    b2 = build_data("demo", subset_file=path, batch_size=50, test_batch_size=100)
    assert torch.equal(b2.train_set.images, b.train_set.images) and len(b2.test) == 5
    b3 = build_data({"dataset": "demo", "train_fraction": 0.05, "normalize": "none", "batch_size": 10,
                     "eval_batch_size": 500, "augment": "none", "image_size": 224})
    assert len(b3.train_set) == 100 and b3.mean is None and len(b3.test) == 1
    with pytest.raises(ValueError, match="at most one of"):
        build_data("demo", train_fraction=0.1, train_per_class=3)
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        build_data("mnist")
    with pytest.raises(ValueError, match="needs root="):
        build_data("cifar10")


def test_build_data_folder_memory_and_lazy(tmp_path):
    pytest.importorskip("torchvision")
    write_tree(tmp_path / "train", per_class=4, size=(16, 16))
    write_tree(tmp_path / "val", per_class=2, size=(16, 16))
    b = build_data("folder", tmp_path, batch_size=4, crop_padding=2)
    assert b.classes == ["a_cat", "b_dog"] and len(b.test_set) == 4 and b.image_size == (16, 16)
    x, _ = next(iter(b.train))
    assert x.shape == (4, 3, 16, 16)
    mean = (b.train_set.images.double() / 255).mean(dim=(0, 2, 3))
    torch.testing.assert_close(torch.tensor(b.mean, dtype=torch.float64), mean)
    lazy = build_data("folder-lazy", tmp_path, batch_size=3, image_size=8, auto_augment="augmix")
    x, y = next(iter(lazy.train))
    xt, _ = next(iter(lazy.test))
    assert x.shape == (3, 3, 8, 8) and xt.shape == (3, 3, 8, 8)
    assert lazy.mean == NORMALIZATION["imagenet"].mean
    aug = build_data("demo", batch_size=8, auto_augment="randaugment", train_per_class=2)
    x, _ = next(iter(aug.train))
    assert isinstance(aug.train, LazyLoader) and x.shape == (8, 3, 32, 32)
