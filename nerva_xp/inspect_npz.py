"""``nerva-xp inspect FILE [--shapes-only]`` (spec §14.3): Nerva's inspect_npz.py."""

from __future__ import annotations

import numpy as np

from nerva_xp.npz import load_dict_from_npz


def describe_array(name: str, array: np.ndarray) -> str:
    """``name (shape)  inf-norm = m`` with m = max |x|, or ``n/a`` for empty or non-numbers."""
    shape = "x".join(map(str, array.shape))
    numeric = array.dtype.kind in "biufc" and array.size > 0
    norm = f"{float(np.max(np.abs(array))):.8f}" if numeric else "n/a"
    return f"{name:<8} ({shape:<12})  inf-norm = {norm}"


def run_inspect(args) -> int:
    """Print every array of the file, in file order (with its values unless --shapes-only)."""
    for name, array in load_dict_from_npz(args.file, kind="npz").items():
        print(describe_array(name, array))
        if not args.shapes_only:
            print(array)
            print()
    return 0
