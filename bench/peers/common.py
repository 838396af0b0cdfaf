"""Shared by processor_torch.py and processor_jax.py: flags, the exported multimesh, timing and the JSON line.

The benchmark is DESIGN.md's "processor benchmark": the multimesh of level R (levels 0..R merged, both
directions), random node latents x [N, D], edge latents e [E, D] and target [N, D]; L interaction-network layers

    e     = e + LN(MLP_e([e, x[senders], x[receivers]]))
    agg_n = sum of e over the edges into n
    x     = x + LN(MLP_n([x, agg]))

with MLP = Linear(in, D) -> SiLU -> Linear(D, D) and LN with learned scale and offset (eps 1e-5, as burn and
PyTorch); loss = mean((x_L - target)^2); Adam (lr 1e-3, eps 1e-8). One step = forward + backward + update; the
median over S steps after one warm-up step is reported.
"""

import argparse
import json
import os
import resource
import statistics
import time


def parse_args(framework: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=f"DESIGN.md's processor train step in {framework}")
    parser.add_argument("--mesh", required=True,
                        help="multimesh JSON from `weatherlens bench processor --export-mesh FILE --export-only`")
    parser.add_argument("--latent", type=int, default=128)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="timed steps after one warm-up step")
    parser.add_argument("--form", choices=["plain", "factored"], default="plain",
                        help="plain: concatenate [e, x_snd, x_rcv] (as GraphCast does); factored: "
                             "e W_e + (x W_s)[snd] + (x W_r)[rcv], the same maths (what weatherlens runs)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def load_mesh(path: str):
    """-> (nodes, senders [E] list of int, receivers [E] list of int, mesh_level)"""
    with open(path) as f:
        mesh = json.load(f)
    assert len(mesh["senders"]) == len(mesh["receivers"]) == mesh["edges"], path
    return mesh["nodes"], mesh["senders"], mesh["receivers"], mesh["mesh_level"]


def step_flops(form: str, nodes: int, edges: int, latent: int, layers: int) -> float:
    """Matmul FLOPs of one train step (2 per multiply-add; forward + backward = 3 x forward), as weatherlens
    counts them (training/src/bench.rs, processor_step_flops).

    Forward multiply-adds per layer: plain 4 E D^2 + 3 N D^2 (edge MLP on [E, 3D], node MLP on [N, 2D]);
    factored 2 E D^2 + 5 N D^2 (the sender and receiver products are taken on nodes)."""
    n, e, d = nodes, edges, latent
    per_layer = 4 * e * d * d + 3 * n * d * d if form == "plain" else 2 * e * d * d + 5 * n * d * d
    return 3.0 * 2.0 * per_layer * layers


def time_steps(step, steps: int) -> list:
    """Runs `step()` once to warm up, then `steps` times; -> wall milliseconds of the timed steps.
    `step` must return only when its work is finished."""
    step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def report(args, framework: str, backend: str, threads: int, nodes: int, edges: int, mesh_level: int,
           times: list, version: str) -> None:
    """Prints the one JSON object of `weatherlens bench processor --json` (same keys, plus extras)."""
    ms = statistics.median(times)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({
        "ms_per_step": ms,
        "nodes": nodes,
        "edges": edges,
        "backend": backend,
        "gflops": step_flops(args.form, nodes, edges, args.latent, args.layers) / (ms * 1e-3) / 1e9,
        "peak_rss_mib": peak_kib / 1024.0,
        "steps": args.steps,
        "mesh_level": mesh_level,
        "latent": args.latent,
        "layers": args.layers,
        "form": args.form,
        "framework": framework,
        "version": version,
        "threads": threads,
        "cpus": os.cpu_count(),
        "step_ms": times,
    }))
