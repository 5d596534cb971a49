#!/bin/sh
# What the image must do, run against an installed nerva-xp:   Usage: smoke.sh NERVA_XP
# 1. train on the embedded dataset; 2. without a GPU, --device=cuda fails with exit 2 and one line.
set -eu
nerva_xp=$1
"$nerva_xp" --version
"$nerva_xp" train --epochs=2 --seed=1 --device=auto
if [ "${NERVA_XP_EXPECT_GPU:-0}" = 1 ]; then
    "$nerva_xp" train --epochs=2 --seed=1 --device=cuda
    exit 0
fi
stderr=$(mktemp)
status=0
"$nerva_xp" train --device=cuda 2> "$stderr" || status=$?
lines=$(wc -l < "$stderr")
cat "$stderr"
rm -f "$stderr"
if [ "$status" != 2 ] || [ "$lines" != 1 ]; then
    echo "smoke: --device=cuda without a GPU gave exit $status and $lines line(s); expected 2 and 1" >&2
    exit 1
fi
echo "smoke: ok"
