#!/usr/bin/env bash
# Runs DESIGN.md's processor train step in weatherlens, PyTorch and JAX one after another on this machine and
# prints a table with the ratios. Not run in CI. Needs `cargo build --release` and bench/peers/setup.sh first.
#
#   bench/peers/compare.sh                       # R4/D128/L8 (5 steps) and R5/D128/L16 (3 steps)
#   CASES="4 128 8 5" bench/peers/compare.sh     # "R D L S" per case, cases separated by commas
#   FORMS="plain factored" bench/peers/compare.sh   # also time the peers with the factored first edge layer
#   WAIT_IDLE=90 bench/peers/compare.sh          # before each run, wait (up to 10 min) for >= 90 % idle CPU
#   PLAIN=1 bench/peers/compare.sh               # also time weatherlens with burn's own ops (--kernels plain)
#
# Every run is a separate process, so each peak RSS is that run's own. The load average before each run is
# printed with the CPU's idle share over the second before it: other processes slow every framework alike only
# if they run all the time.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${WEATHERLENS:-$root/target/release/weatherlens}"
python="${PYTHON:-$here/.venv/bin/python}"
out="$here/out"
cases="${CASES:-4 128 8 5,5 128 16 3}"
forms="${FORMS:-plain}"
mkdir -p "$out"
[ -x "$bin" ] || { echo "no $bin: run cargo build --release" >&2; exit 1; }
[ -x "$python" ] || { echo "no $python: run bench/peers/setup.sh" >&2; exit 1; }

# "load 1-min 5-min 15-min, idle NN%": the load average and the share of CPU time idle over the last second
# (the load average lags by a minute; the idle share shows whether something else is running right now).
idle_percent() { # over the next $1 seconds
  local a b total=0 i
  read -ra a < <(head -1 /proc/stat); sleep "$1"; read -ra b < <(head -1 /proc/stat)
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  echo $(( 100 * (b[4] - a[4]) / (total > 0 ? total : 1) ))
}
load_now() {
  if [ -n "${WAIT_IDLE:-}" ]; then
    local waited=0
    while [ "$(idle_percent 3)" -lt "$WAIT_IDLE" ] && [ "$waited" -lt 600 ]; do waited=$((waited + 3)); done
  fi
  local idle
  idle="$(idle_percent 1)"
  echo "$(cut -d' ' -f1-3 /proc/loadavg), idle $idle%"
}

results="$out/results.jsonl"
: > "$results"
record() { # name, load, JSON line
  "$python" -c 'import json, sys; r = json.loads(sys.argv[3]); r["run"] = sys.argv[1]; r["load"] = sys.argv[2]; print(json.dumps(r))' \
    "$1" "$2" "$3" >> "$results"
}

IFS=',' read -ra case_list <<< "$cases"
for case in "${case_list[@]}"; do
  read -r level latent layers steps <<< "$case"
  mesh="$out/mesh_r$level.json"
  "$bin" -q bench processor --mesh-level "$level" --export-mesh "$mesh" --export-only
  echo "== R$level D$latent L$layers, $steps steps after one warm-up" >&2
  load="$(load_now)"
  echo "   weatherlens (load $load)" >&2
  record weatherlens "$load" "$("$bin" -q bench processor --mesh-level "$level" --latent "$latent" \
    --layers "$layers" --steps "$steps" --json)"
  if [ -n "${PLAIN:-}" ]; then
    load="$(load_now)"
    echo "   weatherlens, plain burn ops (load $load)" >&2
    record weatherlens-plain "$load" "$("$bin" -q --kernels plain bench processor --mesh-level "$level" \
      --latent "$latent" --layers "$layers" --steps "$steps" --json)"
  fi
  for form in $forms; do
    for peer in torch jax; do
      load="$(load_now)"
      echo "   $peer $form (load $load)" >&2
      record "$peer-$form" "$load" "$("$python" "$here/processor_$peer.py" --mesh "$mesh" --latent "$latent" \
        --layers "$layers" --steps "$steps" --form "$form")"
    done
  done
done

"$python" - "$results" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print(f"{'case':<16}{'run':<18}{'ms/step':>10}{'x ours':>9}{'GFLOP/s':>9}{'peak MiB':>10}  before the run")
ours = {}
for r in rows:
    case = f"R{r['mesh_level']} D{r['latent']} L{r['layers']}"
    if r["run"] == "weatherlens":
        ours[case] = r["ms_per_step"]
    ratio = r["ms_per_step"] / ours[case]
    print(f"{case:<16}{r['run']:<18}{r['ms_per_step']:>10.1f}{ratio:>9.2f}{r['gflops']:>9.1f}"
          f"{r['peak_rss_mib']:>10.0f}  {r['load']}")
print("x ours = this run's ms/step / weatherlens's (above 1: weatherlens is faster).")
PY
