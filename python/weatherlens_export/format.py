"""The WeatherLens plain recording: one safetensors file (see docs/recording.md).

This module is the reference implementation of the format's rules: it names, checks, writes (atomically) and reads
recordings with numpy alone. The rules and the error texts here are the ones docs/recording.md lists.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import numpy as np

FORMAT = "weatherlens.recording"
FORMAT_VERSION = "1"

#: Names a tensor may have without a stage.
TOP_LEVEL = ("node_lat", "node_lon", "inputs", "sample_time")
#: The per-layer points whose tensors are the state X_i, the increment v_i and the state X_{i+1}.
STATE_POINTS = ("resid_pre", "delta", "resid_post")

FLOAT_DTYPES = ("F32", "F64", "F16", "BF16")
COORD_DTYPES = ("F32", "F64")
TIME_DTYPES = ("I64", "F64")

#: Bytes per element of every safetensors dtype (a reader must know them all to check a header).
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}
_KIND_TO_DTYPE = {
    ("f", 4): "F32", ("f", 8): "F64", ("f", 2): "F16",
    ("i", 8): "I64", ("i", 4): "I32", ("i", 2): "I16", ("i", 1): "I8",
    ("u", 8): "U64", ("u", 4): "U32", ("u", 2): "U16", ("u", 1): "U8", ("b", 1): "BOOL",
}
_DTYPE_TO_NUMPY = {v: np.dtype(("<" if size > 1 else "|") + kind + str(size)) for (kind, size), v in _KIND_TO_DTYPE.items()}

#: safetensors refuses headers larger than this.
MAX_HEADER_BYTES = 100_000_000

_SEGMENT = r"[a-z][a-z0-9_]*"
_LAYER = r"0|[1-9][0-9]*"
_STAGE_COORD = re.compile(rf"^({_SEGMENT})\.node_(lat|lon)$")
_LAYER_NAME = re.compile(rf"^({_SEGMENT})\.({_LAYER})\.({_SEGMENT})$")
_STAGE_NAME = re.compile(rf"^({_SEGMENT})\.({_SEGMENT})$")

NAME_HELP = (
    "node_lat, node_lon, inputs, sample_time, <stage>.node_lat, <stage>.node_lon, <stage>.<layer>.<point> or "
    "<stage>.<point>, where <stage> and <point> match [a-z][a-z0-9_]* and <layer> is a decimal number without "
    "leading zeros"
)


class RecordingError(ValueError):
    """A recording breaks a rule of the format; the message names the tensor and the rule."""


class BF16Array:
    """A bfloat16 tensor: numpy has no bfloat16, so the raw 16-bit patterns are kept (uint16, little-endian)."""

    __slots__ = ("bits",)

    def __init__(self, bits: np.ndarray):
        bits = np.asarray(bits)
        if bits.dtype != np.uint16:
            raise TypeError(f"BF16Array holds uint16 bit patterns, got {bits.dtype}")
        self.bits = bits

    @classmethod
    def from_float(cls, values: np.ndarray) -> "BF16Array":
        """Round float values to the nearest bfloat16 (ties to even), as torch's `.to(torch.bfloat16)` does."""
        return cls(f32_to_bf16_bits(np.asarray(values, dtype=np.float32)))

    @property
    def shape(self) -> Tuple[int, ...]:
        return self.bits.shape

    @property
    def ndim(self) -> int:
        return self.bits.ndim

    def to_float32(self) -> np.ndarray:
        return bf16_bits_to_f32(self.bits)

    def __getitem__(self, index) -> "BF16Array":
        return BF16Array(self.bits[index])

    def __repr__(self) -> str:
        return f"BF16Array(shape={self.shape})"


Array = Union[np.ndarray, BF16Array]


def f32_to_bf16_bits(values: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns of float32 values, rounded to nearest with ties to even; NaN stays NaN."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    rounded = ((bits + rounding) >> 16).astype(np.uint16)
    nan = np.isnan(values)
    if nan.any():
        rounded[nan] = ((bits[nan] >> 16) | 0x0040).astype(np.uint16)
    return rounded


def bf16_bits_to_f32(bits: np.ndarray) -> np.ndarray:
    """float32 values of bfloat16 bit patterns (exact)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def dtype_of(array: Array) -> str:
    """The safetensors dtype name of an array."""
    if isinstance(array, BF16Array):
        return "BF16"
    dtype = np.asarray(array).dtype
    try:
        return _KIND_TO_DTYPE[(dtype.kind, dtype.itemsize)]
    except KeyError:
        raise RecordingError(f"numpy dtype {dtype} has no safetensors equivalent") from None


def as_float64(array: Array) -> np.ndarray:
    """Values as float64 (what readers compute with)."""
    if isinstance(array, BF16Array):
        return array.to_float32().astype(np.float64)
    return np.asarray(array, dtype=np.float64)


# ---------------------------------------------------------------------------------------------------------------
# Names


@dataclass(frozen=True)
class Name:
    """A parsed tensor name. kind: "top" (node_lat, node_lon, inputs, sample_time), "coord" (<stage>.node_lat or
    <stage>.node_lon; point is "node_lat"/"node_lon"), "layer" (<stage>.<layer>.<point>) or "stage"
    (<stage>.<point>)."""

    kind: str
    stage: Optional[str]
    layer: Optional[int]
    point: str

    @property
    def role(self) -> str:
        """How the tensor is shaped: "coord" ([nodes]), "time" ([samples]), "inputs" ([samples, nodes, channels]),
        "edges" ([samples, edges, latent]) or "nodes" ([samples, nodes, latent])."""
        if self.kind == "coord" or (self.kind == "top" and self.point in ("node_lat", "node_lon")):
            return "coord"
        if self.kind == "top":
            return "time" if self.point == "sample_time" else "inputs"
        return "edges" if self.point.startswith("edge_") else "nodes"

    @property
    def on_edges(self) -> bool:
        """Edge tensors ([samples, edges, width]) have a point name starting with `edge_`."""
        return self.kind in ("layer", "stage") and self.point.startswith("edge_")


def parse_name(name: str) -> Name:
    """Parse a tensor name, or raise RecordingError when it follows none of the forms."""
    if name in TOP_LEVEL:
        return Name("top", None, None, name)
    m = _STAGE_COORD.match(name)
    if m and m.group(0) == name:
        return Name("coord", m.group(1), None, "node_" + m.group(2))
    m = _LAYER_NAME.match(name)
    if m and m.group(0) == name:
        return Name("layer", m.group(1), int(m.group(2)), m.group(3))
    m = _STAGE_NAME.match(name)
    if m and m.group(0) == name:
        return Name("stage", m.group(1), None, m.group(2))
    raise RecordingError(f"tensor `{name}`: not a recording name (expected {NAME_HELP})")


def stage_of(name: str) -> Optional[str]:
    """The stage a tensor belongs to: the text before the first dot; None for the top-level names."""
    return parse_name(name).stage


# ---------------------------------------------------------------------------------------------------------------
# Layout: the header-only rules


@dataclass
class Stage:
    name: str
    nodes: int
    #: Names of the coordinate tensors this stage uses (its own, or the top-level ones).
    coords: Tuple[str, str]
    #: Layer index -> point names recorded for it.
    layers: Dict[int, List[str]] = field(default_factory=dict)
    #: [samples, nodes, latent] shape shared by the state points of every layer (None without layers).
    state_shape: Optional[Tuple[int, int, int]] = None
    stage_points: List[str] = field(default_factory=list)


@dataclass
class Layout:
    """What a valid recording holds, from its header."""

    samples: int
    nodes: int
    stages: Dict[str, Stage]
    has_inputs: bool
    has_sample_time: bool
    metadata: Dict[str, str]

    def to_json(self) -> Dict[str, Any]:
        return {
            "samples": self.samples,
            "nodes": self.nodes,
            "inputs": self.has_inputs,
            "sample_time": self.has_sample_time,
            "metadata": self.metadata,
            "stages": {
                s.name: {
                    "nodes": s.nodes,
                    "coordinates": list(s.coords),
                    "latent": None if s.state_shape is None else s.state_shape[2],
                    "layers": {str(i): sorted(p) for i, p in sorted(s.layers.items())},
                    "stage_tensors": sorted(s.stage_points),
                }
                for s in self.stages.values()
            },
        }


def _shape_text(shape: Iterable[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def check_metadata(metadata: Optional[Mapping[str, Any]]) -> Dict[str, str]:
    """Rule `metadata`: string values; a format version this reader knows."""
    metadata = dict(metadata or {})
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise RecordingError(f"__metadata__ entry `{key}`: keys and values must be strings, got {value!r}")
    fmt = metadata.get("format")
    if fmt is not None and fmt != FORMAT:
        raise RecordingError(f"__metadata__ format is `{fmt}`; `{FORMAT}` expected")
    version = metadata.get("format_version")
    if version is not None and version != FORMAT_VERSION:
        raise RecordingError(
            f"recording format version {version} is not supported by this reader (it reads version {FORMAT_VERSION})"
        )
    return metadata


def check_layout(entries: Mapping[str, Tuple[str, Tuple[int, ...]]], metadata: Optional[Mapping[str, Any]] = None) -> Layout:
    """Apply every rule that needs only the header: names, dtypes, ranks, presence, sample and node counts, layer
    shapes. `entries` maps tensor name -> (dtype, shape). Returns the layout or raises RecordingError."""
    metadata = check_metadata(metadata)
    names = sorted(entries)
    parsed = {name: parse_name(name) for name in names}

    # dtypes, then ranks, then empty axes (each pass in name order)
    expect = {}
    for name in names:
        role = parsed[name].role
        if role == "coord":
            expect[name] = (COORD_DTYPES, 1, "[nodes]")
        elif role == "time":
            expect[name] = (TIME_DTYPES, 1, "[samples]")
        elif role == "inputs":
            expect[name] = (FLOAT_DTYPES, 3, "[samples, nodes, channels]")
        elif role == "edges":
            expect[name] = (FLOAT_DTYPES, 3, "[samples, edges, latent]")
        else:
            expect[name] = (FLOAT_DTYPES, 3, "[samples, nodes, latent]")
    for name in names:
        allowed = expect[name][0]
        if entries[name][0] not in allowed:
            raise RecordingError(f"tensor `{name}` has dtype {entries[name][0]}; {' or '.join(allowed)} expected")
    for name in names:
        _, rank, what = expect[name]
        if len(entries[name][1]) != rank:
            raise RecordingError(f"tensor `{name}` has shape {_shape_text(entries[name][1])}; {what} expected")
    for name in names:
        if any(d < 1 for d in entries[name][1]):
            raise RecordingError(f"tensor `{name}` has an empty axis (shape {_shape_text(entries[name][1])})")

    # presence
    for coord in ("node_lat", "node_lon"):
        if coord not in entries:
            raise RecordingError(
                f"no `{coord}` tensor: a plain recording carries the node coordinates node_lat and node_lon "
                "(a probes.safetensors written by `weatherlens probe` is read with its folder, beside probes.json)"
            )
    if not any(n.kind == "layer" and n.stage == "processor" and n.point == "resid_pre" for n in parsed.values()):
        raise RecordingError("no processor layer: a recording holds processor.{i}.resid_pre for at least one layer i")

    # coordinates: top level, then per stage
    top_nodes = entries["node_lat"][1][0]
    if entries["node_lon"][1][0] != top_nodes:
        raise RecordingError(
            f"`node_lon` has {entries['node_lon'][1][0]} nodes but `node_lat` has {top_nodes}: one of each per node"
        )
    stage_names = sorted({n.stage for n in parsed.values() if n.stage is not None and n.kind != "coord"})
    coord_stages = sorted({n.stage for n in parsed.values() if n.kind == "coord"})
    for stage in coord_stages:
        lat, lon = f"{stage}.node_lat", f"{stage}.node_lon"
        if lat not in entries or lon not in entries:
            have, missing = (lat, lon) if lat in entries else (lon, lat)
            raise RecordingError(f"`{have}` has no `{missing}`: a stage carries both coordinates or neither")
        if entries[lat][1][0] != entries[lon][1][0]:
            raise RecordingError(
                f"`{lon}` has {entries[lon][1][0]} nodes but `{lat}` has {entries[lat][1][0]}: one of each per node"
            )
    for stage in coord_stages:
        if stage not in stage_names:
            raise RecordingError(f"`{stage}.node_lat`: no tensor belongs to stage `{stage}`")
    stages: Dict[str, Stage] = {}
    for stage in stage_names:
        if stage in coord_stages:
            stages[stage] = Stage(stage, entries[f"{stage}.node_lat"][1][0], (f"{stage}.node_lat", f"{stage}.node_lon"))
        else:
            stages[stage] = Stage(stage, top_nodes, ("node_lat", "node_lon"))

    # samples: every [samples, ...] tensor agrees with the first one in name order
    first_samples: Optional[Tuple[str, int]] = None
    for name in names:
        n = parsed[name]
        if n.role == "coord":
            continue
        count = entries[name][1][0]
        if first_samples is None:
            first_samples = (name, count)
        elif count != first_samples[1]:
            raise RecordingError(
                f"tensor `{name}` has {count} samples but `{first_samples[0]}` has {first_samples[1]}: "
                "every tensor holds the same samples"
            )
    assert first_samples is not None
    samples = first_samples[1]

    # nodes, layers
    for name in names:
        n = parsed[name]
        shape = entries[name][1]
        if n.role in ("coord", "time"):
            continue
        if n.role == "inputs":
            nodes, coords = top_nodes, "node_lat"
        else:
            st = stages[n.stage]
            nodes, coords = st.nodes, st.coords[0]
            if n.kind == "layer":
                st.layers.setdefault(n.layer, []).append(n.point)
            else:
                st.stage_points.append(n.point)
        if not n.on_edges and shape[1] != nodes:
            where = "the recording" if n.kind == "top" else f"stage `{n.stage}`"
            raise RecordingError(
                f"tensor `{name}` has {shape[1]} nodes but {where} has {nodes} (the length of `{coords}`)"
            )
    for st in stages.values():
        for layer in sorted(st.layers):
            points = st.layers[layer]
            if "resid_pre" not in points:
                other = f"{st.name}.{layer}.{sorted(points)[0]}"
                raise RecordingError(
                    f"tensor `{other}`: layer {layer} of stage `{st.name}` has no `{st.name}.{layer}.resid_pre`"
                )
    for st in stages.values():
        first_state = ""
        for layer in sorted(st.layers):
            for point in STATE_POINTS:
                name = f"{st.name}.{layer}.{point}"
                if name not in entries:
                    continue
                shape = tuple(entries[name][1])
                if st.state_shape is None:
                    st.state_shape, first_state = shape, name
                elif shape != st.state_shape:
                    raise RecordingError(
                        f"tensor `{name}` has shape {_shape_text(shape)} but `{first_state}` has "
                        f"{_shape_text(st.state_shape)}: the resid_pre, delta and resid_post tensors of a stage "
                        "share one shape"
                    )
    return Layout(
        samples=samples,
        nodes=top_nodes,
        stages=stages,
        has_inputs="inputs" in entries,
        has_sample_time="sample_time" in entries,
        metadata=metadata,
    )


# ---------------------------------------------------------------------------------------------------------------
# Values


def looks_like_radians(lat: np.ndarray, lon: np.ndarray) -> bool:
    """True when every |lat| <= pi/2 and every |lon| <= 2 pi: coordinates in radians (anemoi graphs store them so)
    look like this, and degrees only do for a small patch near 0N 0E."""
    return lat.size >= 3 and bool(np.all(np.abs(lat) <= math.pi / 2) and np.all(np.abs(lon) <= 2 * math.pi))


def check_values(tensors: Mapping[str, Array], layout: Layout) -> List[str]:
    """Apply the value rules (finite values, coordinate ranges, distinct sample times). Returns warnings."""
    warnings: List[str] = []
    coord_names = sorted(name for name in tensors if parse_name(name).role == "coord")
    for name in coord_names:
        values, limit = as_float64(tensors[name]), (90.0 if name.endswith("node_lat") else 360.0)
        bad = np.flatnonzero(~np.isfinite(values) | (np.abs(values) > limit))
        if bad.size:
            k = int(bad[0])
            raise RecordingError(f"{name}[{k}] = {values[k]} is outside [-{limit:g}, {limit:g}] degrees")
    for lat_name in (name for name in coord_names if name.endswith("node_lat")):
        lon_name = lat_name[: -len("lat")] + "lon"
        if looks_like_radians(as_float64(tensors[lat_name]), as_float64(tensors[lon_name])):
            warnings.append(
                f"`{lat_name}`/`{lon_name}` all lie within |lat| <= pi/2, |lon| <= 2 pi: are they radians? "
                "The format wants degrees"
            )
    for name in sorted(tensors):
        n = parse_name(name)
        if n.role in ("coord", "time"):
            continue
        values = tensors[name]
        values = values.to_float32() if isinstance(values, BF16Array) else np.asarray(values)
        finite = np.isfinite(values)
        if not finite.all():
            s, node, c = (int(i) for i in np.unravel_index(int(np.flatnonzero(~finite.ravel())[0]), values.shape))
            axis = "edge" if n.on_edges else "node"
            raise RecordingError(
                f"tensor `{name}` has a non-finite value at sample {s}, {axis} {node}, channel {c}"
            )
    if "sample_time" in tensors:
        times = np.asarray(tensors["sample_time"])
        if times.dtype.kind == "f":
            bad = np.flatnonzero(~np.isfinite(times))
            if bad.size:
                raise RecordingError(f"sample_time[{int(bad[0])}] is not finite")
        order = np.argsort(times, kind="stable")
        same = np.flatnonzero(times[order][1:] == times[order][:-1])
        if same.size:
            a, b = sorted((int(order[same[0]]), int(order[same[0] + 1])))
            raise RecordingError(
                f"sample_time[{a}] and sample_time[{b}] are both {times[a]} h: each sample needs its own time"
            )
    return warnings


def check_tensors(tensors: Mapping[str, Array], metadata: Optional[Mapping[str, Any]] = None) -> Tuple[Layout, List[str]]:
    """Every rule of the format on in-memory tensors. Returns the layout and any warnings."""
    entries = {}
    for name, array in tensors.items():
        if name == "__metadata__":
            raise RecordingError("`__metadata__` is safetensors' header metadata, not a tensor name")
        entries[name] = (dtype_of(array), tuple(int(d) for d in array.shape))
    layout = check_layout(entries, metadata)
    return layout, check_values(tensors, layout)


# ---------------------------------------------------------------------------------------------------------------
# Writing and reading safetensors


def _bytes_of(array: Array) -> Tuple[str, np.ndarray]:
    if isinstance(array, BF16Array):
        return "BF16", np.ascontiguousarray(array.bits.astype("<u2", copy=False))
    array = np.asarray(array)
    dtype = dtype_of(array)
    return dtype, np.ascontiguousarray(array.astype(_DTYPE_TO_NUMPY[dtype], copy=False))


def write_safetensors(path: Union[str, os.PathLike], tensors: Mapping[str, Array], metadata: Optional[Mapping[str, str]] = None) -> str:
    """Write `tensors` as a safetensors file, atomically: into a temporary file in the same folder, flushed to disk,
    then renamed over `path`; on any failure the temporary file is removed and `path` is untouched.

    Tensors are laid out by descending element size, then by name, so each starts at a multiple of its element
    size (the data section starts 8-byte aligned: the header is padded with spaces)."""
    path = os.fspath(path)
    prepared = {name: _bytes_of(array) for name, array in tensors.items()}
    order = sorted(prepared, key=lambda name: (-DTYPE_SIZES[prepared[name][0]], name))
    header: Dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for name in order:
        dtype, data = prepared[name]
        header[name] = {"dtype": dtype, "shape": list(data.shape), "data_offsets": [offset, offset + data.nbytes]}
        offset += data.nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, _new_file_mode()) if hasattr(os, "fchmod") else None
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for name in order:
                f.write(memoryview(prepared[name][1]).cast("B"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename durable too (best effort: not every system opens folders)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def _new_file_mode() -> int:
    """The mode an ordinary new file gets (mkstemp's temporary files are 0600)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def read_header(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """The header JSON of a safetensors file (with `__metadata__` when present), after the structural checks:
    every entry has dtype, shape and data_offsets, the offsets tile the data section exactly and each tensor's byte
    length is its element count times its element size."""
    path = os.fspath(path)
    bad = lambda why: RecordingError(f"{path}: not a readable safetensors file ({why})")  # noqa: E731
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise bad("shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", raw)
        if n > MAX_HEADER_BYTES or 8 + n > size:
            raise bad(f"header length {n} does not fit a {size}-byte file")
        text = f.read(n)
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad(f"header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict):
                raise bad("__metadata__ is not an object")
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"entry `{name}` needs exactly dtype, shape and data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPE_SIZES:
            raise bad(f"entry `{name}` has unknown dtype {dtype!r}")
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise bad(f"entry `{name}` has a bad shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise bad(f"entry `{name}` has bad data_offsets {offsets!r}")
        begin, end = offsets
        expected = math.prod(shape) * DTYPE_SIZES[dtype]
        if end - begin != expected:
            raise bad(f"entry `{name}` spans {end - begin} bytes but {dtype} {_shape_text(shape)} needs {expected}")
        spans.append((begin, end, name))
    spans.sort()
    at = 0
    for begin, end, name in spans:
        if begin != at:
            raise bad(f"entry `{name}` starts at byte {begin} of the data, {at} expected (gap or overlap)")
        at = end
    if at != size - 8 - n:
        raise bad(f"the tensors cover {at} bytes but the data section has {size - 8 - n}")
    return header


def read_safetensors(path: Union[str, os.PathLike]) -> Tuple[Dict[str, Array], Dict[str, str]]:
    """All tensors of a safetensors file (BF16 ones as BF16Array) and its metadata."""
    path = os.fspath(path)
    header = read_header(path)
    metadata = header.pop("__metadata__", {}) or {}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        f.seek(8 + n)
        data = f.read()
    tensors: Dict[str, Array] = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        chunk = np.frombuffer(data, dtype=np.uint8, count=end - begin, offset=begin).copy()
        dtype = entry["dtype"]
        if dtype == "BF16":
            tensors[name] = BF16Array(chunk.view("<u2").reshape(entry["shape"]))
        elif dtype in _DTYPE_TO_NUMPY:
            tensors[name] = chunk.view(_DTYPE_TO_NUMPY[dtype]).reshape(entry["shape"])
        else:
            raise RecordingError(f"{path}: tensor `{name}` has dtype {dtype}, which this reader cannot hold")
    return tensors, dict(metadata)


def write_recording(path: Union[str, os.PathLike], tensors: Mapping[str, Array], metadata: Optional[Mapping[str, str]] = None) -> Layout:
    """Check `tensors` against every rule of the format, then write them atomically as a plain recording.

    `format` and `format_version` are added to the metadata. Raises RecordingError (nothing written) on a breach."""
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION}
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    layout, _ = check_tensors(tensors, meta)
    write_safetensors(path, tensors, meta)
    return layout


def check_recording(path: Union[str, os.PathLike]) -> Tuple[Layout, List[str]]:
    """Read a plain recording and apply every rule; returns its layout and warnings or raises RecordingError."""
    header = read_header(path)
    metadata = header.pop("__metadata__", None)
    check_metadata(metadata)
    tensors, metadata = read_safetensors(path)
    return check_tensors(tensors, metadata)


def read_recording(path: Union[str, os.PathLike], *, as_float32: bool = True) -> Tuple[Dict[str, Array], Dict[str, str]]:
    """Read and check a plain recording. With `as_float32`, F16 and BF16 tensors come back as float32."""
    layout, _ = check_recording(path)
    tensors, metadata = read_safetensors(path)
    if as_float32:
        for name, value in list(tensors.items()):
            if isinstance(value, BF16Array):
                tensors[name] = value.to_float32()
            elif value.dtype == np.float16:
                tensors[name] = value.astype(np.float32)
    return tensors, metadata


def increments(tensors: Mapping[str, Array], stage: str = "processor") -> Dict[int, Optional[np.ndarray]]:
    """v_i of every layer of `stage` as a reader derives it (float64): `<stage>.<i>.delta` when recorded, else
    X_{i+1} - X_i with X_{i+1} = `<stage>.<i>.resid_post`, else `<stage>.<i+1>.resid_pre`; None when neither."""
    layers = sorted({n.layer for n in map(parse_name, tensors) if n.kind == "layer" and n.stage == stage})
    out: Dict[int, Optional[np.ndarray]] = {}
    for i in layers:
        pre = f"{stage}.{i}.resid_pre"
        if pre not in tensors:
            continue
        for name in (f"{stage}.{i}.delta",):
            if name in tensors:
                out[i] = as_float64(tensors[name])
                break
        else:
            nxt = next((n for n in (f"{stage}.{i}.resid_post", f"{stage}.{i + 1}.resid_pre") if n in tensors), None)
            out[i] = None if nxt is None else as_float64(tensors[nxt]) - as_float64(tensors[pre])
    return out
