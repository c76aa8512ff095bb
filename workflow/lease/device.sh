#!/usr/bin/env bash
# The device side of a lease (workflow/lease/__init__.py says the whole procedure). Run by the
# device tool in its copy of the checkout:
#   call 1: bash workflow/lease/device.sh start .lease/call1   (install, copy to /tmp/run, start the daemon)
#   call 2: bash workflow/lease/device.sh feed .lease/call2    (the other datasets; wait; collect into $OUT)
#   call 3, if call 2's deadline came first: bash workflow/lease/device.sh collect
# The run itself is `daemon`, started by `start` with setsid so that it outlives the call.
set -uo pipefail
RUN=${LEASE_RUN:-/tmp/run}        # the run's own copy: later calls re-send the checkout, never into it
SITE=${LEASE_SITE:-/tmp/site}     # the carried wheels, installed
STATE=${LEASE_STATE:-/tmp/lease}  # status, phase logs, markers
BIN=${LEASE_BIN:-/tmp/bin}        # a `python` for the stages' commands, if the image lacks one
DEADLINE=${DEADLINE:-510}   # seconds a waiting call waits before collecting (the tool allows 600)
GPU_JOBS=${GPU_JOBS:-14}    # model jobs at once on the one GPU (16 cores; small models leave it idle between kernels)
T0=$(date +%s)

environment() {
  export PYTHONPATH=$SITE:$RUN PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
  export PATH=$BIN:$PATH
}

elapsed() { echo $(( $(date +%s) - T0 )); }

gpu_use() { command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; }

progress() { grep -hE 'steps \(' "$STATE"/phase*.log 2>/dev/null | tail -1; }

untar_datasets() {  # $1: a bundle folder; its data/*.tar.xz hold data/<scale>/processed/<name>/
  for archive in "$1"/data/*.tar.xz; do
    [ -e "$archive" ] || continue
    xz -dc "$archive" | tar -C "$RUN" -xf - || { echo "error: $archive did not unpack"; exit 1; }
  done
}

start() {
  local bundle=$1 here=$PWD
  [ -d "$bundle/whl" ] || { echo "error: $bundle/whl: no wheels; carry the bundle that 'python -m workflow.lease pack' wrote"; exit 2; }
  rm -rf "$STATE" && mkdir -p "$STATE" "$BIN"
  # LEASE_NO_INSTALL=1: the Python on PATH already has the packages (a rehearsal on this machine).
  [ -n "${LEASE_NO_INSTALL:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$bundle"/whl/*.whl 2>&1 | tail -3
  # The stages' commands call `python`; the image may have only `python3`.
  command -v python >/dev/null || { printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" > "$BIN/python"; chmod +x "$BIN/python"; }
  rm -rf "$RUN" && mkdir -p "$RUN"
  tar -C "$here" --exclude=./.lease -cf - . | tar -C "$RUN" -xf -
  cp -a "$bundle/gitdir" "$RUN/.git"
  cp "$bundle/late" "$bundle/scale" "$STATE/"
  tar -C "$RUN" -xf "$bundle/benchmarks.tar"
  untar_datasets "$bundle"
  [ -s "$STATE/late" ] || touch "$STATE/fed"   # everything came in call 1
  environment
  echo "set up in $(elapsed) s"
  python -c "import torch, snakemake, dvc, torchattacks, cv2, statsmodels; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" || exit 1
  (cd "$RUN" && git rev-parse HEAD && git status --porcelain --untracked-files=no -- . ':(exclude)results' ':(exclude)dvc.lock' | head -5)
  echo "cores $(nproc --all), $(free -g | awk '/Mem/ {print $2}') GiB"
  setsid nohup bash "$RUN/workflow/lease/device.sh" daemon > "$STATE/daemon.log" 2>&1 < /dev/null &
  sleep "${WATCH:-40}"
  cat "$STATE/daemon.log" "$STATE/status" 2>/dev/null; progress
  grep -hE "^Error|Exception|Traceback" "$STATE"/phase*.log 2>/dev/null | head -5
  gpu_use
  echo "call took $(elapsed) s"
}

daemon() {
  environment
  cd "$RUN" || exit 1
  local scale; scale=$(cat "$STATE/scale")
  local snakemake=(python -m snakemake --profile workflow/profiles/default --config "scale=$scale"
                   --cores "$(nproc --all)" --resources "gpu=$GPU_JOBS" --keep-going)
  # Only the model jobs may run: the local jobs' outputs came with the checkout, their inputs
  # (the raw mirror) did not. --allowed-rules takes every word after it: targets go before it.
  local allowed; allowed=$(python -m workflow.lease --scale "$scale" stages | sed -E "s/^$scale-//; s/-.*//" | sort -u | tr '\n' ' ')
  python -m workflow.lease --scale "$scale" targets early --late "$STATE/late" > "$STATE/early.txt"
  if [ -s "$STATE/early.txt" ]; then
    "${snakemake[@]}" $(cat "$STATE/early.txt") --allowed-rules $allowed > "$STATE/phase1.log" 2>&1
    echo "phase1 rc=$? at $(elapsed) s" >> "$STATE/status"
  fi
  while [ ! -e "$STATE/fed" ]; do sleep 1; done
  python -m workflow.lease --scale "$scale" targets all > "$STATE/all.txt"
  "${snakemake[@]}" $(cat "$STATE/all.txt") --allowed-rules $allowed > "$STATE/phase2.log" 2>&1
  echo "phase2 rc=$? at $(elapsed) s" >> "$STATE/status"
  local stages; stages=$(python -m workflow.lease --scale "$scale" stages)
  if grep -q "^  ${stages%%$'\n'*}:" dvc.yaml; then  # dvc.yaml describes params.yaml's scale only
    python -m dvc config --local core.no_scm true
    python -m dvc commit --force $stages > "$STATE/dvc.log" 2>&1
    echo "dvc rc=$? at $(elapsed) s" >> "$STATE/status"
  else
    echo "dvc: dvc.yaml has no stages of scale $scale, nothing to commit" >> "$STATE/status"
  fi
  touch "$STATE/done"
}

feed() {
  local bundle=$1
  untar_datasets "$bundle"
  touch "$STATE/fed"
  echo "fed in $(elapsed) s"; cat "$STATE/status" 2>/dev/null; progress
  wait_and_collect
}

wait_and_collect() {
  while [ ! -e "$STATE/done" ] && [ "$(elapsed)" -lt "$DEADLINE" ]; do
    sleep 15
    echo "t=$(elapsed) s $(progress) $(gpu_use)"
  done
  collect
}

collect() {
  cd "$RUN" || exit 1
  local scale; scale=$(cat "$STATE/scale")
  cat "$STATE/status" 2>/dev/null; progress
  grep -hE "^Error in rule|MissingInput|Exiting because" "$STATE"/phase*.log 2>/dev/null | sort | uniq -c | head -20
  [ -e "$STATE/done" ] || echo "the run is NOT finished: call 'bash workflow/lease/device.sh collect' again"
  md5sum results/"$scale"/models/*/model.pt > "$STATE/model_md5.txt" 2>/dev/null
  mkdir -p "$RUN/.lease-state" && cp "$STATE"/*.log "$STATE"/status "$STATE"/model_md5.txt "$RUN/.lease-state/" 2>/dev/null
  # The weights (model.pt) and checkpoints stay here: they are larger than a call returns.
  tar -cf - --exclude='*/model.pt' --exclude="results/$scale/checkpoints" \
      "results/$scale" dvc.lock "benchmarks/$scale" .lease-state | xz -T0 -3 > "$OUT/results.tar.xz"
  tar -cf - "logs/$scale" .snakemake/log 2>/dev/null | xz -T0 -6 > "$OUT/logs.tar.xz"
  ls -la "$OUT"
  echo "call took $(elapsed) s"
}

case "${1:-}" in
  start) start "${2:?the call-1 bundle folder}" ;;
  feed) feed "${2:?the call-2 bundle folder}" ;;
  collect) wait_and_collect ;;
  daemon) daemon ;;
  *) echo "usage: $0 start BUNDLE | feed BUNDLE | collect" >&2; exit 2 ;;
esac
