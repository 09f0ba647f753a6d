"""Write an image folder for spec.yaml: scikit-learn's bundled 8x8 digits as 32x32 grayscale PNG
files, one subdirectory per class (digits/0/0007.png, digits/1/0001.png, ...), the layout
`source: images` with `labels: inferred` reads.

    python examples/images/write_images.py [--per-class 60]
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-class", type=int, default=60, help="images per digit (at most about 180)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "digits")
    args = parser.parse_args()
    digits = load_digits()
    written = 0
    for label in range(10):
        folder = args.out / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        for index in np.flatnonzero(digits.target == label)[: args.per_class]:
            pixels = (digits.images[index] * (255 / 16)).astype(np.uint8)
            Image.fromarray(pixels).resize((32, 32), Image.Resampling.NEAREST).save(folder / f"{index:04d}.png")
            written += 1
    print(f"wrote {written} images in 10 class folders under {args.out}")


if __name__ == "__main__":
    main()
