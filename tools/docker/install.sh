#!/bin/sh
# Install nerva-xp into a fresh virtual environment from exact versions: what the Docker image runs,
# and what CI runs outside Docker.   Usage: install.sh VENV {cpu|gpu} [SOURCE]
set -eu
venv=$1
variant=$2
source=${3:-.}
here=$(dirname "$0")
python3 -m venv "$venv"
"$venv/bin/pip" install --no-cache-dir --quiet -r "$here/requirements-$variant.txt"
if [ "$variant" = gpu ]; then
    "$venv/bin/pip" install --no-cache-dir --quiet --no-deps "$source[gpu]"
else
    "$venv/bin/pip" install --no-cache-dir --quiet --no-deps "$source"
fi
