#!/usr/bin/env python3
"""GraphCast's own JAX forward, timed at a chosen shape, with the files WeatherLens needs to run the same weights.

This is the JAX half of `bench/peers/graphcast.sh`. It uses DeepMind's `graphcast` package (google-deepmind/graphcast
at commit 08cf736, installed from source: see tests/fixtures/graphcast/README.md) and writes, under --out:

  params.npz          random-init parameters saved with graphcast.checkpoint.dump (GraphCast's own serialiser)
  stats/{mean_by_level,stddev_by_level,diffs_stddev_by_level}.nc
  inputs.nc           an example batch in GraphCast's dataset layout (batch, time, level, lat, lon), 3 times
  jax_prediction.nc   the one-step prediction (physical units), to check WeatherLens's forecast of the same weights
  jax.json            the figures below

and prints one JSON object: ms_forward (median of --repeats calls of the jitted one-step forward of
normalization.InputsAndResiduals(GraphCast), as the demo notebook's run_forward builds it, without its bf16 cast),
ms_forward_min, compile_s (first call), peak_rss_mib (the process's maximum resident set, libraries included),
grid_nodes, mesh_nodes, latent_size, gnn_msg_steps, task. The data are standard-normal noise: the forward does the
same arithmetic whatever the values, and only time and memory are measured here.

Default shape: GraphCast_small (1.0 degree grid, mesh 2to5, latent 512, 16 message-passing steps, 13 pressure
levels, precipitation as an output only).
"""

import argparse
import json
import os
import resource
import time

import haiku as hk
import jax
import numpy as np
import pandas as pd
import xarray

from graphcast import checkpoint, data_utils, graphcast, normalization


def example_batch(task, resolution, batch, rng):
  """Noise in GraphCast's example-batch layout, with every variable the task reads or predicts."""
  lat = np.linspace(-90.0, 90.0, int(round(180 / resolution)) + 1).astype(np.float32)
  lon = (np.arange(int(round(360 / resolution))) * resolution).astype(np.float32)
  levels = np.asarray(task.pressure_levels, np.int32)
  hours = np.array([0, 6, 12])
  time_ = pd.to_timedelta(hours, unit="h").to_numpy()
  start = np.datetime64("2020-01-01T00:00", "ns") + np.arange(batch) * np.timedelta64(1, "D")
  datetime = (start[:, None] + time_[None, :]).astype("datetime64[ns]")
  coords = dict(lat=("lat", lat), lon=("lon", lon), level=("level", levels), time=("time", time_),
                datetime=(("batch", "time"), datetime))
  variables = {}
  for name in sorted(set(task.input_variables) | set(task.target_variables)):
    if name in graphcast.GENERATED_FORCING_VARS:
      continue  # derived from datetime by data_utils
    if name in graphcast.STATIC_VARS:
      dims, shape = ("lat", "lon"), (lat.size, lon.size)
    elif name in graphcast.ALL_ATMOSPHERIC_VARS:
      dims, shape = ("batch", "time", "level", "lat", "lon"), (batch, 3, levels.size, lat.size, lon.size)
    else:
      dims, shape = ("batch", "time", "lat", "lon"), (batch, 3, lat.size, lon.size)
    variables[name] = (dims, rng.standard_normal(shape, dtype=np.float32))
  return xarray.Dataset(variables, coords=coords)


def unit_stats(task):
  """mean 0, standard deviation 1 for every variable (and level) the task touches."""
  levels = np.asarray(task.pressure_levels, np.int32)
  names = sorted(set(task.input_variables) | set(task.target_variables))

  def dataset(value):
    data = {}
    for name in names:
      if name in graphcast.ALL_ATMOSPHERIC_VARS:
        data[name] = (("level",), np.full(levels.size, value, np.float32))
      else:
        data[name] = ((), np.float32(value))
    return xarray.Dataset(data, coords=dict(level=("level", levels)))

  return dataset(0.0), dataset(1.0), dataset(1.0)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", required=True)
  parser.add_argument("--resolution", type=float, default=1.0)
  parser.add_argument("--mesh-size", type=int, default=5)
  parser.add_argument("--latent", type=int, default=512)
  parser.add_argument("--steps", type=int, default=16, help="gnn_msg_steps (processor layers)")
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  os.makedirs(os.path.join(args.out, "stats"), exist_ok=True)

  task = graphcast.TASK_13_PRECIP_OUT
  model_config = graphcast.ModelConfig(
      resolution=args.resolution, mesh_size=args.mesh_size, latent_size=args.latent,
      gnn_msg_steps=args.steps, hidden_layers=1, radius_query_fraction_edge_length=0.6)
  rng = np.random.default_rng(args.seed)
  batch = example_batch(task, args.resolution, args.batch, rng)
  batch.to_netcdf(os.path.join(args.out, "inputs.nc"))
  mean, std, diffs = unit_stats(task)
  for name, ds in [("mean_by_level", mean), ("stddev_by_level", std), ("diffs_stddev_by_level", diffs)]:
    ds.to_netcdf(os.path.join(args.out, "stats", f"{name}.nc"))

  inputs, targets, forcings = data_utils.extract_inputs_targets_forcings(
      batch, target_lead_times=slice("6h", "6h"), **dataclass_fields(task))
  template = targets * np.nan

  def forward(inputs, targets_template, forcings):
    model = graphcast.GraphCast(model_config, task)
    wrapped = normalization.InputsAndResiduals(
        model, diffs_stddev_by_level=diffs, mean_by_level=mean, stddev_by_level=std)
    return wrapped(inputs, targets_template=targets_template, forcings=forcings)

  transformed = hk.transform_with_state(forward)
  params, state = jax.jit(transformed.init)(jax.random.PRNGKey(args.seed), inputs, template, forcings)
  with open(os.path.join(args.out, "params.npz"), "wb") as f:
    checkpoint.dump(f, graphcast.CheckPoint(
        params=params, model_config=model_config, task_config=task,
        description="bench/peers/graphcast_jax.py: random-init GraphCast for timing; not a trained model.",
        license="Random weights; no trained data."))

  apply = jax.jit(transformed.apply)

  def call():
    out, _ = apply(params, state, jax.random.PRNGKey(0), inputs, template, forcings)
    jax.block_until_ready(jax.tree_util.tree_leaves(out))
    return out

  started = time.perf_counter()
  prediction = call()
  compile_s = time.perf_counter() - started
  times = []
  for _ in range(args.repeats):
    started = time.perf_counter()
    call()
    times.append(1e3 * (time.perf_counter() - started))

  mesh_nodes = 10 * 4 ** args.mesh_size + 2
  figures = dict(
      backend=f"jax {jax.__version__} ({jax.default_backend()})",
      ms_forward=float(np.median(times)), ms_forward_min=float(np.min(times)), compile_s=compile_s,
      peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
      grid_nodes=int(batch.sizes["lat"] * batch.sizes["lon"]), mesh_nodes=mesh_nodes,
      latent_size=args.latent, gnn_msg_steps=args.steps, batch=args.batch, repeats=args.repeats,
      task="TASK_13_PRECIP_OUT")
  prediction.to_netcdf(os.path.join(args.out, "jax_prediction.nc"))
  with open(os.path.join(args.out, "jax.json"), "w") as f:
    json.dump(figures, f, indent=1)
  print(json.dumps(figures))


def dataclass_fields(task):
  return dict(input_variables=task.input_variables, target_variables=task.target_variables,
              forcing_variables=task.forcing_variables, pressure_levels=task.pressure_levels,
              input_duration=task.input_duration)


if __name__ == "__main__":
  main()
