"""Export WeatherLens recordings from microsoft-aurora's Aurora and from an anemoi-models checkpoint.

    python3 python/examples/export_aurora_anemoi.py aurora [--checkpoint FILE] [--out DIR]
    python3 python/examples/export_aurora_anemoi.py anemoi --checkpoint inference.ckpt [--out DIR]

Each part runs only where its packages are installed (torch and microsoft-aurora; torch and anemoi-models) and
prints why it skips otherwise (exit status 0). Neither downloads anything: Aurora runs with random weights unless a
local checkpoint file is given, and anemoi needs a local inference checkpoint. The inputs are random fields on a
small grid, so the recordings show the plumbing, not the physics: give real batches for a study.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from weatherlens_export import (  # noqa: E402
    LatentRecorder,
    anemoi_hidden_coordinates,
    anemoi_processor_blocks,
    aurora_backbone_blocks,
    aurora_patch_centres,
    aurora_patch_means,
    aurora_tokens_to_nodes,
    check_recording,
    nearest_points,
    save_recording,
)


def skip(why: str) -> int:
    print(f"skipped: {why}")
    return 0


def aurora_input_fields(batch, surf_stats=None):
    """[B, channels, H, W]: the normalised surface, static and atmospheric fields of the last history step."""
    normalised = batch.normalise(surf_stats=surf_stats or {})
    fields = [v[:, -1] for v in normalised.surf_vars.values()]
    for v in normalised.atmos_vars.values():
        fields.extend(v[:, -1, level] for level in range(v.shape[2]))
    b = fields[0].shape[0]
    fields.extend(v.expand(b, *v.shape[-2:]) for v in normalised.static_vars.values())
    return np.stack([f.detach().float().cpu().numpy() for f in fields], axis=1)


def run_aurora(out: str, checkpoint: str | None) -> int:
    try:
        import torch
        from aurora import AuroraSmallPretrained, Batch, Metadata
    except Exception as e:  # not installed, or installed but broken: skip either way
        return skip(f"Aurora needs torch and microsoft-aurora ({e})")
    torch.manual_seed(0)
    model = AuroraSmallPretrained()
    if checkpoint:
        model.load_checkpoint_local(checkpoint)
    else:
        print("Aurora: random weights (pass --checkpoint FILE for trained ones)")
    model.eval()
    h, w, patch = 33, 64, model.patch_size  # a coarse grid; the 33rd latitude row is cropped as Aurora does
    lat = torch.linspace(90, -90, h)
    lon = torch.arange(w) * (360.0 / w)
    levels = (100, 250, 500, 850)

    def batch_at(t0: dt.datetime, b: int = 2) -> Batch:
        g = torch.Generator().manual_seed(int(t0.timestamp()))
        rand = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
        return Batch(
            surf_vars={k: rand(b, 2, h, w) for k in ("2t", "10u", "10v", "msl")},
            static_vars={k: rand(h, w) for k in ("lsm", "z", "slt")},
            atmos_vars={k: rand(b, 2, len(levels), h, w) for k in ("z", "u", "v", "t", "q")},
            metadata=Metadata(lat=lat, lon=lon, time=tuple(t0 + dt.timedelta(hours=6 * i) for i in range(b)),
                              atmos_levels=levels),
        )

    blocks = aurora_backbone_blocks(model)
    latent_levels = model.encoder.latent_levels
    recorders = []
    for merges in sorted({b.merges for b in blocks}):
        node_lat, node_lon = aurora_patch_centres(lat, lon, patch, merges=merges)
        stage = "processor" if merges == 0 else f"swin_m{merges}"
        recorders.append(
            LatentRecorder(
                model,
                {b.depth: b.name for b in blocks if b.merges == merges},
                node_lat,
                node_lon,
                reshape=aurora_tokens_to_nodes(latent_levels),
                stage=stage,
                points=("resid_pre", "delta", "resid_post"),
                metadata={
                    "model": "AuroraSmallPretrained" + ("" if checkpoint else " (random weights)"),
                    "source": f"microsoft-aurora, {checkpoint or 'no checkpoint'}",
                    "layer_kind": "swin3d-block",
                    "node_set": f"aurora patch centres, patch {patch}, {h}x{w} grid, merges per stage",
                    "latent_layout": f"{latent_levels} latent levels x block width, level-major",
                },
            )
        )
    processor = recorders[0]
    with torch.inference_mode():
        for day in range(2):
            batch = batch_at(dt.datetime(2022, 1, 1) + dt.timedelta(days=day))
            model(batch)
            processor.add_sample_times(batch.metadata.time)
            processor.add_inputs(aurora_patch_means(aurora_input_fields(batch), patch))
    for rec in recorders:
        rec.remove()
    path = os.path.join(out, "aurora-small.safetensors")
    layout = save_recording(path, *recorders)
    check_recording(path)
    for name, st in layout.stages.items():
        print(f"Aurora: {path}: stage {name}: {st.nodes} nodes, layers {sorted(st.layers)}, shape {st.state_shape}")
    return 0


def run_anemoi(out: str, checkpoint: str | None) -> int:
    try:
        import torch
        import anemoi.models  # noqa: F401  (only to know it is installed)
    except Exception as e:  # not installed, or installed but broken: skip either way
        return skip(f"anemoi needs torch and anemoi-models ({e})")
    if not checkpoint:
        return skip("anemoi needs --checkpoint: an inference checkpoint written by anemoi-training")
    interface = torch.load(checkpoint, map_location="cpu", weights_only=False)
    interface.eval()
    model = interface.model
    node_lat, node_lon = anemoi_hidden_coordinates(interface)  # radians in the graph -> degrees
    blocks = anemoi_processor_blocks(model.processor)
    kind = type(model.processor).__name__
    rec = LatentRecorder(
        model,
        blocks,
        node_lat,
        node_lon,
        metadata={
            "model": os.path.basename(checkpoint),
            "source": f"anemoi-models, {checkpoint}",
            "layer_kind": f"anemoi {kind} block",
            "node_set": "anemoi hidden nodes",
            "latent_layout": "processor node channels",
        },
    )
    graph = interface.graph_data
    names = getattr(model, "dataset_names", None)
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        if names:  # multi-dataset versions: forward({dataset: [batch, time, ensemble, grid, vars]})
            x = {
                n: torch.randn(1, model.n_step_input, 1, graph[n].num_nodes, model.num_input_channels[n], generator=g)
                for n in names
            }
            model(x)
            first = names[0]
            fields = x[first][:, -1, 0].numpy()
        else:  # single-dataset versions: forward([batch, time, ensemble, grid, vars])
            steps = getattr(model, "multi_step", 1)
            first = getattr(model, "_graph_name_data", "data")
            x = torch.randn(1, steps, 1, graph[first].num_nodes, model.num_input_channels, generator=g)
            model(x)
            fields = x[:, -1, 0].numpy()
    rec.remove()
    data_lat, data_lon = np.degrees(graph[first].x.numpy().T)
    rec.add_inputs(fields[:, nearest_points(data_lat, data_lon, node_lat, node_lon)])
    rec.add_sample_times([dt.datetime(2022, 1, 1)])
    path = os.path.join(out, "anemoi.safetensors")
    layout = rec.save(path)
    check_recording(path)
    st = layout.stages["processor"]
    print(f"anemoi: {path}: {st.nodes} hidden nodes, {len(st.layers)} layers, shape {st.state_shape}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=["aurora", "anemoi", "both"])
    parser.add_argument("--checkpoint")
    parser.add_argument("--out", default=".")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    status = 0
    if args.model in ("aurora", "both"):
        status |= run_aurora(args.out, args.checkpoint if args.model == "aurora" else None)
    if args.model in ("anemoi", "both"):
        status |= run_anemoi(args.out, args.checkpoint if args.model == "anemoi" else None)
    return status


if __name__ == "__main__":
    sys.exit(main())
