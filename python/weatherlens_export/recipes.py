"""Where the latents of microsoft-aurora's Aurora and anemoi-models' processors live, and where their nodes are.

Nothing here imports torch, aurora or anemoi: the helpers walk the module tree by attribute names and work on
numpy arrays (torch tensors are converted), so they are testable with stand-ins. The module paths follow
microsoft/aurora (aurora/model/aurora.py, aurora/model/swin3d.py, aurora/model/encoder.py,
aurora/model/posencoding.py, aurora/batch.py) and ecmwf/anemoi-core (models/src/anemoi/models/layers/processor.py,
layers/block.py, layers/graph.py, models/encoder_processor_decoder.py, interface/__init__.py); see python/README.md.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from .format import RecordingError
from .recorder import to_numpy

# ---------------------------------------------------------------------------------------------------------------
# Aurora


class AuroraBlock(NamedTuple):
    """One Swin3DTransformerBlock of Aurora's backbone."""

    #: Position of the block in the forward order of the whole backbone (0 .. sum(encoder_depths) * 2 - 1).
    depth: int
    #: Dotted module name relative to the Aurora model, e.g. "backbone.encoder_layers.0.blocks.3".
    name: str
    #: How many 2x2 patch merges lie between the block's tokens and the encoder's patches (0 = full resolution).
    merges: int


def aurora_backbone_blocks(model: Any) -> List[AuroraBlock]:
    """Every Swin3DTransformerBlock of `model.backbone` (an Aurora model) in forward order.

    Swin3DTransformerBackbone runs encoder_layers[0..E-1] (layer k at k merges; all but the last end with a
    PatchMerging3D) then decoder_layers[0..E-1] (layer k at E-1-k merges; all but the last end with a
    PatchSplitting3D, and skips are added between layers). Each BasicLayer3D holds `blocks`; each block maps
    tokens x [B, C*H*W, D] to x + attention + MLP terms of the same shape, so a block is X -> X + v.
    """
    backbone = getattr(model, "backbone", model)
    try:
        encoder, decoder = list(backbone.encoder_layers), list(backbone.decoder_layers)
    except AttributeError:
        raise RecordingError("not an Aurora model: no backbone.encoder_layers / backbone.decoder_layers") from None
    prefix = "backbone." if backbone is not model else ""
    blocks: List[AuroraBlock] = []
    for part, layers in (("encoder_layers", encoder), ("decoder_layers", decoder)):
        for k, layer in enumerate(layers):
            merges = k if part == "encoder_layers" else len(decoder) - 1 - k
            for j in range(len(layer.blocks)):
                blocks.append(AuroraBlock(len(blocks), f"{prefix}{part}.{k}.blocks.{j}", merges))
    return blocks


def aurora_patch_grid(height: int, width: int, patch_size: int, merges: int = 0) -> Tuple[int, int]:
    """(H, W) of the token grid after the encoder (patches of `patch_size` pixels) and `merges` 2x2 merges of the
    backbone, for a `height` x `width` input (before Aurora crops a 721st latitude row)."""
    if height % patch_size == 1:
        height -= 1
    if height % patch_size or width % patch_size:
        raise RecordingError(f"a {height} x {width} grid is not a whole number of {patch_size}-pixel patches")
    h, w = height // patch_size, width // patch_size
    for _ in range(merges):
        h, w = (h + h % 2) // 2, (w + w % 2) // 2
    return h, w


def aurora_tokens_to_nodes(levels: int, level: Optional[int] = None) -> Callable[[Any], Any]:
    """Reshape for Aurora backbone tokens. A block sees x [B, L, D] with L = levels * H * W in (level, row, column)
    order (Perceiver3DEncoder stacks the surface level and the latent atmospheric levels, then flattens;
    Swin3DTransformerBlock views x as [B, C, H, W, D]). Returns a function giving [B, H*W, levels*D] (node = patch,
    latent = the levels' vectors concatenated, level-major) or, with `level`, [B, H*W, D] for that one level.
    `levels` is the model's `encoder.latent_levels` (4 for the released models: the surface and 3 latent levels)."""

    def reshape(t: Any) -> Any:
        b, tokens, d = t.shape
        if tokens % levels:
            raise RecordingError(f"{tokens} tokens do not split into {levels} levels")
        x = t.reshape(b, levels, tokens // levels, d)
        if level is not None:
            return x[:, level]
        return x.swapaxes(1, 2).reshape(b, tokens // levels, levels * d)

    return reshape


def _crop_latitudes(lat: np.ndarray, patch_size: int) -> np.ndarray:
    # Batch.crop drops the last latitude row when there is exactly one row too many (721 -> 720 at 0.25 deg).
    if lat.shape[0] % patch_size == 1:
        return lat[:-1]
    return lat


def _merge_means(grid: np.ndarray, valid: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """One PatchMerging3D step on a [..., H, W] grid of values: pad H, W to even at the bottom / right (as
    pad_3d does) and average each 2x2 group over its real (unpadded) members."""
    h, w = grid.shape[-2:]
    pad = [(0, 0)] * (grid.ndim - 2) + [(0, h % 2), (0, w % 2)]
    grid = np.pad(grid * valid, pad)
    valid = np.pad(valid, pad[-2:])
    shape = grid.shape[:-2] + (grid.shape[-2] // 2, 2, grid.shape[-1] // 2, 2)
    total = grid.reshape(shape).sum(axis=(-3, -1))
    count = valid.reshape(valid.shape[0] // 2, 2, valid.shape[1] // 2, 2).sum(axis=(1, 3))
    return total / count, (count > 0).astype(grid.dtype)


def aurora_patch_centres(lat: Any, lon: Any, patch_size: int, merges: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude (degrees) of each token position, flattened in Aurora's row-major (H, W) token order:
    the mean latitude and mean longitude of the grid points a patch covers, as Aurora's own position encoding
    computes them (posencoding.pos_scale_enc_grid: avg_pool2d over the lat/lon mesh grid), and for merged tokens the
    mean over the patches they merge.

    lat, lon: the batch's `metadata.lat` / `metadata.lon`, 1-D (lat decreasing, lon increasing in [0, 360)) or
    2-D [H, W]; a 721st latitude row is dropped as Batch.crop does."""
    lat = to_numpy(lat, np.float64)
    lon = to_numpy(lon, np.float64)
    if lat.ndim == 1 and lon.ndim == 1:
        lat = _crop_latitudes(lat, patch_size)
        lat, lon = np.meshgrid(lat, lon, indexing="ij")
    elif lat.ndim == 2 and lat.shape == lon.shape:
        lat, lon = _crop_latitudes(lat, patch_size), _crop_latitudes(lon, patch_size)
    else:
        raise RecordingError("lat and lon are 1-D axes or 2-D [H, W] grids of the same shape")
    h, w = lat.shape
    if h % patch_size or w % patch_size:
        raise RecordingError(f"a {h} x {w} grid is not a whole number of {patch_size}-pixel patches")
    grid = np.stack([lat, lon])
    grid = grid.reshape(2, h // patch_size, patch_size, w // patch_size, patch_size).mean(axis=(2, 4))
    valid = np.ones(grid.shape[1:])
    for _ in range(merges):
        grid, valid = _merge_means(grid, valid)
    return grid[0].ravel(), grid[1].ravel()


def aurora_patch_means(fields: Any, patch_size: int, merges: int = 0) -> np.ndarray:
    """Input fields averaged over each token's patch, for the `inputs` baseline at Aurora's token positions:
    fields [B, channels, H, W] (e.g. the batch's surface and atmospheric variables stacked, normalised) ->
    [B, patches, channels] in token order. A 721st latitude row is dropped as Batch.crop does."""
    x = to_numpy(fields, np.float64)
    if x.ndim != 4:
        raise RecordingError(f"fields of shape {x.shape}: [batch, channels, H, W] expected")
    if x.shape[2] % patch_size == 1:
        x = x[:, :, :-1]
    b, c, h, w = x.shape
    if h % patch_size or w % patch_size:
        raise RecordingError(f"a {h} x {w} grid is not a whole number of {patch_size}-pixel patches")
    x = x.reshape(b, c, h // patch_size, patch_size, w // patch_size, patch_size).mean(axis=(3, 5))
    valid = np.ones(x.shape[2:])
    for _ in range(merges):
        x, valid = _merge_means(x, valid)
    return x.reshape(b, c, -1).swapaxes(1, 2).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# anemoi


def anemoi_processor_blocks(processor: Any) -> Dict[int, Any]:
    """{layer index: block} of an anemoi-models processor (GNNProcessor, GraphTransformerProcessor,
    TransformerProcessor, PointWiseMLPProcessor), in the order the layers run.

    anemoi-models >= 0.11 keeps the blocks in one flat `processor.proc` ModuleList (chunks only group them for
    checkpointing); older versions keep `processor.proc` as a list of ProcessorChunks, each with its own `blocks`,
    and layer i is chunk i // chunk_size, block i % chunk_size. Each block takes the node latents [batch * nodes,
    channels] as its first argument and returns (nodes, edges) or (nodes,), with nodes = x + update."""
    proc = getattr(processor, "proc", None)
    if proc is None:
        raise RecordingError("not an anemoi processor: no `proc` module list (is it model.processor?)")
    blocks: Dict[int, Any] = {}
    for item in proc:
        inner = getattr(item, "module", item)  # offload_wrapper / checkpoint wrappers keep the block as .module
        if hasattr(inner, "blocks"):
            for block in inner.blocks:
                blocks[len(blocks)] = block
        else:
            blocks[len(blocks)] = item
    return blocks


def anemoi_hidden_coordinates(model: Any, nodes_name: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude in degrees of the hidden (processor) nodes of an anemoi model, in the order the
    processor sees them. `model`: the AnemoiModelInterface (from an inference checkpoint) or its `.model`.

    The coordinates come from the graph (`graph[name].x`: [nodes, 2] = (lat, lon) in RADIANS, as anemoi-graphs
    stores them), or else from the model's NamedNodesAttributes buffer `latlons_<name>` (sin and cos of the
    radian coordinates)."""
    inner = getattr(model, "model", model)
    name = nodes_name or getattr(inner, "_graph_name_hidden", None) or "hidden"
    if not isinstance(name, str):
        name = name[0]
    graph = getattr(model, "graph_data", None)
    if graph is None:
        graph = getattr(inner, "_graph_data", None)
    coords = None
    if graph is not None:
        try:
            coords = to_numpy(graph[name].x, np.float64)
        except (KeyError, AttributeError, TypeError):
            coords = None
    if coords is None:
        attributes = getattr(inner, "node_attributes", None)
        buffer = getattr(attributes, f"latlons_{name}", None) if attributes is not None else None
        if buffer is None:
            raise RecordingError(f"no coordinates for nodes `{name}`: neither graph_data[{name!r}].x nor latlons_{name}")
        sincos = to_numpy(buffer, np.float64)
        half = sincos.shape[1] // 2
        coords = np.arctan2(sincos[:, :half], sincos[:, half:])
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise RecordingError(f"coordinates of nodes `{name}` have shape {coords.shape}; [nodes, 2] expected")
    lat, lon = np.degrees(coords[:, 0]), np.degrees(coords[:, 1])
    return lat, lon


# ---------------------------------------------------------------------------------------------------------------
# Geometry


def unit_vectors(lat: Any, lon: Any) -> np.ndarray:
    lat = np.radians(to_numpy(lat, np.float64))
    lon = np.radians(to_numpy(lon, np.float64))
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def nearest_points(src_lat: Any, src_lon: Any, dst_lat: Any, dst_lon: Any, chunk: int = 2048) -> np.ndarray:
    """For each destination point, the index of the nearest source point on the sphere (degrees in). Uses
    scipy's cKDTree when scipy is installed, else a chunked brute force (fine up to ~1e9 pairs)."""
    src, dst = unit_vectors(src_lat, src_lon), unit_vectors(dst_lat, dst_lon)
    try:
        from scipy.spatial import cKDTree  # type: ignore
    except ImportError:
        out = np.empty(len(dst), dtype=np.int64)
        for start in range(0, len(dst), chunk):
            out[start : start + chunk] = np.argmax(dst[start : start + chunk] @ src.T, axis=1)
        return out
    return cKDTree(src).query(dst)[1].astype(np.int64)


def icosahedron_nodes(level: int) -> Tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude (degrees) of the vertices of an icosahedron refined `level` times (each triangle
    split in four, new vertices pushed onto the sphere): 10 * 4**level + 2 nodes. Two vertices sit at the poles."""
    phi = (1 + math.sqrt(5)) / 2
    v = [(-1, phi, 0), (1, phi, 0), (-1, -phi, 0), (1, -phi, 0), (0, -1, phi), (0, 1, phi), (0, -1, -phi),
         (0, 1, -phi), (phi, 0, -1), (phi, 0, 1), (-phi, 0, -1), (-phi, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
             (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
             (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    points = [np.array(p, dtype=np.float64) / np.linalg.norm(p) for p in v]
    # Rotate so that vertex 0 and its antipode (vertex 3) lie on the poles.
    z = points[0]
    x = points[1] - np.dot(points[1], z) * z
    x /= np.linalg.norm(x)
    rotation = np.stack([x, np.cross(z, x), z])
    points = [rotation @ p for p in points]
    for _ in range(level):
        cache: Dict[Tuple[int, int], int] = {}

        def middle(a: int, b: int) -> int:
            key = (min(a, b), max(a, b))
            if key not in cache:
                m = points[a] + points[b]
                points.append(m / np.linalg.norm(m))
                cache[key] = len(points) - 1
            return cache[key]

        refined = []
        for a, b, c in faces:
            ab, bc, ca = middle(a, b), middle(b, c), middle(c, a)
            refined += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = refined
    xyz = np.array(points)
    lat = np.degrees(np.arcsin(np.clip(xyz[:, 2], -1, 1)))
    lon = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0]))
    polar = np.abs(lat) > 90 - 1e-9
    lat[polar] = np.sign(lat[polar]) * 90.0
    lon[polar] = 0.0
    return lat, lon
