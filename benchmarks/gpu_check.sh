#!/usr/bin/env bash
# Issue 7's GPU check, about 5 minutes on one H100; run from the repository root (no .venv needed):
#
#   bash benchmarks/gpu_check.sh                     # CUDA: the real check
#   bash benchmarks/gpu_check.sh --device cpu --quick  # the same steps, tiny, on the CPU (plumbing)
#
# 1. bench_train_step at batch 4, 224 px: naive fp32, fast fp32, fast bf16 + channels_last, and
#    + torch.compile (time, peak GPU memory, FLOPs per step, MFU);
# 2. a synthetic set at 224 px (python -m avs_lib synth /tmp/gsynth --videos 64,16,16);
# 3. a short ResNet-50 training on it with bf16 autocast (the `gpu` profile, 2 epochs), printing
#    the loss falling, clips/s, peak memory and MFU (benchmarks/train_check.py runs what
#    `python -m avs_lib train --profile gpu --method tpavi --set ...` runs, and measures it).
#
# Everything goes to stdout and to $OUT (gpu_check.log, *.json, perf_train_step.png) when OUT is
# set, else to ./gpu_check_out. Nothing is downloaded. The project's Python needs librosa and
# soundfile (and their needs), which a bare CUDA image may lack: wheels put in .whl/ are installed
# first (pip --no-index into /tmp/site), and a missing package stops the check at once, by name.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

DEVICE=cuda
QUICK=0
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE="$2"; shift 2 ;;
        --quick) QUICK=1; shift ;;
        *) echo "usage: $0 [--device cuda|cpu] [--quick]" >&2; exit 2 ;;
    esac
done

RESULTS="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$RESULTS"
exec > >(tee "$RESULTS/gpu_check.log") 2>&1
PY="${PYTHON:-$(command -v python3 || command -v python)}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
SYNTH=/tmp/gsynth
FAILED=()
started=$(date +%s)

stage() {  # stage NAME SECONDS COMMAND...: run with a time limit, note a failure, go on
    local name="$1" limit="$2"; shift 2
    echo
    echo "=== $name (limit ${limit} s) ==="
    local t0=$(date +%s)
    timeout "$limit" "$@"
    local rc=$?
    echo "=== $name: exit $rc after $(( $(date +%s) - t0 )) s ==="
    [ "$rc" -eq 0 ] || FAILED+=("$name (exit $rc)")
    return "$rc"
}

echo "=== environment ==="
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
"$PY" - "$DEVICE" <<'EOF' || exit 3
import importlib, sys
needed = ["torch", "torchvision", "numpy", "pandas", "PIL", "scipy", "yaml", "tqdm",
          "matplotlib", "seaborn", "soundfile", "librosa"]
missing = []
for name in needed:
    try:
        importlib.import_module(name)
    except Exception as error:  # an import can fail in other ways than ImportError (cffi, numba)
        missing.append(f"{name} ({type(error).__name__}: {error})")
if missing:
    print("missing Python packages: " + "; ".join(missing))
    print("carry them as wheels in .whl/ (see the device README); librosa needs audioread, "
          "decorator, pooch, platformdirs, soxr; soundfile needs cffi, pycparser")
    sys.exit(3)
import torch
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, "
      f"CUDA available {torch.cuda.is_available()}")
if sys.argv[1].startswith("cuda"):
    if not torch.cuda.is_available():
        print("CUDA was asked for but is not available")
        sys.exit(3)
    print(f"device {torch.cuda.get_device_name()}")
EOF

if [ "$QUICK" -eq 1 ]; then
    BENCH_ARGS=(--quick --device "$DEVICE" --variants naive fast)
    SYNTH_ARGS=(--videos 6,4,4 --image-size 64)
    TRAIN_ARGS=(--quick --device "$DEVICE")
    SYNTH=/tmp/gsynth_quick
else
    BENCH_ARGS=(--device "$DEVICE" --batch 4 --steps 5 --warmup 2 --rounds 1 --child-timeout 200
                --variants naive fast fast_bf16_cl fast_bf16_cl_compile)
    SYNTH_ARGS=(--videos 64,16,16 --image-size 224)
    # The gpu profile's 100 warm-up steps would keep the lr near 0 for all 16 steps of this run.
    TRAIN_ARGS=(--device "$DEVICE" --set optim.epochs=2 --set optim.warmup_steps=2
                --set optim.batch_size=8 --set data.num_workers=8)
fi

stage "bench_train_step" 270 "$PY" benchmarks/bench_train_step.py "${BENCH_ARGS[@]}" \
    --out "$RESULTS/bench_train_step.json" --figures-dir "$RESULTS"

rm -rf "$SYNTH"
stage "synthetic data" 120 "$PY" -m avs_lib synth "$SYNTH" "${SYNTH_ARGS[@]}" --quiet \
    && stage "training" 240 "$PY" benchmarks/train_check.py --root "$SYNTH" --profile gpu \
        --method tpavi --output-dir /tmp/gruns "${TRAIN_ARGS[@]}" --out "$RESULTS/train_check.json"

echo
echo "=== done in $(( $(date +%s) - started )) s; results in $RESULTS ==="
if [ ${#FAILED[@]} -gt 0 ]; then
    printf 'FAILED: %s\n' "${FAILED[@]}"
    exit 1
fi
