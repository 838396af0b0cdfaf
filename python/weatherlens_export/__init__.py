"""Export the latent states of AI weather models as WeatherLens recordings (docs/recording.md).

    from weatherlens_export import LatentRecorder
    rec = LatentRecorder(model, layers={0: "processor.proc.0", 1: "processor.proc.1"}, node_lat=lat, node_lon=lon)
    with rec:
        model(batch)                 # every forward call adds its batch as samples
    rec.save("model.safetensors")    # checked against the format, written atomically
"""

__version__ = "0.1.0"

from .format import (  # noqa: E402
    FORMAT,
    FORMAT_VERSION,
    BF16Array,
    Layout,
    RecordingError,
    check_recording,
    increments,
    parse_name,
    read_header,
    read_recording,
    stage_of,
    write_recording,
)
from .recorder import LatentRecorder, hours_since_epoch, nodes_reshape, save_recording  # noqa: E402
from .recipes import (  # noqa: E402
    aurora_backbone_blocks,
    aurora_patch_centres,
    aurora_patch_grid,
    aurora_patch_means,
    aurora_tokens_to_nodes,
    anemoi_hidden_coordinates,
    anemoi_processor_blocks,
    icosahedron_nodes,
    nearest_points,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "BF16Array",
    "Layout",
    "LatentRecorder",
    "RecordingError",
    "anemoi_hidden_coordinates",
    "anemoi_processor_blocks",
    "aurora_backbone_blocks",
    "aurora_patch_centres",
    "aurora_patch_grid",
    "aurora_patch_means",
    "aurora_tokens_to_nodes",
    "check_recording",
    "hours_since_epoch",
    "icosahedron_nodes",
    "increments",
    "nearest_points",
    "nodes_reshape",
    "parse_name",
    "read_header",
    "read_recording",
    "save_recording",
    "stage_of",
    "write_recording",
]
