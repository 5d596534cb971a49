"""The per-batch progress bar: drawn on a terminal, silent otherwise."""

import io

from nerva_xp.progress import ProgressBar


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_bar_is_drawn_on_a_terminal_and_cleared_at_the_end():
    stream = Terminal()
    batches = list(ProgressBar(10, stream=stream)(range(4), epoch=2))
    assert batches == [0, 1, 2, 3]
    output = stream.getvalue()
    assert "epoch 3/10 [" in output and "] 4/4" in output
    assert output.endswith("\r\033[K")


def test_bar_is_silent_when_not_a_terminal():
    stream = io.StringIO()
    batches = range(3)
    assert ProgressBar(5, stream=stream)(batches, epoch=0) is batches
    assert stream.getvalue() == ""
