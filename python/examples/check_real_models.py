"""Check the exporter's recipes against the real packages (runs what is installed, skips the rest, exit 0):

    python3 python/examples/check_real_models.py

- aurora (torch + microsoft-aurora): AuroraSmallPretrained with random weights on a 33 x 64 grid. A 5 K change of
  one 2 m temperature pixel must change block 0's input (the encoder output) at exactly one recorded node: the
  patch the exporter places at that pixel. Also: block 0's output is block 1's input, delta = post - pre.
- anemoi (torch + anemoi-models + torch-geometric): GraphTransformerProcessor and GNNProcessor on a random graph
  over the level-2 icosahedron, batch of two identical samples in anemoi's [(batch nodes), channels] rows: both
  recorded samples must agree (the batch-major split), layers must chain, the last output must equal the
  processor's output; hidden-node coordinates from the graph (radians) and from NamedNodesAttributes.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from weatherlens_export import (  # noqa: E402
    LatentRecorder,
    anemoi_hidden_coordinates,
    anemoi_processor_blocks,
    aurora_backbone_blocks,
    aurora_patch_centres,
    aurora_tokens_to_nodes,
    icosahedron_nodes,
)


def check_aurora() -> None:
    try:
        import torch
        from aurora import AuroraSmallPretrained, Batch, Metadata
    except Exception as e:  # not installed, or installed but broken: skip either way
        print(f"aurora: skipped ({e})")
        return
    torch.manual_seed(0)
    model = AuroraSmallPretrained()
    model.eval()
    h, w, p = 33, 64, model.patch_size
    lat, lon = torch.linspace(90, -90, h), torch.arange(w) * (360.0 / w)
    g = torch.Generator().manual_seed(1)
    surf = {k: torch.randn(1, 2, h, w, generator=g) for k in ("2t", "10u", "10v", "msl")}
    static = {k: torch.randn(h, w, generator=g) for k in ("lsm", "z", "slt")}
    atmos = {k: torch.randn(1, 2, 4, h, w, generator=g) for k in ("z", "u", "v", "t", "q")}

    def batch(s):
        meta = Metadata(lat=lat, lon=lon, time=(dt.datetime(2022, 1, 1),), atmos_levels=(100, 250, 500, 850))
        return Batch(surf_vars=s, static_vars=static, atmos_vars=atmos, metadata=meta)

    blocks = aurora_backbone_blocks(model)
    clat, clon = aurora_patch_centres(lat, lon, p)
    rec = LatentRecorder(model, {b.depth: b.name for b in blocks if b.merges == 0}, clat, clon,
                         reshape=aurora_tokens_to_nodes(model.encoder.latent_levels))
    r, c = 13, 41
    warm = {k: v.clone() for k, v in surf.items()}
    warm["2t"][0, -1, r, c] += 5.0
    with rec, torch.inference_mode():
        model(batch(surf))
        model(batch(warm))
    t = rec.tensors()
    x0 = t["processor.0.resid_pre"]
    changed = np.flatnonzero(np.abs(x0[1] - x0[0]).max(axis=1) > 1e-5).tolist()
    expect = (r // p) * (w // p) + c // p
    assert changed == [expect], (changed, expect)
    assert abs(clat[expect] - float(lat[r])) <= 180 / (h - 1) * p and abs(clon[expect] - float(lon[c])) <= 360 / w * p
    np.testing.assert_array_equal(t["processor.0.resid_post"], t["processor.1.resid_pre"])
    np.testing.assert_array_equal(t["processor.0.delta"], t["processor.0.resid_post"] - t["processor.0.resid_pre"])
    print(f"aurora: ok (pixel {float(lat[r]):.2f}N {float(lon[c]):.2f}E -> node {expect} at "
          f"{clat[expect]:.2f}N {clon[expect]:.2f}E; layers {sorted(b.depth for b in blocks if b.merges == 0)})")


def check_anemoi() -> None:
    try:
        import torch
        from anemoi.models.distributed.shapes import GraphShardInfo
        from anemoi.models.layers.graph import NamedNodesAttributes
        from anemoi.models.layers.graph_provider import create_graph_provider
        from anemoi.models.layers.processor import GNNProcessor, GraphTransformerProcessor
        from anemoi.models.layers.utils import load_layer_kernels
        from torch_geometric.data import HeteroData
    except Exception as e:  # not installed, or installed but broken: skip either way
        print(f"anemoi: skipped ({e})")
        return
    torch.manual_seed(0)
    lat, lon = icosahedron_nodes(2)
    n, ch, b = lat.size, 32, 2
    graph = HeteroData()
    graph["hidden"].x = torch.tensor(np.radians(np.stack([lat, lon], 1)), dtype=torch.float32)
    graph[("hidden", "to", "hidden")].edge_index = torch.randint(0, n, (2, 6 * n))
    graph[("hidden", "to", "hidden")].edge_attr1 = torch.rand((6 * n, 3))
    provider = create_graph_provider(graph=graph[("hidden", "to", "hidden")], edge_attributes=["edge_attr1"],
                                     src_size=n, dst_size=n, trainable_size=0)
    kernels = load_layer_kernels(instance=False)
    processors = {
        "GraphTransformerProcessor": GraphTransformerProcessor(
            num_layers=4, num_channels=ch, num_chunks=2, num_heads=4, mlp_hidden_ratio=2,
            edge_dim=provider.edge_dim, layer_kernels=kernels, graph_attention_backend="pyg"),
        "GNNProcessor": GNNProcessor(num_layers=4, num_channels=ch, num_chunks=2, mlp_extra_layers=0,
                                     edge_dim=provider.edge_dim, layer_kernels=kernels),
    }
    x1 = torch.randn(n, ch)
    x = torch.cat([x1, x1])
    for kind, proc in processors.items():
        proc.eval()
        blocks = anemoi_processor_blocks(proc)
        assert sorted(blocks) == [0, 1, 2, 3]
        rec = LatentRecorder(proc, blocks, lat, lon)
        edge_attr, edge_index, _ = provider.get_edges(batch_size=b)
        with rec, torch.inference_mode():
            out = proc(x, b, GraphShardInfo(nodes=[b * n]), edge_attr, edge_index)
        t = rec.tensors()
        assert t["processor.0.resid_pre"].shape == (b, n, ch)
        np.testing.assert_array_equal(t["processor.0.resid_pre"][0], x1.numpy())
        for i in range(4):
            post = t[f"processor.{i}.resid_post"]
            np.testing.assert_allclose(post[0], post[1], atol=1e-5)
            if i < 3:
                np.testing.assert_array_equal(post, t[f"processor.{i + 1}.resid_pre"])
        np.testing.assert_allclose(t["processor.3.resid_post"].reshape(-1, ch), out.numpy(), atol=1e-6)
        ratios = [np.linalg.norm(t[f"processor.{i}.delta"]) / np.linalg.norm(t[f"processor.{i}.resid_pre"])
                  for i in range(4)]
        print(f"anemoi: {kind} ok (|v_i|/|X_i| = {[round(float(r), 3) for r in ratios]})")
    attrs = NamedNodesAttributes({"hidden": 0}, graph)
    for source in (SimpleNamespace(graph_data=graph, model=SimpleNamespace(_graph_name_hidden="hidden")),
                   SimpleNamespace(_graph_name_hidden="hidden", node_attributes=attrs)):
        glat, glon = anemoi_hidden_coordinates(source)
        np.testing.assert_allclose(glat, lat, atol=1e-4)
        np.testing.assert_allclose((glon - lon + 180) % 360 - 180, 0, atol=1e-4)
    print("anemoi: hidden-node coordinates ok (graph x in radians, NamedNodesAttributes sin/cos)")


if __name__ == "__main__":
    check_aurora()
    check_anemoi()
