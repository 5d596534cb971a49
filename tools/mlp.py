#!/usr/bin/env python3
"""Nerva's tools/mlp.py: a thin wrapper, the same as `nerva-xp train`."""

import sys

from nerva_xp.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]], prog="mlp.py"))
