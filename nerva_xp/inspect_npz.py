"""``nerva-xp inspect FILE [--shapes-only]`` (spec §14.3): Nerva's inspect_npz.py."""

from __future__ import annotations

import numpy as np

from nerva_xp.npz import load_dict_from_npz


def describe_array(name: str, array: np.ndarray) -> str:
    """``name (shape)  inf-norm = m``, m = max |x|; ``n/a`` if empty, bool or non-numeric."""
    shape = "x".join(map(str, array.shape))
    if array.dtype.kind not in "iufc" or array.size == 0:
        return f"{name:<8} ({shape:<12})  inf-norm = n/a"
    magnitudes = np.abs(array.astype(np.float64) if array.dtype.kind in "iu" else array)
    norm = f"{float(np.max(magnitudes)):.8f}"
    return f"{name:<8} ({shape:<12})  inf-norm = {norm}"


def run_inspect(args) -> int:
    """Print every array of the file, in file order (with its values unless --shapes-only)."""
    for name, array in load_dict_from_npz(args.file, kind="npz").items():
        print(describe_array(name, array))
        if not args.shapes_only:
            print(array)
            print()
    return 0
