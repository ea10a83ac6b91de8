#!/usr/bin/env bash
# Every figure that needs a CUDA GPU, in under 9 minutes on one GPU, each as a line of key=value pairs:
#   1. trainer throughput on cuda, fp32 and bf16, against snnTorch and SpikingJelly (default and careful layouts)
#   2. population training on cuda, K = 1, 8, 32, 64, MLP and conv net, with the whole-study line at K = 64
#   3. population-based training: a K = 32 PBT population against K = 1, member-epochs per second, both models
#   4. a 16-trial quickstart study with --gpus auto --trials-per-gpu 8: trials per hour, GPU utilisation
#
#   bash benchmarks/gpu_check.sh                  # on the GPU machine (no network needed)
#   bash benchmarks/gpu_check.sh --fetch-wheels   # beforehand, where pip reaches PyPI: wheels into .whl/
#
# The GPU machine needs python3 with torch (CUDA) and this repository; the Python packages its image lacks travel
# as wheels in .whl/ and are installed into a scratch folder (GPU_CHECK_SITE), never into the image's Python. The
# repository is used in place through PYTHONPATH (no pip install -e, which would need an index). Each phase has a
# time limit (GPU_CHECK_THROUGHPUT_S, GPU_CHECK_POPULATION_S, GPU_CHECK_PBT_S, GPU_CHECK_STUDY_S); a phase that runs
# over is stopped, says so in its `phase=` line, and the next one runs. See benchmarks/README.md.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
PY=${PYTHON:-python3}
WHEELS=${GPU_CHECK_WHEELS:-$ROOT/.whl}
SITE=${GPU_CHECK_SITE:-/tmp/gpu_check_site}
# Packages the GPU image lacks (its list has torch, numpy, pandas, pyarrow, pyyaml, scikit-learn, matplotlib, rich,
# packaging, but not these), and typing-extensions, which pydantic needs recent; versions: .ci/constraints.txt.
CARRIED="optuna alembic sqlalchemy colorlog mako pydantic pydantic-core annotated-types typing-inspection
typing-extensions snntorch spikingjelly loguru"

die() {
  echo "gpu_check: $1" >&2
  exit "${2:-1}"
}

fetch_wheels() {
  mkdir -p "$WHEELS" || die "cannot create $WHEELS"
  # shellcheck disable=SC2086 # CARRIED is a list of names
  "$PY" -m pip download -q --no-deps --only-binary=:all: -c "$ROOT/.ci/constraints.txt" \
    --python-version "${GPU_CHECK_PY_VERSION:-3.12}" --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$WHEELS" $CARRIED || die "pip download failed (see above)"
  echo "gpu_check: $(ls "$WHEELS"/*.whl | wc -l) wheels in $WHEELS ($(du -sh "$WHEELS" | cut -f1)); carry that folder"
}

case "${1:-}" in
  --fetch-wheels) fetch_wheels; exit 0 ;;
  "") ;;
  *) die "unknown argument '$1' (usage: bash benchmarks/gpu_check.sh [--fetch-wheels])" 2 ;;
esac

# A GPU first: without one nothing below means anything.
"$PY" -c "import torch" 2>/dev/null || die "$PY cannot import torch (set PYTHON to the interpreter that has it)"
"$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null \
  || die "no CUDA GPU found (torch.cuda.is_available() is False)"

# Carried wheels whose distribution the image lacks or has in an older version (an image's newer copy wins).
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  mapfile -t missing < <("$PY" - "$WHEELS" <<'EOF'
import importlib.metadata as md
import pathlib
import sys

from packaging.version import Version

for wheel in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    name, version = wheel.name.split("-")[:2]
    try:
        if Version(md.version(name)) >= Version(version):
            continue
    except md.PackageNotFoundError:
        pass
    print(wheel)
EOF
  )
  if [ "${#missing[@]}" -gt 0 ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
      "${missing[@]}" || die "installing the wheels of $WHEELS into $SITE failed (see above)"
  fi
fi
export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
"$PY" -c "import optuna, pydantic, yaml, sparsity_search.cli" 2>/dev/null || die "$("$PY" -c \
  "import optuna, pydantic, yaml, sparsity_search.cli" 2>&1 | tail -n1); carry wheels: see benchmarks/README.md"

"$PY" - <<'EOF'
import torch

props = torch.cuda.get_device_properties(0)
print(f"gpu_check gpu={props.name.replace(' ', '_')} gpus={torch.cuda.device_count()} "
      f"memory_gb={props.total_memory / 2**30:.0f} torch={torch.__version__} cuda={torch.version.cuda}")
EOF

# phase NAME LIMIT_S COMMAND...: run it under a time limit (its whole process group), then one summary line.
failed_phases=""
phase() {
  local name=$1 limit=$2 start=$SECONDS rc over=no
  shift 2
  timeout --kill-after=10 "$limit" "$@"
  rc=$?
  [ "$rc" -eq 124 ] && over=yes
  echo "phase=$name rc=$rc wall_s=$((SECONDS - start)) limit_s=$limit timed_out=$over"
  [ "$rc" -eq 0 ] || failed_phases+=",$name"
}

phase throughput "${GPU_CHECK_THROUGHPUT_S:-165}" "$PY" benchmarks/trainer_throughput.py --device cuda \
  --compare-peers --seconds "${GPU_CHECK_SECONDS:-1}" --accuracy-epochs 2 --memory-timesteps 0

phase population "${GPU_CHECK_POPULATION_S:-200}" "$PY" benchmarks/population.py --device cuda \
  --ks 1,8,32,64 --epochs 2 --repeats 1

phase pbt "${GPU_CHECK_PBT_S:-75}" "$PY" benchmarks/population.py --device cuda --ks "" --pbt 32 --epochs 3

# A real multi-process study on the GPU, sampled by nvidia-smi every 200 ms in the background.
gpu_study() {
  local tmp smi=0 start=$SECONDS rc wall
  tmp=$(mktemp -d)
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 200 >"$tmp/smi.csv" &
    smi=$!
  fi
  "$PY" -m sparsity_search launch studies/quickstart.yaml --n-trials 16 --gpus auto --trials-per-gpu 8 \
    --device cuda --results "$tmp/results" --quiet >"$tmp/launch.log" 2>&1
  rc=$?
  wall=$((SECONDS - start))
  [ "$smi" -ne 0 ] && kill "$smi" 2>/dev/null && wait "$smi" 2>/dev/null
  if [ "$rc" -ne 0 ]; then
    echo "# gpu_study launch failed (rc=$rc): $(tail -n1 "$tmp/launch.log")"
  fi
  "$PY" - "$tmp" "$wall" <<'EOF'
import sys
from pathlib import Path

from sparsity_search import open_study

tmp, wall = Path(sys.argv[1]), max(int(sys.argv[2]), 1)
trials = open_study("quickstart", results=str(tmp / "results")).trials()
complete = int((trials["state"] == "COMPLETE").sum())
util, mem = [], []
smi = tmp / "smi.csv"
for line in smi.read_text().splitlines() if smi.exists() else []:
    fields = [f.strip() for f in line.split(",")]
    if len(fields) == 2 and all(f.replace(".", "").isdigit() for f in fields):
        util.append(float(fields[0]))
        mem.append(float(fields[1]))
stats = (f"gpu_util_mean={sum(util) / len(util):.0f} gpu_util_max={max(util):.0f} gpu_mem_max_mb={max(mem):.0f} "
         f"smi_samples={len(util)}" if util else "gpu_util_mean=na gpu_util_max=na gpu_mem_max_mb=na smi_samples=0")
print(f"gpu_study study=quickstart trials={len(trials)} complete={complete} gpus=auto trials_per_gpu=8 "
      f"wall_s={wall} trials_per_hour={complete / wall * 3600:.0f} {stats}")
EOF
  rm -rf "$tmp"
  return "$rc"
}
export -f gpu_study
export PY
phase gpu_study "${GPU_CHECK_STUDY_S:-90}" bash -c gpu_study
echo "gpu_check total_wall_s=$SECONDS failed_phases=$(echo "${failed_phases:-,none}" | cut -c2-)"
[ -z "$failed_phases" ] || exit 1
