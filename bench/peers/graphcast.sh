#!/usr/bin/env bash
# GraphCast's own JAX forward and WeatherLens's on the same random weights, one after another, with a check that
# both predict the same fields. Not run in CI.
#
#   bench/peers/graphcast.sh [--resolution DEG --mesh-size M --latent D --steps L --batch B --repeats N]
#
# Defaults are graphcast_jax.py's (GraphCast_small's shape: 1 degree, mesh 2to5, latent 512, 16 steps), which takes
# tens of minutes and several GiB on a 2-core machine; a quick check: --resolution 10 --mesh-size 2 --latent 32
# --steps 2. Environment: GRAPHCAST_PYTHON (a python with jax and graphcast@08cf736, default
# /work/venvs/graphcast/bin/python; tests/fixtures/graphcast/README.md says how to make one), WEATHERLENS (the
# binary, default ${CARGO_TARGET_DIR:-target}/release/weatherlens), OUT (default bench/peers/out/graphcast).
#
# Steps: graphcast_jax.py writes params.npz, stats/, inputs.nc, jax_prediction.nc and jax.json under OUT; then
# `weatherlens import graphcast` and `weatherlens forecast --steps 1` run under /usr/bin/time -v (wall time, peak
# RSS), and the two predictions are compared variable by variable (max |a - b| / max |b|).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${GRAPHCAST_PYTHON:-/work/venvs/graphcast/bin/python}
WEATHERLENS=${WEATHERLENS:-${CARGO_TARGET_DIR:-target}/release/weatherlens}
OUT=${OUT:-bench/peers/out/graphcast}
[ -x "$WEATHERLENS" ] || { echo "no weatherlens binary at $WEATHERLENS: cargo build --release" >&2; exit 1; }
[ -x "$PYTHON" ] || { echo "no python at $PYTHON (set GRAPHCAST_PYTHON)" >&2; exit 1; }
rm -rf "$OUT"
mkdir -p "$OUT"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo "== JAX (graphcast_jax.py $*)" >&2
"$PYTHON" bench/peers/graphcast_jax.py --out "$OUT" "$@" > /dev/null

echo "== WeatherLens import" >&2
/usr/bin/time -v -o "$OUT/import.time" "$WEATHERLENS" -q import graphcast \
  --params "$OUT/params.npz" --stats "$OUT/stats" --out "$OUT/checkpoint" --json > "$OUT/import.json"
echo "== WeatherLens forecast (1 step)" >&2
/usr/bin/time -v -o "$OUT/forecast.time" "$WEATHERLENS" -q forecast --checkpoint "$OUT/checkpoint" \
  --inputs "$OUT/inputs.nc" --steps 1 --out "$OUT/weatherlens_prediction.nc" --json > "$OUT/forecast.json"

"$PYTHON" - "$OUT" <<'EOF'
import json, re, sys
import numpy as np
import xarray

out = sys.argv[1]
jax = json.load(open(f"{out}/jax.json"))
forecast = json.load(open(f"{out}/forecast.json"))

def gnu_time(path):
    text = open(path).read()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
    seconds = sum(float(p) * 60 ** i for i, p in enumerate(reversed(wall.split(":"))))
    return seconds, rss

import_s, import_rss = gnu_time(f"{out}/import.time")
forecast_s, forecast_rss = gnu_time(f"{out}/forecast.time")
print(f"GraphCast shape: {jax['grid_nodes']} grid nodes, {jax['mesh_nodes']} mesh nodes, latent {jax['latent_size']}, "
      f"{jax['gnn_msg_steps']} steps, batch {jax['batch']}")
print()
print("| | forward (ms) | process wall (s) | peak RSS (MiB) |")
print("|---|---|---|---|")
print(f"| JAX ({jax['backend']}, jitted, median of {jax['repeats']}) | {jax['ms_forward']:.1f} "
      f"| compile {jax['compile_s']:.1f} | {jax['peak_rss_mib']:.0f} |")
print(f"| WeatherLens forecast (1 step, inputs and de-normalisation included) | {1e3 * forecast['rollout_seconds']:.1f} "
      f"| {forecast_s:.1f} | {forecast_rss:.0f} |")
print(f"| WeatherLens import | | {import_s:.1f} | {import_rss:.0f} |")
print()
theirs = xarray.open_dataset(f"{out}/jax_prediction.nc")
ours = xarray.open_dataset(f"{out}/weatherlens_prediction.nc")
print("| variable | max abs diff / max abs JAX | grid points over 1e-5 | elsewhere |")
print("|---|---|---|---|")
worst = 0.0
differing = 0
for name in sorted(theirs.data_vars):
    b = theirs[name].transpose(*ours[name].dims).values
    a = ours[name].values
    diff = np.abs(a - b)
    relative = float(diff.max() / np.abs(b).max())
    worst = max(worst, relative)
    over = diff > 1e-5 * np.abs(b).max()
    # A grid point differs when any batch member, time or level of it does.
    at_point = over.any(axis=tuple(range(over.ndim - 2)))
    points = int(at_point.sum())
    differing = max(differing, points)
    elsewhere = float(np.where(at_point, 0.0, diff).max() / np.abs(b).max())
    print(f"| {name} | {relative:.2e} | {points} | {elsewhere:.2e} |")
print()
print(f"largest relative difference: {worst:.2e} ({'equal within 1e-5' if worst <= 1e-5 else 'DIFFERENT'})")
ties = forecast.get("mesh2grid_ties") or {}
print(f"mesh2grid ties of this grid: {ties.get('decided_by_rounding')} decided by rounding, "
      f"{ties.get('recorded')} of them with GraphCast's recorded pick")
if differing:
    print(f"{differing} of {jax['grid_nodes']} grid points differ. Expected at most at the ties decided by rounding: "
          "there two runs of GraphCast's own code have picked differently (cause not pinned down) (WeatherLens applies the picks "
          "recorded for 1 deg/mesh 5, 1 deg/mesh 6, 0.25 deg/mesh 6 and the test fixtures' grids, "
          "models/src/graph/graphcast_mesh2grid.txt). 'elsewhere' is the difference over the other points.")
EOF
