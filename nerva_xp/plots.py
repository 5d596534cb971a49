"""Training curves for ``nerva-xp train --plot FILE.png`` (matplotlib, the ``plot`` extra)."""

from __future__ import annotations

from nerva_xp.atomic_files import write_atomically


def plot_training_curves(rows, path: str) -> str:
    """Loss (left) and train/test accuracy (right) against the epoch, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

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
        return write_atomically(path, lambda file: figure.savefig(file, format="png", dpi=100))
    finally:
        pyplot.close(figure)
