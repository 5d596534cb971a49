"""Training curves for ``nerva-xp train --plot FILE.png`` (matplotlib, the ``plot`` extra).

The file's suffix picks the format (``curves.pdf``, ``curves.svg``, ...); without one it is PNG.
"""

from __future__ import annotations

import os

from nerva_xp.atomic_files import write_atomically

NEEDS_MORE_THAN_MATPLOTLIB = {"pgf"}  # LaTeX


def image_formats() -> list[str]:
    """The formats matplotlib's Agg backend writes on its own, e.g. ["eps", "jpeg", ..., "svg"]."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return sorted(set(FigureCanvasAgg.get_supported_filetypes()) - NEEDS_MORE_THAN_MATPLOTLIB)


def image_format(path: str) -> str:
    """The format named by path's suffix ("png" without one); ValueError if Agg cannot write it."""
    suffix = os.path.splitext(path)[1][1:].lower()
    if suffix == "":
        return "png"
    if suffix not in image_formats():
        raise ValueError(
            f'".{suffix}" is not an image format matplotlib writes; expected a file name '
            f"ending in one of {', '.join('.' + name for name in image_formats())}"
        )
    return suffix


def plot_training_curves(rows, path: str) -> str:
    """Loss (left) and train/test accuracy (right) against the epoch, written atomically in the
    format of path's suffix."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    format_ = image_format(path)

    epochs = [row.epoch for row in rows]
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    left.plot(epochs, [row.loss for row in rows], marker=".", color="tab:red")
    left.set(xlabel="epoch", ylabel="training loss (mean per example)", title="Loss")
    right.plot(epochs, [row.train_accuracy for row in rows], marker=".", label="train")
    right.plot(epochs, [row.test_accuracy for row in rows], marker=".", label="test")
    right.set(xlabel="epoch", ylabel="accuracy", title="Accuracy", ylim=(0, 1.02))
    right.legend(loc="lower right")
    for axes in (left, right):
        axes.grid(alpha=0.3)
    try:
        return write_atomically(path, lambda file: figure.savefig(file, format=format_, dpi=100))
    finally:
        pyplot.close(figure)
