#!/usr/bin/env bash
# The CUDA backend's check on a GPU machine (`make gpucheck`): environment, a fresh CUDA build, the CUDA tests
# (first with MSMIX_CUDA_SYNC=1, so a fault names its kernel), the whole suite, the CUDA op benchmarks beside
# their PyTorch twin, the CPU op benchmarks, and a short markdown report. One deadline (GPUCHECK_SECONDS,
# default 480) bounds everything, each step also has its own timeout, and a step that fails does not stop the
# others. Report: $OUT/gpucheck.md when $OUT is set (the device tool), else <build dir>/gpucheck.md; the full
# log beside it (gpucheck.log). Exit status 0 only when every step passed.
#
# Environment: GPUCHECK_BUILD (build dir, default build-gpucheck, wiped first unless GPUCHECK_REUSE=1, for a
#   rerun on the same machine after a fix), GPUCHECK_JOBS (default 16), GPUCHECK_SECONDS (deadline, 480),
#   GPUCHECK_COMMIT (the commit the report names, when a copied tree's .git lags behind it), GPUCHECK_ONLY (a
#   space-separated list of step names: only those run, with build and info; for a rerun that checks fixes
#   within the device time left), MSMIX_DEBS (a folder of Debian .debs, used only when the build's headers
#   are missing: unpacked under /tmp/msmix-deps and built with DEPS_PREFIX, for a machine that cannot reach a
#   package registry).
# `bash bench/gpucheck.sh --fetch-debs DIR` (on a machine with apt, e.g. the dev box): downloads those .debs.
# With the device tool: fetch into build-gpudeps (git-ignored), carry it, and run
# `MSMIX_DEBS=build-gpudeps bash bench/gpucheck.sh` (rather than make gpucheck: the machine may lack make).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES="doctest-dev libfmt-dev libfmt9 libopenblas-openmp-dev libopenblas0-openmp libgfortran5 libquadmath0
nlohmann-json3-dev libcli11-dev make"
HEADERS="/usr/include/doctest/doctest.h /usr/include/fmt/format.h
/usr/include/x86_64-linux-gnu/openblas-openmp/cblas.h /usr/include/nlohmann/json.hpp /usr/include/CLI/CLI.hpp"

if [ "${1:-}" = "--fetch-debs" ]; then
  dir=${2:?usage: bench/gpucheck.sh --fetch-debs DIR}
  mkdir -p "$dir"
  # shellcheck disable=SC2086
  (cd "$dir" && apt-get download $PACKAGES)
  ls -l "$dir"
  exit 0
fi

START=$(date +%s)
DEADLINE=$((START + ${GPUCHECK_SECONDS:-480}))
BUILD=${GPUCHECK_BUILD:-build-gpucheck}
JOBS=${GPUCHECK_JOBS:-16}
REPORT_DIR=${OUT:-$BUILD}
[ "${GPUCHECK_REUSE:-0}" = 1 ] || rm -rf "$BUILD"
mkdir -p "$BUILD" "$REPORT_DIR"
BIN=$(cd "$BUILD" && pwd)  # absolute, for the steps that run from tests/
REPORT=$REPORT_DIR/gpucheck.md
LOG=$REPORT_DIR/gpucheck.log
: >"$LOG"
STEPS=""    # markdown rows: | step | status | seconds |
FAILED=0
FAILED_STEPS=""

log() { echo "$@" | tee -a "$LOG"; }

# step NAME MAX_SECONDS COMMAND...: runs the command under `timeout`, bounded by the deadline too; its output
# goes to the log and to $BUILD/step-NAME.txt; records ok / FAILED (rc) / TIMEOUT / skipped.
step() {
  local name=$1 max=$2
  shift 2
  if [ -n "${GPUCHECK_ONLY:-}" ] && [[ " build build-without-cudnn info $GPUCHECK_ONLY " != *" $name "* ]]; then
    STEPS+="| $name | not selected (GPUCHECK_ONLY) | 0 |"$'\n'
    return 0
  fi
  local left=$((DEADLINE - $(date +%s) - 15))
  local limit=$((max < left ? max : left))
  if [ "$limit" -lt 10 ]; then
    log "=== $name: skipped (deadline)"
    STEPS+="| $name | skipped (deadline) | 0 |"$'\n'
    FAILED=1
    return 0
  fi
  log "=== $name (limit ${limit}s): $*"
  local t0 rc=0
  t0=$(date +%s)
  timeout --kill-after=5 "$limit" "$@" >"$BUILD/step-$name.txt" 2>&1 || rc=$?
  cat "$BUILD/step-$name.txt" >>"$LOG"
  local secs=$(($(date +%s) - t0)) status=ok
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then status="TIMEOUT after ${limit}s"; elif [ "$rc" != 0 ]; then status="FAILED (exit $rc)"; fi
  [ "$status" = ok ] || { FAILED=1; FAILED_STEPS+=" $name"; }
  log "=== $name: $status in ${secs}s"
  STEPS+="| $name | $status | $secs |"$'\n'
}

# ---- environment: the CUDA toolkit (nvcc on PATH, else /usr/local/cuda), and cuBLAS and the CUDA runtime
# wherever this image keeps them: a toolkit whose libraries are not in $CUDA_HOME/lib64 (a pip-installed one,
# say) gets its folders passed to make, with unversioned links made for the linker where only libX.so.N exists.
NVCC_BIN=$(command -v nvcc || true)
[ -n "$NVCC_BIN" ] || NVCC_BIN=${CUDA_HOME:-/usr/local/cuda}/bin/nvcc
CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(readlink -f "$NVCC_BIN")")")}
export PATH="$PATH:$CUDA_HOME/bin"
CUDA_MAKE_ARGS=()
find_lib() {  # find_lib NAME: the first folder holding NAME.so or NAME.so.* (toolkit first, then /usr, /opt)
  local d
  for d in "$CUDA_HOME/lib64" "$CUDA_HOME/lib" "$CUDA_HOME/targets/x86_64-linux/lib"; do
    ls "$d/$1".so* >/dev/null 2>&1 && { echo "$d"; return 0; }
  done
  timeout 30 find /usr /opt -name "$1.so*" -not -path '*/stubs/*' 2>/dev/null | head -1 | xargs -r dirname
}
CUBLAS_DIR=$(find_lib libcublas || true)
if [ -n "$CUBLAS_DIR" ] && [ "$CUBLAS_DIR" != "$CUDA_HOME/lib64" ]; then
  links=/tmp/msmix-cuda-lib
  mkdir -p "$links"
  for lib in libcublas libcublasLt libcudart; do
    dir=$(find_lib "$lib" || true)
    [ -n "$dir" ] || continue
    [ -e "$dir/$lib.so" ] || ln -sf "$(ls "$dir/$lib".so.* | head -1)" "$links/$lib.so"
    CUDA_EXTRA_LD+=" -L$dir -Wl,-rpath,$dir"
  done
  CUDA_MAKE_ARGS+=(CUDA_EXTRA_LDFLAGS="-L$links$CUDA_EXTRA_LD")
  [ -e "$CUDA_HOME/lib64/libcudart_static.a" ] || CUDA_MAKE_ARGS+=(CUDART=cudart)
  inc=$(timeout 30 find "$CUDA_HOME" /usr /opt -name cublas_v2.h 2>/dev/null | head -1 | xargs -r dirname)
  [ -z "$inc" ] || CUDA_MAKE_ARGS+=(CUDA_EXTRA_INC="-I$inc")
fi
# cuDNN (the MSMIX_CUDA_LSTM=cudnn* and MSMIX_CUDA_CONV=cudnn choices): the toolkit's, else the one PyTorch's pip wheels bring (nvidia/cudnn: headers
# and libcudnn.so.9 but no unversioned link, which the linker needs; cuDNN loads its sub-libraries at run time,
# hence LD_LIBRARY_PATH).
CUDNN_HOME=""
if [ -f "$CUDA_HOME/include/cudnn.h" ]; then
  CUDNN_HOME=$CUDA_HOME
else
  wheel=$(python3 -c 'import nvidia.cudnn as c; print(list(c.__path__)[0])' 2>/dev/null || true)
  if [ -n "$wheel" ] && [ -f "$wheel/include/cudnn.h" ] && ls "$wheel"/lib/libcudnn.so* >/dev/null 2>&1; then
    CUDNN_HOME=$wheel
    links=/tmp/msmix-cudnn-lib
    mkdir -p "$links"
    [ -e "$wheel/lib/libcudnn.so" ] || ln -sf "$(ls "$wheel"/lib/libcudnn.so.* | head -1)" "$links/libcudnn.so"
    CUDA_MAKE_ARGS+=(CUDNN=1 CUDNN_HOME="$wheel" CUDNN_LIBDIR="$wheel/lib" CUDNN_EXTRA_LDFLAGS="-L$links")
    export LD_LIBRARY_PATH="$wheel/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
fi
[ -n "$CUDNN_HOME" ] || CUDA_MAKE_ARGS+=(CUDNN=0)
# Build only for the lent GPU's architecture (half the nvcc time of CI's sm_80 + sm_90).
CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.[:space:]' || true)
[ -z "$CAP" ] || CUDA_MAKE_ARGS+=(CUDA_ARCHS="$CAP")
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  # GPUCHECK_COMMIT: the commit the caller's tree is at (a copied tree's .git may lag behind it)
  echo "commit: ${GPUCHECK_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')}"
  echo "host: $(uname -srm), $(nproc) cores"
  echo "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -3 | tr '\n' ';')"
  echo "nvcc: $(nvcc --version 2>&1 | grep -m1 release || echo 'not found')"
  echo "g++: $(g++ --version 2>&1 | head -1)"
  echo "make: $(make --version 2>&1 | head -1)"
  echo "CUDA_HOME: $CUDA_HOME; make: ${CUDA_MAKE_ARGS[*]:-(defaults)}"
  echo "cuBLAS: ${CUBLAS_DIR:-not found} ($(ls "${CUBLAS_DIR:-/nonexistent}"/libcublas.so.* 2>/dev/null | head -1 | xargs -r basename))"
  echo "cuDNN: ${CUDNN_HOME:-none found} (headers $(sed -n 's/^#define CUDNN_\(MAJOR\|MINOR\|PATCHLEVEL\) \([0-9]*\).*/\2/p' "${CUDNN_HOME:-/nonexistent}"/include/cudnn_version.h 2>/dev/null | head -3 | paste -sd. || true)); cuDNN choices $([ -n "${CUDNN_HOME:-}" ] && echo built in || echo 'not built: their steps only skip')"
  echo "python3 torch: $(python3 -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' 2>&1 | tail -1)"
} >"$BUILD/env.txt" 2>&1 || true
tee -a "$LOG" <"$BUILD/env.txt"
nvidia-smi >>"$LOG" 2>&1 || log "nvidia-smi: not available"

# ---- build dependencies: installed, or unpacked from carried .debs (make included)
MAKE_ARGS=(BUILD="$BUILD" CUDA=1 -j"$JOBS" ${CUDA_MAKE_ARGS[@]+"${CUDA_MAKE_ARGS[@]}"})
missing=0
for h in $HEADERS; do [ -f "$h" ] || missing=1; done
command -v make >/dev/null || missing=1
if [ "$missing" = 1 ]; then
  if [ -n "${MSMIX_DEBS:-}" ] && ls "$MSMIX_DEBS"/*.deb >/dev/null 2>&1; then
    MSMIX_DEBS=$(cd "$MSMIX_DEBS" && pwd)
    prefix=/tmp/msmix-deps
    mkdir -p "$prefix"
    for deb in "$MSMIX_DEBS"/*.deb; do
      if command -v dpkg-deb >/dev/null; then
        dpkg-deb -x "$deb" "$prefix"
      else  # a .deb is an ar archive holding data.tar.*
        rm -rf /tmp/msmix-deb && mkdir -p /tmp/msmix-deb
        (cd /tmp/msmix-deb && ar x "$deb")
        tar -xf /tmp/msmix-deb/data.tar.* -C "$prefix"
      fi
    done
    MAKE_ARGS+=(DEPS_PREFIX="$prefix")
    command -v make >/dev/null || export PATH="$PATH:$prefix/usr/bin"
    export LD_LIBRARY_PATH="$prefix/usr/lib/x86_64-linux-gnu:$prefix/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    log "deps: unpacked $(ls "$MSMIX_DEBS"/*.deb | wc -l) packages from $MSMIX_DEBS into $prefix"
  else
    log "deps: missing ($(for h in $HEADERS; do [ -f "$h" ] || printf '%s ' "$h"; done)$(command -v make >/dev/null || echo make)) and no MSMIX_DEBS folder; the build will try scripts/deps.sh"
  fi
fi

# ---- build, tests, benchmarks
TARGETS=("$BUILD/msmix" "$BUILD/test_msmix" "$BUILD/bench_cuda_ops" "$BUILD/bench_ops")
step build 270 make "${MAKE_ARGS[@]}" "${TARGETS[@]}"
# A build that fails in its cuDNN part (a wheel's headers or library this tree was never built against) is
# redone without cuDNN, so that one foreign library does not cost the whole run: the cuDNN choices' cases
# then only skip, and the report keeps the failed build. The objects whose flags name cuDNN are rebuilt.
if [[ " $FAILED_STEPS " == *" build "* ]] && [ -n "$CUDNN_HOME" ] &&
  grep -i -E 'error|undefined reference|cannot find' "$BUILD/step-build.txt" | grep -q -i cudnn; then
  log "!!! the build with cuDNN ($CUDNN_HOME) failed in its cuDNN part: building again without cuDNN"
  CUDNN_HOME=""
  rm -f "$BUILD"/obj/ops/cuda/*cudnn*.cu.o "$BUILD/obj/msmix/info.o"
  MAKE_ARGS+=(CUDNN=0)
  step build-without-cudnn 200 make "${MAKE_ARGS[@]}" "${TARGETS[@]}"
fi
step info 20 "$BIN/msmix" info
if ! grep -q '^gpu 0:' "$BUILD/step-info.txt" 2>/dev/null; then
  log "!!! msmix sees no GPU (see the info step): the GPU tests below only skip"
  STEPS+="| msmix sees a GPU | FAILED | 0 |"$'\n'
  FAILED=1
fi
# The CUDA suites first, synchronising after every launch so an asynchronous fault names its kernel; then the
# training-step comparison with PyTorch (the issue's goal) and the persistent LSTM / CUDA graph step, the op
# benchmarks and a step's op profile, a real-data run when the data was carried, the fused attention, the
# sanitizers, then the rest of the suite (the CPU suites also run in CI) and the CPU op benchmark: what CI
# cannot check first, so a run cut short by the deadline loses the least.
step cuda-tests 150 env MSMIX_CUDA_SYNC=1 OMP_WAIT_POLICY=passive bash -c "cd tests && '$BIN/test_msmix' -tc='cuda*'"
step bench-models 150 env TORCH_PYTHON="$(command -v python3)" PYTHONUNBUFFERED=1 python3 bench/compare_models.py \
  --msmix "$BIN/msmix" --device cuda --threads 4 --steps 20 --warmup 3 --markdown
# The LSTM kernels (the persistent scan is the default since the first H200 pass; 2026-11-27): the trainer tests
# that take the default kernel, through the stepwise scan (the LSTM, backbone and graph tests set each kernel
# themselves); then, whatever the tests said, the three LSTM backbones' training steps with the stepwise scan,
# the persistent one, and cuDNN's LSTM where the build has it, the last two also inside a captured CUDA graph
# (cuda_graph), and cuDNN's persistent algorithm captured (a refusal prints its error as the row). Early, since it is what the step goal waits on;
# racecheck / synccheck over the persistent kernels come with the sanitizers.
step lstm-scans 180 env MSMIX_CUDA_LSTM=stepwise MSMIX_CUDA_SYNC=1 OMP_WAIT_POLICY=passive bash -c \
  "cd tests && '$BIN/test_msmix' -tc='cuda training*,host reads*'; rc=\$?; kernels='stepwise persistent persistent+graph'; \
  [ -n '$CUDNN_HOME' ] && kernels+=' cudnn cudnn+graph cudnn-persistent+graph'; for m in lf_dnn tfn lmf; do for l in \$kernels; do \
  MSMIX_CUDA_SYNC=0 MSMIX_CUDA_LSTM=\${l%+graph} '$BIN/msmix' bench --model \$m --data synthetic:mosi \
  --device cuda --steps 20 --warmup 3 --set cuda_graph=\$([ \$l != \${l%+graph} ] && echo true || echo false) \
  --json | tail -1; done; done; exit \$rc"
# The training-step goal with the captured step (cuda_graph=true; the persistent LSTM and MulT's composite
# attention are the defaults, the fastest measured), beside the same PyTorch eager steps. MISA is left out: on
# synthetic:mosi it reads lengths on the host and refuses capture, so its row would repeat bench-models'.
step bench-models-fast 150 env TORCH_PYTHON="$(command -v python3)" \
  PYTHONUNBUFFERED=1 python3 bench/compare_models.py --msmix "$BIN/msmix" --device cuda --threads 4 --steps 20 \
  --warmup 3 --markdown --model lf_dnn --model tfn --model lmf --model mult --model almt --model glomo \
  --msmix-arg=--set --msmix-arg=cuda_graph=true
# MS-Mix's training step (TFN, the PyTorch twin in bench/torch/msmix_twin.py): the paper's method, uncaptured
# beside PyTorch; then msmix's step uncaptured and captured (cuda_graph: the selection runs in the graph).
step bench-msmix 80 env TORCH_PYTHON="$(command -v python3)" PYTHONUNBUFFERED=1 bash -c "set -o pipefail; \
  python3 bench/compare_models.py --msmix '$BIN/msmix' --device cuda --threads 4 --steps 20 --warmup 3 --markdown \
  --mix msmix || exit 1; for g in false true; do '$BIN/msmix' bench --model tfn --mix msmix --data synthetic:mosi \
  --device cuda --steps 20 --warmup 3 --set cuda_graph=\$g --json | tail -1 || exit 1; done"
step bench-cuda 45 bash -c "set -o pipefail; '$BIN/bench_cuda_ops' --json | tee '$BIN/bench_cuda_ops.json'"
step bench-torch 60 python3 bench/torch/bench_cuda_ops.py --ours "$BIN/bench_cuda_ops.json"
# Where a GPU step's time goes, op by op (msmix bench --ops: every range waits for its kernels).
step ops-profile 40 bash -c "set -o pipefail; rc=0; for m in lf_dnn mult; do \
  '$BIN/msmix' bench --model \$m --data synthetic:mosi --device cuda --steps 5 --warmup 2 --ops \
  | sed -n '/^bench:/p;/^where/,/^  inside ranges/p' || rc=1; done; exit \$rc"
# The kernels' own GPU time in a captured LF_DNN and MulT step (Nsight Systems, when the image has it): what
# a step waits on once the launches are gone.
NSYS=$(command -v nsys || ls "$CUDA_HOME"/bin/nsys /opt/nvidia/nsight-systems*/bin/nsys 2>/dev/null | head -1 || true)
if [ -n "$NSYS" ]; then
  step nsys 90 bash -c "for m in lf_dnn mult; do \
    '$NSYS' profile --cuda-graph-trace=node --force-overwrite true -o '$BIN/nsys-\$m' '$BIN/msmix' bench --model \$m \
    --data synthetic:mosi --device cuda --steps 10 --warmup 3 --set cuda_graph=true > /dev/null \
    && '$NSYS' stats --report cuda_gpu_kern_sum --format csv '$BIN/nsys-\$m.nsys-rep' 2>/dev/null \
    | cut -d, -f1-4,9 | head -16; done"
fi
# Real MOSI (copy ../shared/data/mosi-utterance/mosi_utterance.pkl into build-gpudeps/ and carry that): one
# MulT run with MS-Mix on the GPU, to set beside the CPU's (docs/results.md, seed 1111).
DATA=${MSMIX_DATA:-${MSMIX_DEBS:-build-gpudeps}/mosi_utterance.pkl}
if [ -f "$DATA" ]; then
  step train-real 90 "$BIN/msmix" train --model mult --data "$DATA" --mix msmix --seed 1111 --device cuda \
    --out "$BIN/run-mult-msmix-cuda"
fi
# The fused CUDA attention inside the models (opt-in: the composite measured faster in MulT's step on an
# H200): the trainer tests with MulT through it (the op's own tests run in cuda-tests), and MulT's training
# step with it beside the composite's, each with and without cuda_graph.
step fused-attention 90 env MSMIX_CUDA_FUSED_ATTENTION=1 MSMIX_CUDA_SYNC=1 OMP_WAIT_POLICY=passive bash -c \
  "cd tests && '$BIN/test_msmix' -tc='cuda training*,cuda graph*,host reads*'; rc=\$?; for f in 0 1; do for g in false true; do MSMIX_CUDA_SYNC=0 \
  MSMIX_CUDA_FUSED_ATTENTION=\$f '$BIN/msmix' bench --model mult --data synthetic:mosi --device cuda --steps 10 \
  --warmup 2 --set cuda_graph=\$g --json | tail -1; done; done; exit \$rc"
# What bounds the row kernels that missed 70% of copy (the softmax and layer_norm forwards: three-pass,
# register-held and warp-row), by Nsight Compute, when the image has it and lets us read the counters:
# memory and compute against their peaks, occupancy, where the warps stall. Each memory-bound case runs once.
NCU=$(command -v ncu || ls "$CUDA_HOME"/bin/ncu /opt/nvidia/nsight-compute*/ncu 2>/dev/null | head -1 || true)
if [ -n "$NCU" ]; then
  step ncu 60 "$NCU" --kernel-name 'regex:forward_(kernel|warp_kernel|registers_kernel)' --launch-count 6 \
    --section SpeedOfLight --section Occupancy --section WarpStateStats "$BIN/bench_cuda_ops" --memory-only --once
else
  log "=== ncu: not in this image (Nsight Compute): the row kernels' analysis is skipped"
fi
# compute-sanitizer's memcheck over the kernels with the most index arithmetic (plain cudaMalloc, so every
# block is checked), when the image has it and time is left.
SANITIZER=$(command -v compute-sanitizer || ls "$CUDA_HOME"/bin/compute-sanitizer 2>/dev/null || true)
if [ -n "$SANITIZER" ]; then
  step memcheck 90 env MSMIX_ALLOC=system OMP_WAIT_POLICY=passive bash -c "cd tests && '$SANITIZER' --tool memcheck \
    --error-exitcode 1 '$BIN/test_msmix' -tc='cuda softmax*,cuda layer_norm*,cuda optimizers*,cuda gradient clipping*,cuda loader*,cuda index*,cuda select_pairs*,cuda attention: rows*,cuda attention: dropout*'"
  # The fused attention kernels stage keys and values in shared memory, the pair selection its counts and
  # scans: races and barrier misuse.
  step racecheck 90 env MSMIX_ALLOC=system OMP_WAIT_POLICY=passive bash -c "cd tests && '$SANITIZER' --tool racecheck \
    --error-exitcode 1 '$BIN/test_msmix' -tc='cuda attention: rows*,cuda attention: dropout*,cuda select_pairs*' && \
    '$SANITIZER' --tool synccheck --error-exitcode 1 '$BIN/test_msmix' \
    -tc='cuda attention: rows*,cuda attention: dropout*,cuda select_pairs*'"
  # The persistent LSTM kernels keep h and c (dh and dc) in shared memory between __syncthreads.
  step lstm-racecheck 90 env MSMIX_ALLOC=system OMP_WAIT_POLICY=passive bash -c "cd tests && '$SANITIZER' --tool \
    racecheck --error-exitcode 1 '$BIN/test_msmix' -tc='cuda lstm_scan: persistent on small*' && '$SANITIZER' --tool synccheck \
    --error-exitcode 1 '$BIN/test_msmix' -tc='cuda lstm_scan: persistent on small*'"
fi
# The rest of the suite, which CI runs too (the host-reads and bench cases use the GPU here).
step other-tests 150 env OMP_WAIT_POLICY=passive bash -c "cd tests && '$BIN/test_msmix' -tce='cuda*'"
step bench-cpu 40 "$BIN/bench_ops"

# ---- report
summary() {  # the doctest summary lines of a test step, and its first failures
  local f=$BUILD/step-$1.txt
  [ -f "$f" ] || return 0
  grep -E '^\[doctest\] (test cases|assertions)' "$f" || true
  grep -E -A3 'ERROR|FATAL|fatal error|Segmentation|signal' "$f" | head -40 || true
}
step_output() {  # STEP LINES TITLE: a step's output but the per-step progress lines, at most LINES, as a section
  [ -f "$BUILD/step-$1.txt" ] || return 0
  echo "## $3"
  echo '```'
  grep -v '^step ' "$BUILD/step-$1.txt" | head -"$2"
  echo '```'
  echo
}
bench_lines() {  # STEP TITLE: the msmix bench JSON lines a step printed, and its runs' errors, as a section
  [ -f "$BUILD/step-$1.txt" ] || return 0
  echo "## $2"
  echo '```'
  grep -e '^{' -e '^msmix: error' "$BUILD/step-$1.txt" | sed 's/[{}"]//g' | cut -c1-700
  echo '```'
  echo
}
{
  echo "# gpucheck ($(date -u '+%Y-%m-%d'))"
  echo
  echo '```'
  cat "$BUILD/env.txt"
  echo '```'
  echo
  echo "| step | status | seconds |"
  echo "|---|---|---:|"
  printf '%s' "$STEPS"
  echo
  echo "Total: $(($(date +%s) - START)) s."
  echo
  echo "## the issue's goals and the kernel choices (bench/gpucheck_goals.py)"
  python3 bench/gpucheck_goals.py "$BUILD" 2>&1 || true
  for s in $FAILED_STEPS; do
    echo
    echo "## $s failed: the end of its output"
    echo '```'
    tail -25 "$BUILD/step-$s.txt"
    echo '```'
  done
  for s in cuda-tests other-tests fused-attention lstm-scans; do  # doctest's totals and the first failures
    echo
    echo "## $s"
    echo '```'
    summary "$s"
    echo '```'
  done
  echo
  echo "## training steps on the GPU beside PyTorch eager (bench/compare_models.py; ratio = torch / msmix)"
  [ -f "$BUILD/step-bench-models.txt" ] && grep '^|' "$BUILD/step-bench-models.txt"
  echo
  echo "## the same, msmix with cuda_graph=true"
  [ -f "$BUILD/step-bench-models-fast.txt" ] && grep '^|' "$BUILD/step-bench-models-fast.txt"
  echo
  echo "## MS-Mix's training step (TFN) beside its PyTorch twin"
  [ -f "$BUILD/step-bench-msmix.txt" ] && grep '^|' "$BUILD/step-bench-msmix.txt"
  if [ -f "$BIN/run-mult-msmix-cuda/results.json" ]; then
    echo
    echo "## real MOSI, MulT + MS-Mix, seed 1111, on the GPU"
    echo '```'
    cat "$BIN/run-mult-msmix-cuda/results.json"
    echo
    tail -3 "$BIN/run-mult-msmix-cuda/log.jsonl"
    echo '```'
  fi
  echo
  bench_lines bench-msmix "TFN + MS-Mix training steps on the GPU: uncaptured, then with cuda_graph"
  bench_lines fused-attention "MulT training steps on the GPU: composite attention, then fused; each uncaptured, then with cuda_graph"
  bench_lines lstm-scans "LSTM backbones' training steps on the GPU: stepwise scan, persistent, persistent + cuda_graph, cudnn, cudnn + cuda_graph, cudnn-persistent + cuda_graph"
  step_output ops-profile 70 "where a GPU training step's time goes (msmix bench --ops)"
  step_output nsys 40 "GPU kernels of captured steps (nsys cuda_gpu_kern_sum: time %, total ns, instances, avg ns, name)"
  if [ -f "$BUILD/step-ncu.txt" ]; then
    echo "## The row kernels under Nsight Compute (speed of light, occupancy, warp state; the full output is in the log)"
    echo '```'
    grep -E 'forward_|Throughput|Duration|Occupancy|Registers Per|Block Limit|Warp Cycles|Eligible|==ERROR==|==WARNING==|ERR_' \
      "$BUILD/step-ncu.txt" | cut -c1-160 | head -120
    echo '```'
    echo
  fi
  echo "## CUDA ops (bench/bench_cuda_ops.cpp)"
  echo '```'
  [ -f "$BUILD/step-bench-cuda.txt" ] && grep '^{' "$BUILD/step-bench-cuda.txt" | sed 's/[{}"]//g'
  echo '```'
  echo
  echo "## beside PyTorch eager (ratio = torch ms / msmix ms)"
  [ -f "$BUILD/step-bench-torch.txt" ] && grep '^|\|^torch' "$BUILD/step-bench-torch.txt"
  echo
  echo "## CPU ops (bench/bench_ops.cpp)"
  echo '```'
  [ -f "$BUILD/step-bench-cpu.txt" ] && cat "$BUILD/step-bench-cpu.txt"
  echo '```'
} >"$REPORT" 2>&1 || true
log "report: $REPORT"
cat "$REPORT"
exit "$FAILED"
