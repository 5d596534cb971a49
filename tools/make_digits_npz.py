"""Regenerate ``nerva_xp/data/digits.npz`` from scikit-learn's ``load_digits``.

Development only: this script needs scikit-learn, which is not a dependency of nerva_xp.

The data is the 1797-image 8x8 handwritten-digits table of the UCI Machine Learning Repository
dataset "Optical Recognition of Handwritten Digits" by E. Alpaydin and C. Kaynak (1998),
licensed under CC BY 4.0 (https://doi.org/10.24432/C50P49), as distributed with scikit-learn.

The rows are split by ``numpy.random.default_rng(0).permutation(1797)``: its first 1500 indices
give Xtrain/Ttrain, the other 297 Xtest/Ttest. X is (N, 64) float32 = pixel / 16, in [0, 1];
T is int32 labels 0-9.

Usage:
    python tools/make_digits_npz.py [--output PATH]
"""

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "nerva_xp" / "data" / "digits.npz"
N_TRAIN = 1500


def make_arrays() -> dict[str, np.ndarray]:
    """Return the train/test split of the digits data as a dict of arrays."""
    digits = load_digits()
    x = (np.asarray(digits.data, dtype=np.float64) / 16.0).astype(np.float32)
    t = np.asarray(digits.target).astype(np.int32)
    assert x.shape == (1797, 64) and t.shape == (1797,)
    perm = np.random.default_rng(0).permutation(1797)
    train, test = perm[:N_TRAIN], perm[N_TRAIN:]
    return {"Xtrain": x[train], "Ttrain": t[train], "Xtest": x[test], "Ttest": t[test]}


def save_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` with savez_compressed via a temporary file and os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp creates the file 0600
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"output file (default: {DEFAULT_OUTPUT})",
    )
    args = parser.parse_args()
    arrays = make_arrays()
    save_atomic(args.output, arrays)
    shapes = ", ".join(f"{k} {v.shape} {v.dtype}" for k, v in arrays.items())
    print(f"wrote {args.output}: {shapes}")


if __name__ == "__main__":
    main()
