#!/usr/bin/env python3
"""Nerva's tools/inspect_npz.py: a thin wrapper, the same as `nerva-xp inspect`."""

import sys

from nerva_xp.cli import main

if __name__ == "__main__":
    sys.exit(main(["inspect", *sys.argv[1:]], prog="inspect_npz.py"))
