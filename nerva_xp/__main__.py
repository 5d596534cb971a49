"""``python -m nerva_xp``: the nerva-xp command line."""

from nerva_xp.cli import entry_point

if __name__ == "__main__":
    entry_point()
