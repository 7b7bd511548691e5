#!/usr/bin/env bash
# The GPU benchmarks in one go, on a CUDA machine: bash bench/gpu.sh [--dry-run] [--no-install] [--out DIR]
#
#  1. bench/throughput.py: tinylm against transformers in one process, for BabyLlama-2 16M (16m:128x512),
#     BabyLlama-2 345M (345m:32x512) and FORGETTER's 221M (forgetter:12x512), once eager (both uncompiled)
#     and once compiled (tinylm's train.compile and transformers under torch.compile). Each row has
#     tokens/s, MFU (both) and peak memory (tinylm's; transformers' above it on CUDA).
#  2. FSDP, a 2-step smoke test when more than one GPU is visible: not implemented in tinylm yet, so it
#     says so (and records it) rather than failing; with one GPU it is skipped with a message.
#  3. Fused linear cross-entropy (bench/fused_ce.py) at vocab 50,257: PyTorch against liger-kernel and
#     cut-cross-entropy, memory and speed, if either is importable or installs (best-effort; --no-install
#     never installs).
#
# Each step writes DIR/gpu-<step>.json (default bench/results) and DIR/gpu-<step>.log; a failing step is
# reported and the others still run; the exit status is 1 if any step failed. --dry-run prints what it would
# run (and works without a GPU). PYTHON=... picks the interpreter; GPUS=N says how many GPUs there are
# instead of asking torch (the tests' dry runs).
set -u
cd "$(dirname "$0")/.."

dry_run=0
install=1
out=bench/results
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --no-install) install=0 ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "gpu.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

py=${PYTHON:-python}
gpus=${GPUS:-$("$py" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)}
if [ "$gpus" = 0 ] && [ "$dry_run" = 0 ]; then
  echo "gpu.sh: no CUDA device here: run it on a GPU machine (--dry-run prints what it would run)" >&2
  exit 2
fi
[ "$dry_run" = 1 ] || mkdir -p "$out"
echo "gpu.sh: $gpus CUDA device(s); results in $out/gpu-*.json$([ "$dry_run" = 1 ] && echo ' (dry run: nothing runs)')"

failed=0
step() {  # step NAME COMMAND...: its stdout is the JSON
  local name=$1; shift
  local json="$out/gpu-$name.json" log="$out/gpu-$name.log"
  if [ "$dry_run" = 1 ]; then
    echo "would run: $* > $json"
    return 0
  fi
  echo "gpu.sh: $name: $*"
  local start=$SECONDS
  if "$@" > "$json.tmp" 2> "$log"; then
    mv "$json.tmp" "$json"
    echo "gpu.sh: $name: wrote $json ($((SECONDS - start)) s)"
  else
    rm -f "$json.tmp"
    failed=1
    echo "gpu.sh: $name FAILED after $((SECONDS - start)) s: $(tail -n 2 "$log" | tr '\n' ' ')" >&2
  fi
}

note() {  # note NAME JSON-TEXT MESSAGE: a step that does not run, recorded as such
  echo "gpu.sh: $1: $3"
  [ "$dry_run" = 1 ] || printf '%s\n' "$2" > "$out/gpu-$1.json"
}

configs="16m:128x512 345m:32x512 forgetter:12x512"
# shellcheck disable=SC2086  # the configs are separate arguments
step throughput-eager "$py" bench/throughput.py --json --eager --configs $configs
# shellcheck disable=SC2086
step throughput-compiled "$py" bench/throughput.py --json --hf-compile --configs $configs

if [ "$gpus" -gt 1 ]; then
  note fsdp '{"fsdp": "not implemented", "gpus": '"$gpus"'}' \
    "2-step FSDP smoke test: not implemented (tinylm has no FSDP yet); nothing run"
else
  note fsdp '{"fsdp": "skipped", "gpus": '"$gpus"', "why": "needs more than one GPU"}' \
    "2-step FSDP smoke test skipped: it needs more than one GPU ($gpus here)"
fi

have_fused() { "$py" -c "import liger_kernel" 2>/dev/null || "$py" -c "import cut_cross_entropy" 2>/dev/null; }
if [ "$dry_run" = 1 ]; then
  echo "would install (best-effort, unless --no-install): liger-kernel, cut-cross-entropy, keeping this torch"
elif ! have_fused && [ "$install" = 1 ]; then
  torch_version=$("$py" -c "import torch; print(torch.__version__.split('+')[0])")
  for package in liger-kernel cut-cross-entropy; do  # pinned torch: never let them swap it
    "$py" -m pip install -q "$package" "torch==$torch_version" > "$out/gpu-fused-ce-install.log" 2>&1 \
      && echo "gpu.sh: installed $package" || echo "gpu.sh: $package did not install (see $out/gpu-fused-ce-install.log)"
  done
fi
if [ "$dry_run" = 1 ] || have_fused; then
  step fused-ce "$py" bench/fused_ce.py --json
else
  note fused-ce '{"fused_ce": "skipped", "why": "neither liger-kernel nor cut-cross-entropy is importable"}' \
    "fused linear cross-entropy skipped: neither liger-kernel nor cut-cross-entropy is importable"
fi

[ "$failed" = 0 ] || echo "gpu.sh: some steps failed (their .log files say why)" >&2
exit "$failed"
