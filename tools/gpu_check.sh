#!/usr/bin/env bash
# The GPU checks of the speed work in one run, for a machine with a CUDA GPU where python3 has
# CuPy, NumPy, pytest, pytest-benchmark and hypothesis (PyTorch too, for the baseline) but maybe
# not array-api-compat and array-api-strict: give a folder of their wheels as the argument.
#
#   tools/gpu_check.sh [WHEEL_FOLDER]
#
# The wheels, fetched beforehand where pip can reach an index (both are pure Python):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#       array-api-compat==1.16.0 array-api-strict==2.6.1
# Runs from the repository root without installing nerva-xp (PYTHONPATH), and writes into $OUT
# (default ./gpu-check): gpu.txt (GPU, driver, versions), tests.txt (the CUDA and CuPy tests),
# bench.txt and bench.json (the CuPy benchmarks, fused kernels on and off), epoch.txt and
# steps-cuda.png (bench/epoch.py on the GPU against PyTorch CUDA). Each part runs even if an
# earlier one failed; the exit status is the number of parts that failed.
set -u -o pipefail
out=${OUT:-gpu-check}
mkdir -p "$out"
if [ -n "${1:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/nerva-xp-site \
        "$1"/*.whl || exit 1
    export PYTHONPATH=/tmp/nerva-xp-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
failed=0

part() {  # part NAME COMMAND...: run COMMAND, its output into $out/NAME.txt
    local name=$1
    shift
    echo "== $name: $*"
    "$@" 2>&1 | tee "$out/$name.txt" || failed=$((failed + 1))
}

part gpu bash -c 'nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv &&
    python3 -c "import cupy, numpy, sys; print(sys.version); print(\"cupy\", cupy.__version__,
\"numpy\", numpy.__version__); print(cupy.cuda.runtime.getDeviceProperties(0)[\"name\"])"'
part tests python3 -m pytest -q -p no:cacheprovider tests -k "cuda or cupy or kernel"
part bench python3 -m pytest -q -p no:cacheprovider bench --benchmark-only -k cupy \
    --benchmark-max-time=0.2 --benchmark-json="$out/bench.json" \
    --benchmark-columns=median,iqr,rounds
part epoch python3 bench/epoch.py --device cuda --shape both --rounds 7 \
    --plot "$out/steps-cuda.png"
echo "== $failed part(s) failed; results in $out/"
exit "$failed"
