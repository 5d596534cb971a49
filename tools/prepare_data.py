#!/usr/bin/env python3
"""Nerva's tools/prepare_data.py: a thin wrapper, the same as `nerva-xp prepare-data`."""

import sys

from nerva_xp.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare-data", *sys.argv[1:]], prog="prepare_data.py"))
