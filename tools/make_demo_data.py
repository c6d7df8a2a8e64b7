"""Build mixkit's bundled demo set from a CIFAR-10 ImageFolder tree.

    python tools/make_demo_data.py ../shared/data/cifar10 src/mixkit/data/cifar10_demo.pt.xz

Takes the first ``--train`` and ``--test`` files (sorted by name) of every class, decodes them to
uint8 ``(N, 3, 32, 32)`` and writes one xz-compressed ``torch.save`` file with the images, the
labels, the class names and the source file names. Needs Pillow (a dev dependency only).
"""

import argparse
import io
import lzma
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def load_split(root: Path, classes, per_class: int):
    images, labels, names = [], [], []
    for label, cls in enumerate(classes):
        files = sorted((root / cls).glob("*.jpg"))[:per_class]
        if len(files) < per_class:
            raise SystemExit(f"{root / cls}: only {len(files)} images, need {per_class}")
        for f in files:
            with Image.open(f) as im:
                images.append(np.asarray(im.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1))
            labels.append(label)
            names.append(f"{cls}/{f.name}")
    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64), names


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", type=Path, help="CIFAR-10 ImageFolder root (with train/ and test/)")
    p.add_argument("out", type=Path, help="output .pt.xz file")
    p.add_argument("--train", type=int, default=200, help="train images per class (default 200)")
    p.add_argument("--test", type=int, default=50, help="test images per class (default 50)")
    args = p.parse_args()
    classes = sorted(d.name for d in (args.root / "train").iterdir() if d.is_dir())
    data = {"classes": classes, "source": "CIFAR-10 (Krizhevsky 2009), JPEG ImageFolder copy"}
    for split, n in (("train", args.train), ("test", args.test)):
        x, y, names = load_split(args.root / split, classes, n)
        data[split] = {"images": x, "labels": y, "files": names}
    buf = io.BytesIO()
    torch.save(data, buf)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): "
          f"{len(data['train']['labels'])} train + {len(data['test']['labels'])} test images")


if __name__ == "__main__":
    main()
