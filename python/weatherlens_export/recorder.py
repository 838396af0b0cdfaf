"""Record a PyTorch model's per-layer latent states with forward hooks and save them as a WeatherLens recording."""

from __future__ import annotations

import datetime as _dt
import json
import os
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import __version__
from .format import (
    FORMAT,
    FORMAT_VERSION,
    STATE_POINTS,
    Array,
    BF16Array,
    Layout,
    RecordingError,
    f32_to_bf16_bits,
    looks_like_radians,
    write_recording,
)

_DTYPES = {"float32": "F32", "float64": "F64", "float16": "F16", "bfloat16": "BF16", "keep": None}
_STAGE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


def hours_since_epoch(t: Any) -> float:
    """Hours since 1970-01-01T00:00:00Z of a datetime (naive = UTC), numpy datetime64, ISO 8601 string or number."""
    if isinstance(t, str):
        t = _dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
    if isinstance(t, _dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=_dt.timezone.utc)
        return (t - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)).total_seconds() / 3600.0
    if isinstance(t, _dt.date):
        return hours_since_epoch(_dt.datetime(t.year, t.month, t.day))
    if isinstance(t, np.datetime64):
        return float(t.astype("datetime64[s]").astype(np.int64)) / 3600.0
    return float(t)


def _is_torch(t: Any) -> bool:
    return type(t).__module__.split(".")[0] == "torch"


def _source_dtype(t: Any) -> str:
    """F32/F64/F16/BF16 of a numpy array or torch tensor (other dtypes count as F32)."""
    if _is_torch(t):
        name = str(t.dtype)
        return {"torch.float64": "F64", "torch.float16": "F16", "torch.bfloat16": "BF16"}.get(name, "F32")
    kind = np.asarray(t).dtype
    return {("f", 8): "F64", ("f", 2): "F16"}.get((kind.kind, kind.itemsize), "F32")


def to_numpy(t: Any, dtype: Union[type, np.dtype] = np.float32) -> np.ndarray:
    """A fresh numpy copy of a torch tensor (any device, any float dtype, bf16 included) or array-like."""
    if _is_torch(t):
        t = t.detach()
        if str(t.dtype) != "torch.float64" or np.dtype(dtype) != np.float64:
            t = t.float()
        t = t.cpu().numpy()
    return np.array(t, dtype=dtype, copy=True)


def nodes_reshape(nodes: int) -> Callable[[Any], Any]:
    """The default reshape: [batch, nodes, latent] stays; [batch * nodes, latent] (batch-major rows, as anemoi's
    processors see them) becomes [batch, nodes, latent]; [nodes, latent] becomes [1, nodes, latent]."""

    def reshape(t: Any) -> Any:
        if t.ndim == 3:
            return t
        if t.ndim == 2:
            rows, width = t.shape
            if rows % nodes:
                raise RecordingError(
                    f"a [{rows}, {width}] tensor cannot be split into [batch, {nodes} nodes, {width}]: "
                    "pass `reshape=` to say how the module's layout maps to nodes"
                )
            return t.reshape(rows // nodes, nodes, width)
        raise RecordingError(
            f"a tensor of shape {tuple(t.shape)}: [batch, nodes, latent] or [batch * nodes, latent] expected; "
            "pass `reshape=`"
        )

    return reshape


def first_positional(args: Tuple[Any, ...]) -> Any:
    """The default input selector: the module's first positional argument."""
    if not args:
        raise RecordingError("the hooked module was called without positional arguments: pass `select_input=`")
    return args[0]


def first_output(output: Any) -> Any:
    """The default output selector: the output itself, or its first element when it is a tuple or list (anemoi's
    blocks return (nodes, edges) or (nodes,))."""
    return output[0] if isinstance(output, (tuple, list)) else output


def resolve_module(model: Any, name: str) -> Any:
    """The submodule `name` (dotted; numbers index lists) of `model`."""
    if hasattr(model, "get_submodule"):
        return model.get_submodule(name)
    obj = model
    for part in name.split("."):
        try:
            obj = obj[int(part)] if part.isdigit() and not hasattr(obj, part) else getattr(obj, part)
        except (AttributeError, IndexError, KeyError, TypeError):
            raise RecordingError(f"module `{name}`: `{part}` not found") from None
    return obj


def _coordinates(node_lat: Any, node_lon: Any, node_index: Any, check_radians: bool) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    lat = to_numpy(node_lat, np.float64)
    lon = to_numpy(node_lon, np.float64)
    if lat.ndim != 1 or lon.ndim != 1:
        raise RecordingError(
            f"node_lat and node_lon are one value per node: got shapes {lat.shape} and {lon.shape}"
        )
    if lat.size != lon.size:
        raise RecordingError(
            f"node_lat has {lat.size} values but node_lon has {lon.size}: one latitude and one longitude per node"
        )
    if lat.size == 0:
        raise RecordingError("node_lat and node_lon are empty: a recording needs at least one node")
    for name, values, limit in (("node_lat", lat, 90.0), ("node_lon", lon, 360.0)):
        bad = np.flatnonzero(~np.isfinite(values) | (np.abs(values) > limit))
        if bad.size:
            k = int(bad[0])
            raise RecordingError(f"{name}[{k}] = {values[k]} is outside [-{limit:g}, {limit:g}] degrees")
    if check_radians and looks_like_radians(lat, lon):
        raise RecordingError(
            "node_lat/node_lon all lie within |lat| <= pi/2, |lon| <= 2 pi: they look like radians (anemoi graphs "
            "store radians: convert with numpy.degrees). Pass check_radians=False if they really are degrees"
        )
    index = None
    if node_index is not None:
        index = np.asarray(node_index)
        if index.ndim != 1 or index.size == 0 or index.dtype.kind not in "iu":
            raise RecordingError("node_index is a non-empty 1-D array of integer node positions")
        if index.min() < 0 or index.max() >= lat.size:
            raise RecordingError(f"node_index holds positions outside 0..{lat.size - 1}")
    return lat, lon, index


class LatentRecorder:
    """Records X_i (`resid_pre`: a block's input), X_{i+1} (`resid_post`: its output) and v_i = X_{i+1} - X_i
    (`delta`) of chosen blocks with forward hooks, over any number of forward calls (each call's batch adds
    samples), and writes them as a plain WeatherLens recording.

    model: the model (an object with `get_submodule`, or whose submodules are reachable by attribute / index);
        may be None when `layers` gives the modules themselves.
    layers: {layer index: module or dotted module name}, or a sequence of them (indices 0, 1, ...). One module
        may appear under several indices (a weight-shared block applied repeatedly): its k-th call in a forward
        pass is recorded under its k-th index (ascending).
    node_lat, node_lon: degrees, one per node of the reshaped tensors (before `node_index`).
    reshape: callable mapping what the block sees to [batch, nodes, latent] (torch or numpy in, same out); the
        default accepts [batch, nodes, latent] and batch-major [batch * nodes, latent].
    points: which of "resid_pre", "delta", "resid_post" to keep.
    dtype: "float32" (default), "float64", "float16", "bfloat16", or "keep" (the dtype of the captured tensors).
    node_index: optional positions of the nodes to keep (a subset, in the order given).
    stage: the stage name; "processor" (default) is the one WeatherLens analyses. Another stage writes its own
        `<stage>.node_lat` / `<stage>.node_lon`.
    select_input / select_output: pick the latent tensor from the block's positional arguments / its output
        (defaults: the first positional argument / the output or its first element).
    metadata: string entries for the file's `__metadata__` (model, source, layer_kind, ...).
    """

    def __init__(
        self,
        model: Any,
        layers: Union[Mapping[int, Any], Sequence[Any]],
        node_lat: Any,
        node_lon: Any,
        *,
        reshape: Optional[Callable[[Any], Any]] = None,
        points: Iterable[str] = STATE_POINTS,
        dtype: str = "float32",
        node_index: Any = None,
        stage: str = "processor",
        select_input: Callable[[Tuple[Any, ...]], Any] = first_positional,
        select_output: Callable[[Any], Any] = first_output,
        metadata: Optional[Mapping[str, str]] = None,
        check_radians: bool = True,
    ):
        self.points = tuple(points)
        unknown = [p for p in self.points if p not in STATE_POINTS]
        if unknown or not self.points:
            raise RecordingError(f"points {list(self.points)}: choose from {list(STATE_POINTS)}")
        if dtype not in _DTYPES:
            raise RecordingError(f"dtype `{dtype}`: one of {', '.join(_DTYPES)} expected")
        if not stage or not stage[0].isalpha() or not set(stage) <= _STAGE_CHARS:
            raise RecordingError(f"stage `{stage}`: a stage name matches [a-z][a-z0-9_]*")
        self.stage = stage
        self.node_lat, self.node_lon, self.node_index = _coordinates(node_lat, node_lon, node_index, check_radians)
        self.nodes = self.node_lat.size
        self.reshape = reshape or nodes_reshape(self.nodes)
        self.select_input = select_input
        self.select_output = select_output
        self.metadata = {str(k): str(v) for k, v in (metadata or {}).items()}
        self._dtype = _DTYPES[dtype]  # None for "keep" until the first capture
        if isinstance(layers, Mapping):
            items = sorted(layers.items())
        else:
            items = list(enumerate(layers))
        if not items:
            raise RecordingError("layers is empty: name at least one module to record")
        self._names: Dict[int, str] = {}
        groups: Dict[int, Tuple[Any, List[int]]] = {}
        for index, spec in items:
            if not isinstance(index, (int, np.integer)) or index < 0:
                raise RecordingError(f"layer index {index!r}: a non-negative integer expected")
            module = resolve_module(model, spec) if isinstance(spec, str) else spec
            if not hasattr(module, "register_forward_hook"):
                raise RecordingError(f"layer {index}: {spec!r} has no register_forward_hook")
            self._names[int(index)] = spec if isinstance(spec, str) else type(module).__name__
            groups.setdefault(id(module), (module, []))[1].append(int(index))
        self._layers = sorted(self._names)
        self._captured: Dict[Tuple[int, str], List[Array]] = {(i, p): [] for i in self._layers for p in self.points}
        self._latent: Optional[int] = None
        self._inputs: List[np.ndarray] = []
        self._times: List[float] = []
        self._calls: Dict[int, int] = {}
        self._handles = []
        for key, (module, indices) in groups.items():
            indices.sort()
            self._calls[key] = 0
            self._handles.append(module.register_forward_hook(self._make_hook(key, indices)))

    # -- hooks -----------------------------------------------------------------------------------------------

    def _make_hook(self, key: int, indices: List[int]) -> Callable:
        def hook(module: Any, args: Tuple[Any, ...], output: Any) -> None:
            layer = indices[self._calls[key] % len(indices)]
            self._calls[key] += 1
            self._capture(layer, args, output)

        return hook

    def _nodes(self, t: Any, layer: int, what: str) -> Any:
        x = self.reshape(t)
        shape = tuple(int(d) for d in x.shape)
        if len(shape) != 3 or shape[1] != self.nodes:
            raise RecordingError(
                f"layer {layer} (`{self._names[layer]}`): the {what} reshaped to {list(shape)}, but "
                f"[batch, {self.nodes} nodes, latent] was expected (node_lat has {self.nodes} nodes)"
            )
        if self._latent is None:
            self._latent = shape[2]
        elif shape[2] != self._latent:
            raise RecordingError(
                f"layer {layer} (`{self._names[layer]}`): the {what} has latent size {shape[2]} but an earlier one "
                f"had {self._latent}: the layers of one stage share one latent size (record others as another stage)"
            )
        return x

    def _capture(self, layer: int, args: Tuple[Any, ...], output: Any) -> None:
        want_pre = "resid_pre" in self.points or "delta" in self.points
        want_post = "resid_post" in self.points or "delta" in self.points
        pre = self._nodes(self.select_input(args), layer, "input") if want_pre else None
        post = self._nodes(self.select_output(output), layer, "output") if want_post else None
        if self._dtype is None:
            self._dtype = _source_dtype(pre if pre is not None else post)
        work = np.float64 if self._dtype == "F64" else np.float32
        pre = None if pre is None else to_numpy(pre, work)
        post = None if post is None else to_numpy(post, work)
        if pre is not None and post is not None and pre.shape != post.shape:
            raise RecordingError(
                f"layer {layer} (`{self._names[layer]}`): input {list(pre.shape)} and output {list(post.shape)} "
                "differ in shape, so the block is not X -> X + v"
            )
        if self.node_index is not None:
            pre = None if pre is None else pre[:, self.node_index]
            post = None if post is None else post[:, self.node_index]
        values = {"resid_pre": pre, "resid_post": post}
        if "delta" in self.points:
            values["delta"] = post - pre
        for point in self.points:
            self._captured[(layer, point)].append(self._store(values[point]))

    def _store(self, values: np.ndarray) -> Array:
        if self._dtype == "F16":
            return values.astype(np.float16)
        if self._dtype == "BF16":
            return BF16Array(f32_to_bf16_bits(values))
        return values

    # -- extra per-sample data ---------------------------------------------------------------------------------

    def add_inputs(self, inputs: Any) -> None:
        """The model's input fields at this recorder's nodes for the samples of the last forward call:
        [batch, nodes, channels] or [batch * nodes, channels] (numpy or torch). Stored as `inputs`."""
        if self.stage != "processor":
            raise RecordingError(
                f"add_inputs: `inputs` lies on the top-level nodes, which a `{self.stage}` recorder does not own; "
                "give them to the processor recorder"
            )
        x = nodes_reshape(self.nodes)(inputs)
        if x.shape[1] != self.nodes:
            raise RecordingError(f"inputs of shape {tuple(x.shape)}: [batch, {self.nodes} nodes, channels] expected")
        x = to_numpy(x, np.float64 if self._dtype == "F64" else np.float32)
        if self._inputs and x.shape[2] != self._inputs[0].shape[2]:
            raise RecordingError(f"inputs with {x.shape[2]} channels after ones with {self._inputs[0].shape[2]}")
        self._inputs.append(x if self.node_index is None else x[:, self.node_index])

    def add_sample_times(self, times: Iterable[Any]) -> None:
        """The valid time of each sample of the last forward call (its input state): datetimes (naive = UTC),
        numpy datetime64, ISO 8601 strings or hours since 1970-01-01."""
        if isinstance(times, (str, _dt.datetime, np.datetime64, int, float)):
            times = [times]
        self._times.extend(hours_since_epoch(t) for t in times)

    # -- results -------------------------------------------------------------------------------------------------

    @property
    def samples(self) -> int:
        """Samples recorded so far by the first layer."""
        first = self._captured[(self._layers[0], self.points[0])]
        return sum(a.shape[0] for a in first)

    def tensors(self) -> Dict[str, Array]:
        """The recording's tensors so far, by name (checks that every layer saw the same samples)."""
        counts = {
            i: sum(a.shape[0] for a in self._captured[(i, self.points[0])]) for i in self._layers
        }
        first = self._layers[0]
        if counts[first] == 0:
            raise RecordingError(
                f"nothing recorded: no forward call reached layer {first} (`{self._names[first]}`)"
            )
        for i in self._layers:
            if counts[i] != counts[first]:
                raise RecordingError(
                    f"layer {i} (`{self._names[i]}`) saw {counts[i]} samples but layer {first} saw {counts[first]}: "
                    "every forward call must pass through every hooked module"
                )
        samples = counts[first]
        out: Dict[str, Array] = {}
        for (i, point), arrays in self._captured.items():
            out[f"{self.stage}.{i}.{point}"] = _concat(arrays)
        prefix = "" if self.stage == "processor" else f"{self.stage}."
        lat, lon = self.node_lat, self.node_lon
        if self.node_index is not None:
            lat, lon = lat[self.node_index], lon[self.node_index]
        out[prefix + "node_lat"] = lat
        out[prefix + "node_lon"] = lon
        if self._inputs:
            inputs = np.concatenate(self._inputs, axis=0)
            if inputs.shape[0] != samples:
                raise RecordingError(f"add_inputs gave {inputs.shape[0]} samples but the layers saw {samples}")
            out["inputs"] = inputs
        if self._times:
            if len(self._times) != samples:
                raise RecordingError(f"add_sample_times gave {len(self._times)} times but the layers saw {samples}")
            times = np.asarray(self._times, dtype=np.float64)
            whole = np.all(times == np.round(times)) and np.all(np.abs(times) < 2**53)
            out["sample_time"] = times.astype(np.int64) if whole else times
        return out

    def recording_metadata(self) -> Dict[str, str]:
        meta = dict(self.metadata)
        meta.setdefault(
            "hooked_modules",
            json.dumps({f"{self.stage}.{i}": self._names[i] for i in self._layers}, separators=(",", ":")),
        )
        return meta

    def save(self, path: Union[str, os.PathLike], metadata: Optional[Mapping[str, str]] = None) -> Layout:
        """Write this recorder's tensors as a plain recording (atomically). See `save_recording` to combine
        several recorders (stages) in one file."""
        return save_recording(path, self, metadata=metadata)

    def remove(self) -> None:
        """Remove the hooks (what was recorded stays)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    close = remove

    def __enter__(self) -> "LatentRecorder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def _concat(arrays: List[Array]) -> Array:
    if isinstance(arrays[0], BF16Array):
        return BF16Array(np.concatenate([a.bits for a in arrays], axis=0))
    return np.concatenate(arrays, axis=0)


def _same(a: Array, b: Array) -> bool:
    if isinstance(a, BF16Array) or isinstance(b, BF16Array):
        return isinstance(a, BF16Array) and isinstance(b, BF16Array) and np.array_equal(a.bits, b.bits)
    return a.dtype == b.dtype and np.array_equal(a, b)


def save_recording(
    path: Union[str, os.PathLike],
    *parts: Union[LatentRecorder, Mapping[str, Array]],
    metadata: Optional[Mapping[str, str]] = None,
) -> Layout:
    """Write one plain recording from recorders (one per stage) and/or {name: array} mappings. A name given by two
    parts must hold the same values (e.g. `sample_time`). Metadata: the recorders' own, then `metadata`, plus
    format, format_version, exporter and created. The file is checked against every rule before it is written."""
    tensors: Dict[str, Array] = {}
    meta: Dict[str, str] = {}
    hooked: Dict[str, str] = {}
    for part in parts:
        if isinstance(part, LatentRecorder):
            part_tensors = part.tensors()
            part_meta = part.recording_metadata()
            hooked.update(json.loads(part_meta.pop("hooked_modules", "{}")))
            meta.update(part_meta)
        else:
            part_tensors = dict(part)
        for name, array in part_tensors.items():
            if name in tensors and not _same(tensors[name], array):
                raise RecordingError(f"two parts give `{name}` with different values")
            tensors[name] = array
    if hooked:
        meta["hooked_modules"] = json.dumps(hooked, separators=(",", ":"))
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    meta.update(format=FORMAT, format_version=FORMAT_VERSION)
    meta.setdefault("exporter", f"weatherlens_export {__version__}")
    meta.setdefault("created", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return write_recording(path, tensors, meta)
