"""Tests of weatherlens_export and of docs/recording.schema.json; they need numpy (and use jsonschema and
safetensors when installed), never torch. Run: python3 -m pytest python/tests"""

import datetime as dt
import json
import os
import runpy
import struct
import subprocess
import sys

import numpy as np
import pytest

from weatherlens_export import (
    BF16Array,
    LatentRecorder,
    RecordingError,
    anemoi_hidden_coordinates,
    anemoi_processor_blocks,
    aurora_backbone_blocks,
    aurora_patch_centres,
    aurora_patch_grid,
    aurora_patch_means,
    aurora_tokens_to_nodes,
    check_recording,
    hours_since_epoch,
    icosahedron_nodes,
    increments,
    nearest_points,
    parse_name,
    read_header,
    read_recording,
    save_recording,
    write_recording,
)
from weatherlens_export.format import f32_to_bf16_bits, read_safetensors
from weatherlens_export.testing import Processor, ResidualBlock, StandInModel

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(PYTHON_DIR)
SCHEMA_PATH = os.path.join(REPO, "docs", "recording.schema.json")
FIXTURE_DIR = os.path.join(REPO, "tests", "fixtures", "exported")

NODES, CHANNELS, LATENT, LAYERS = 42, 3, 8, 3


@pytest.fixture(scope="module")
def mesh():
    lat, lon = icosahedron_nodes(1)
    order = np.random.default_rng(7).permutation(lat.size)
    return lat[order], lon[order]


def batches(count=3, batch=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((batch, NODES, CHANNELS)).astype(np.float32) for _ in range(count)]


def record(mesh, flat=True, **kwargs):
    model = StandInModel(NODES, CHANNELS, LATENT, LAYERS, seed=3, flat=flat)
    rec = LatentRecorder(model, {i: f"processor.proc.{i}" for i in range(LAYERS)}, *mesh, **kwargs)
    inputs = batches()
    with rec:
        for k, x in enumerate(inputs):
            model(x)
            rec.add_inputs(x)
            rec.add_sample_times([dt.datetime(2021, 1, 1) + dt.timedelta(hours=6 * (4 * k + j)) for j in range(4)])
    return model, rec, inputs


def schema():
    jsonschema = pytest.importorskip("jsonschema")
    with open(SCHEMA_PATH) as f:
        doc = json.load(f)
    return jsonschema, doc


def header_errors(header):
    """Schema violations of a header (the test is skipped without jsonschema)."""
    jsonschema, doc = schema()
    return list(jsonschema.Draft202012Validator(doc).iter_errors(header))


def header_errors_if_possible(header):
    """Schema violations of a header, or none without jsonschema (for tests that check more than the schema;
    the schema's own tests are skipped visibly then)."""
    import importlib.util

    if importlib.util.find_spec("jsonschema") is None:
        return []
    return header_errors(header)


# ---------------------------------------------------------------------------------------------------------------
# What the exporter writes


@pytest.mark.parametrize("flat", [True, False])
def test_written_recording_has_the_names_shapes_dtypes_and_values(tmp_path, mesh, flat):
    model, rec, inputs = record(mesh, flat=flat)
    path = tmp_path / "standin.safetensors"
    rec.save(path, metadata={"model": "stand-in"})
    tensors, meta = read_safetensors(path)

    expected = {"node_lat", "node_lon", "inputs", "sample_time"} | {
        f"processor.{i}.{p}" for i in range(LAYERS) for p in ("resid_pre", "delta", "resid_post")
    }
    assert set(tensors) == expected
    for i in range(LAYERS):
        for p in ("resid_pre", "delta", "resid_post"):
            assert tensors[f"processor.{i}.{p}"].shape == (12, NODES, LATENT)
            assert tensors[f"processor.{i}.{p}"].dtype == np.float32
    assert tensors["node_lat"].dtype == np.float64 and tensors["node_lat"].shape == (NODES,)
    np.testing.assert_array_equal(tensors["node_lat"], mesh[0])
    np.testing.assert_array_equal(tensors["node_lon"], mesh[1])
    np.testing.assert_array_equal(tensors["inputs"], np.concatenate(inputs))
    assert tensors["sample_time"].dtype == np.int64
    assert tensors["sample_time"][0] == hours_since_epoch(dt.datetime(2021, 1, 1)) == 447_072
    np.testing.assert_array_equal(np.diff(tensors["sample_time"]), 6)

    # X_0 is the embedding of the inputs; each block's output is what the block computes from its input.
    x = np.concatenate(inputs) @ model.embed
    for i, block in enumerate(model.processor.proc):
        pre, post = tensors[f"processor.{i}.resid_pre"], tensors[f"processor.{i}.resid_post"]
        np.testing.assert_array_equal(pre, x)
        x = block.forward(x)[0] if flat else block.forward(x)
        np.testing.assert_array_equal(post, x)
        # delta is exactly post - pre in the stored precision
        np.testing.assert_array_equal(tensors[f"processor.{i}.delta"], post - pre)
    assert meta["model"] == "stand-in"
    assert meta["format"] == "weatherlens.recording" and meta["format_version"] == "1"
    assert json.loads(meta["hooked_modules"])["processor.2"] == "processor.proc.2"


def test_official_safetensors_reader_agrees(tmp_path, mesh):
    st = pytest.importorskip("safetensors.numpy")
    _, rec, _ = record(mesh)
    path = tmp_path / "a.safetensors"
    rec.save(path)
    ours, _ = read_safetensors(path)
    theirs = st.load_file(str(path))
    assert set(ours) == set(theirs)
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name])
        assert ours[name].dtype == theirs[name].dtype


def test_data_section_is_aligned(tmp_path, mesh):
    _, rec, _ = record(mesh)
    path = tmp_path / "a.safetensors"
    rec.save(path)
    (n,) = struct.unpack("<Q", path.read_bytes()[:8])
    assert n % 8 == 0
    header = read_header(path)
    for name, entry in header.items():
        if name != "__metadata__":
            size = {"F64": 8, "I64": 8, "F32": 4}[entry["dtype"]]
            assert entry["data_offsets"][0] % size == 0, name


def test_header_validates_against_the_schema(tmp_path, mesh):
    _, rec, _ = record(mesh)
    path = tmp_path / "a.safetensors"
    rec.save(path)
    assert header_errors(read_header(path)) == []


def test_committed_fixture_is_valid_and_reproducible(tmp_path):
    path = os.path.join(FIXTURE_DIR, "standin.safetensors")
    assert os.path.getsize(path) < 200_000
    layout, warnings = check_recording(path)
    assert warnings == []
    assert (layout.samples, layout.nodes) == (16, 42)
    assert layout.stages["processor"].state_shape == (16, 42, 8)
    assert sorted(layout.stages["processor"].layers[2]) == ["delta", "resid_post", "resid_pre"]
    assert header_errors_if_possible(read_header(path)) == []
    # The script beside it makes the same recording (to rounding: BLAS and libm may differ between machines).
    again = tmp_path / "again.safetensors"
    runpy.run_path(os.path.join(FIXTURE_DIR, "make_standin.py"), run_name="fixture")["make"](str(again))
    committed, meta_a = read_recording(path)
    remade, meta_b = read_recording(again)
    assert set(committed) == set(remade)
    for name in committed:
        assert committed[name].dtype == remade[name].dtype
        np.testing.assert_allclose(committed[name], remade[name], rtol=1e-5, atol=1e-6)
    assert {k: v for k, v in meta_a.items() if k != "exporter"} == {k: v for k, v in meta_b.items() if k != "exporter"}
    # Every increment can be derived from the states, and matches the recorded delta.
    derived = increments({k: v for k, v in committed.items() if not k.endswith(".delta")})
    for i in range(3):
        np.testing.assert_allclose(derived[i], committed[f"processor.{i}.delta"], atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Atomic writes and clear errors


def test_atomic_write_leaves_no_temporary_file(tmp_path, mesh, monkeypatch):
    _, rec, _ = record(mesh)
    path = tmp_path / "a.safetensors"
    rec.save(path)
    assert sorted(os.listdir(tmp_path)) == ["a.safetensors"]
    before = path.read_bytes()

    # A failure between writing and renaming leaves the old file untouched and no temporary file.
    def broken_replace(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        rec.save(path, metadata={"model": "other"})
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["a.safetensors"]
    assert path.read_bytes() == before

    # A recording that breaks a rule is not written at all.
    with pytest.raises(RecordingError):
        write_recording(tmp_path / "bad.safetensors", {"node_lat": np.zeros(3), "node_lon": np.zeros(3)})
    assert sorted(os.listdir(tmp_path)) == ["a.safetensors"]


def test_bad_coordinate_lengths_raise_a_clear_error(mesh):
    model = StandInModel(NODES, CHANNELS, LATENT, LAYERS)
    with pytest.raises(RecordingError, match=r"node_lat has 42 values but node_lon has 40"):
        LatentRecorder(model, ["processor.proc.0"], mesh[0], mesh[1][:40])
    with pytest.raises(RecordingError, match=r"one value per node"):
        LatentRecorder(model, ["processor.proc.0"], mesh[0].reshape(6, 7), mesh[1].reshape(6, 7))
    with pytest.raises(RecordingError, match=r"node_lat\[0\] = 95.0 is outside \[-90, 90\]"):
        LatentRecorder(model, ["processor.proc.0"], np.full(NODES, 95.0), mesh[1])
    # Coordinates for another node count than the model's: caught at the first forward call.
    rec = LatentRecorder(model, ["processor.proc.0"], mesh[0][:40], mesh[1][:40])
    with pytest.raises(RecordingError, match=r"reshaped to \[4, 42, 8\].*\[batch, 40 nodes, latent\]"):
        model(batches(1)[0])
    rec.remove()


def test_radian_coordinates_are_refused_unless_allowed(mesh):
    model = StandInModel(NODES, CHANNELS, LATENT, LAYERS)
    lat, lon = np.radians(mesh[0]), np.radians(mesh[1])
    with pytest.raises(RecordingError, match="look like radians"):
        LatentRecorder(model, ["processor.proc.0"], lat, lon)
    LatentRecorder(model, ["processor.proc.0"], lat, lon, check_radians=False).remove()


def test_layers_must_see_the_same_samples(tmp_path, mesh):
    model = StandInModel(NODES, CHANNELS, LATENT, LAYERS)
    rec = LatentRecorder(model, {i: f"processor.proc.{i}" for i in range(LAYERS)}, *mesh)
    model(batches(1)[0])
    model.processor.proc[0](np.zeros((2, NODES, LATENT), np.float32))  # a call outside the whole model
    with pytest.raises(RecordingError, match=r"layer 1 \(`processor.proc.1`\) saw 4 samples but layer 0 saw 6"):
        rec.save(tmp_path / "a.safetensors")
    rec2 = LatentRecorder(StandInModel(NODES, CHANNELS, LATENT, 1), ["processor.proc.0"], *mesh)
    with pytest.raises(RecordingError, match="nothing recorded"):
        rec2.tensors()


def test_inputs_and_times_must_match_the_samples(mesh):
    model = StandInModel(NODES, CHANNELS, LATENT, 1)
    rec = LatentRecorder(model, ["processor.proc.0"], *mesh)
    model(batches(1)[0])
    rec.add_sample_times([0, 6, 12])
    with pytest.raises(RecordingError, match="add_sample_times gave 3 times but the layers saw 4"):
        rec.tensors()


def test_recorder_copies_tensors_that_change_in_place(tmp_path, mesh):
    block = ResidualBlock(LATENT, seed=1, in_place=True)
    rec = LatentRecorder(None, [block], *mesh)
    x = np.ones((2, NODES, LATENT), np.float32)
    y = block(x)
    assert np.isnan(x).all()  # the block clobbered its input after the hook ran
    t = rec.tensors()
    np.testing.assert_array_equal(t["processor.0.resid_pre"], 1.0)
    np.testing.assert_array_equal(t["processor.0.resid_post"], y)


def test_shared_block_applied_repeatedly_gives_one_layer_per_application(mesh):
    block = ResidualBlock(LATENT, seed=2)
    proc = Processor([block], order=[0, 0, 0])
    rec = LatentRecorder(proc, {0: "proc.0", 1: "proc.0", 2: "proc.0"}, *mesh)
    x = np.random.default_rng(0).standard_normal((2, NODES, LATENT)).astype(np.float32)
    proc(x)
    proc(x)
    t = rec.tensors()
    np.testing.assert_array_equal(t["processor.1.resid_pre"], t["processor.0.resid_post"])
    np.testing.assert_array_equal(t["processor.2.resid_pre"], t["processor.1.resid_post"])
    assert t["processor.2.resid_pre"].shape == (4, NODES, LATENT)


def test_node_subset_and_hook_removal(tmp_path, mesh):
    model = StandInModel(NODES, CHANNELS, LATENT, 2)
    keep = np.array([5, 0, 41, 17])
    rec = LatentRecorder(model, ["processor.proc.0", "processor.proc.1"], *mesh, node_index=keep,
                         points=("resid_pre", "delta"))
    with rec:
        x = batches(1)[0]
        model(x)
        rec.add_inputs(x)
    model(x)  # hooks removed: not recorded
    t = rec.tensors()
    assert set(t) == {"node_lat", "node_lon", "inputs", "processor.0.resid_pre", "processor.0.delta",
                      "processor.1.resid_pre", "processor.1.delta"}
    np.testing.assert_array_equal(t["node_lat"], mesh[0][keep])
    np.testing.assert_array_equal(t["processor.0.resid_pre"], (x @ model.embed)[:, keep])
    np.testing.assert_array_equal(t["inputs"], x[:, keep])


@pytest.mark.parametrize("dtype, stored", [("float16", "F16"), ("bfloat16", "BF16"), ("float64", "F64")])
def test_reduced_and_double_precision(tmp_path, mesh, dtype, stored):
    _, rec, _ = record(mesh, dtype=dtype)
    path = tmp_path / "a.safetensors"
    rec.save(path)
    header = read_header(path)
    assert header["processor.0.resid_pre"]["dtype"] == stored
    assert header["node_lat"]["dtype"] == "F64"
    assert header_errors_if_possible(header) == []
    _, ref, _ = record(mesh)
    want = ref.tensors()
    got, _ = read_recording(path)
    tol = {"F16": 2e-3, "BF16": 1e-2, "F64": 1e-6}[stored]
    for name in ("processor.1.resid_pre", "processor.1.resid_post"):
        np.testing.assert_allclose(got[name], want[name], rtol=tol, atol=tol)


def test_bfloat16_rounding_is_nearest_even():
    values = np.array([1.0, 1.00390625, 1.01171875, -2.5, 3.0e38, np.inf, 1e-40], np.float32)
    bits = f32_to_bf16_bits(values)
    back = BF16Array(bits).to_float32()
    np.testing.assert_array_equal(back[:4], [1.0, 1.0, 1.015625, -2.5])  # 1+2^-8 ties to even (down), 1+3*2^-8 up
    assert np.isinf(back[5]) and np.isnan(BF16Array.from_float(np.array([np.nan], np.float32)).to_float32()[0])


def test_a_second_stage_carries_its_own_coordinates(tmp_path, mesh):
    fine = StandInModel(NODES, CHANNELS, LATENT, 2)
    coarse = ResidualBlock(4, seed=9)
    coarse_lat, coarse_lon = np.array([45.0, -45.0, 10.0]), np.array([0.0, 180.0, 90.0])
    rec = LatentRecorder(fine, ["processor.proc.0", "processor.proc.1"], *mesh)
    rec2 = LatentRecorder(None, {5: coarse}, coarse_lat, coarse_lon, stage="backbone_m1", points=("resid_pre",))
    for x in batches(2):
        fine(x)
        coarse(np.ones((4, 3, 4), np.float32))
        rec.add_sample_times(np.arange(4) + 6 * rec.samples)
        rec2.add_sample_times(np.arange(4) + 6 * rec2.samples)
    path = tmp_path / "two.safetensors"
    layout = save_recording(path, rec, rec2, metadata={"model": "two stages"})
    assert set(layout.stages) == {"processor", "backbone_m1"}
    assert layout.stages["backbone_m1"].nodes == 3
    header = read_header(path)
    assert {"backbone_m1.node_lat", "backbone_m1.node_lon", "backbone_m1.5.resid_pre"} <= set(header)
    assert header_errors_if_possible(header) == []
    assert json.loads(header["__metadata__"]["hooked_modules"]) == {
        "processor.0": "processor.proc.0", "processor.1": "processor.proc.1", "backbone_m1.5": "ResidualBlock"}


def test_parts_that_disagree_are_refused(tmp_path, mesh):
    _, rec, _ = record(mesh)
    with pytest.raises(RecordingError, match="two parts give `sample_time` with different values"):
        save_recording(tmp_path / "a.safetensors", rec, {"sample_time": np.arange(12, dtype=np.int64)})


# ---------------------------------------------------------------------------------------------------------------
# The format's rules (docs/recording.md), on hand-made tensors


def base(samples=2, nodes=3, latent=4):
    rng = np.random.default_rng(1)
    return {
        "node_lat": np.array([10.0, -20.0, 30.0])[:nodes],
        "node_lon": np.array([0.0, 100.0, 200.0])[:nodes],
        "processor.0.resid_pre": rng.standard_normal((samples, nodes, latent)).astype(np.float32),
        "processor.1.resid_pre": rng.standard_normal((samples, nodes, latent)).astype(np.float32),
    }


def with_(extra=None, drop=()):
    t = base()
    t.update(extra or {})
    for name in drop:
        del t[name]
    return t


f32 = lambda *shape: np.zeros(shape, np.float32)  # noqa: E731

RULES = [
    ("unknown name", with_({"Processor.0.resid_pre": f32(2, 3, 4)}), r"tensor `Processor.0.resid_pre`: not a recording name"),
    ("leading zero", with_({"processor.01.delta": f32(2, 3, 4)}), r"`processor.01.delta`: not a recording name"),
    ("too deep", with_({"processor.0.a.b": f32(2, 3, 4)}), r"not a recording name"),
    ("top-level typo", with_({"node_lats": np.zeros(3)}), r"`node_lats`: not a recording name"),
    ("no node_lat", with_(drop=["node_lat"]), r"no `node_lat` tensor: a plain recording carries"),
    ("no processor", with_({"encoder.0.resid_pre": f32(2, 3, 4)}, drop=["processor.0.resid_pre", "processor.1.resid_pre"]),
     r"no processor layer"),
    ("latent dtype", with_({"processor.0.delta": np.zeros((2, 3, 4), np.int32)}),
     r"tensor `processor.0.delta` has dtype I32; F32 or F64 or F16 or BF16 expected"),
    ("coord dtype", with_({"node_lat": np.zeros(3, np.float16)}), r"tensor `node_lat` has dtype F16; F32 or F64 expected"),
    ("time dtype", with_({"sample_time": np.zeros(2, np.int32)}), r"`sample_time` has dtype I32; I64 or F64 expected"),
    ("rank", with_({"inputs": f32(2, 3)}), r"tensor `inputs` has shape \[2, 3\]; \[samples, nodes, channels\] expected"),
    ("empty", with_({"processor.0.delta": f32(2, 3, 0)}), r"tensor `processor.0.delta` has an empty axis"),
    ("lon length", with_({"node_lon": np.zeros(4)}), r"`node_lon` has 4 nodes but `node_lat` has 3"),
    ("samples", with_({"inputs": f32(5, 3, 2)}), r"tensor `processor.0.resid_pre` has 2 samples but `inputs` has 5"),
    ("nodes", with_({"inputs": f32(2, 4, 2)}), r"tensor `inputs` has 4 nodes but the recording has 3 \(the length of `node_lat`\)"),
    ("stage nodes", with_({"encoder.out": f32(2, 5, 2), "encoder.node_lat": np.zeros(4), "encoder.node_lon": np.zeros(4)}),
     r"tensor `encoder.out` has 5 nodes but stage `encoder` has 4 \(the length of `encoder.node_lat`\)"),
    ("layer shape", with_({"processor.1.resid_pre": f32(2, 3, 5)}),
     r"tensor `processor.1.resid_pre` has shape \[2, 3, 5\] but `processor.0.resid_pre` has \[2, 3, 4\]"),
    ("no resid_pre", with_({"processor.4.delta": f32(2, 3, 4)}),
     r"tensor `processor.4.delta`: layer 4 of stage `processor` has no `processor.4.resid_pre`"),
    ("unpaired stage coords", with_({"encoder.out": f32(2, 3, 2), "encoder.node_lat": np.zeros(3)}),
     r"`encoder.node_lat` has no `encoder.node_lon`"),
    ("orphan stage coords", with_({"mesh2.node_lat": np.zeros(3), "mesh2.node_lon": np.zeros(3)}),
     r"`mesh2.node_lat`: no tensor belongs to stage `mesh2`"),
    ("latitude range", with_({"node_lat": np.array([10.0, 91.0, 0.0])}), r"node_lat\[1\] = 91.0 is outside \[-90, 90\] degrees"),
    ("longitude range", with_({"node_lon": np.array([10.0, 0.0, 400.0])}), r"node_lon\[2\] = 400.0 is outside \[-360, 360\]"),
    ("non-finite", with_({"processor.1.delta": np.where(np.arange(24).reshape(2, 3, 4) == 17, np.nan, 0).astype(np.float32)}),
     r"tensor `processor.1.delta` has a non-finite value at sample 1, node 1, channel 1"),
    ("same times", with_({"sample_time": np.array([5, 5], np.int64)}),
     r"sample_time\[0\] and sample_time\[1\] are both 5 h: each sample needs its own time"),
    ("metadata name", with_({"__metadata__": f32(1)}), r"`__metadata__` is safetensors' header metadata"),
]


@pytest.mark.parametrize("label, tensors, message", RULES, ids=[r[0] for r in RULES])
def test_each_rule_gives_its_error(tmp_path, label, tensors, message):
    with pytest.raises(RecordingError, match=message):
        write_recording(tmp_path / "x.safetensors", tensors)
    assert not os.listdir(tmp_path)


def test_the_schema_rejects_what_the_rules_reject_from_the_header_alone():
    def header(names, dtype="F32", shape=(2, 3, 4)):
        h = {"node_lat": {"dtype": "F64", "shape": [3], "data_offsets": [0, 24]},
             "node_lon": {"dtype": "F64", "shape": [3], "data_offsets": [24, 48]}}
        for name in names:
            h[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [0, 0]}
        return h

    good = header(["processor.0.resid_pre", "encoder.out", "processor.3.edge_delta"])
    good["mesh.node_lat"] = {"dtype": "F32", "shape": [5], "data_offsets": [0, 20]}
    assert header_errors(good) == []
    for bad in (
        header(["processor.01.resid_pre"]),
        header(["processor.0.resid_pre", "Encoder.out"]),
        header(["processor.0.resid_pre", "node_lats"]),
        header(["encoder.0.resid_pre"]),  # no processor layer
        header(["processor.0.resid_pre"], dtype="I32"),
        header(["processor.0.resid_pre"], shape=(2, 3)),
        header(["processor.0.resid_pre"], shape=(2, 0, 4)),
        {k: v for k, v in header(["processor.0.resid_pre"]).items() if k != "node_lon"},
        {**header(["processor.0.resid_pre"]), "encoder.node_lat": {"dtype": "F32", "shape": [3, 1], "data_offsets": [0, 12]}},
        {**header(["processor.0.resid_pre"]), "__metadata__": {"format_version": "2"}},
        {**header(["processor.0.resid_pre"]), "__metadata__": {"model": 3}},
    ):
        assert header_errors(bad), bad


def test_metadata_version_and_format():
    with pytest.raises(RecordingError, match="recording format version 2 is not supported by this reader"):
        from weatherlens_export.format import check_metadata

        check_metadata({"format_version": "2"})


def test_reader_rejects_broken_files(tmp_path):
    path = tmp_path / "a.safetensors"
    write_recording(path, base())
    data = path.read_bytes()
    (tmp_path / "short.safetensors").write_bytes(data[:-4])
    with pytest.raises(RecordingError, match="not a readable safetensors file"):
        check_recording(tmp_path / "short.safetensors")
    (tmp_path / "tiny.safetensors").write_bytes(b"\x01")
    with pytest.raises(RecordingError, match="shorter than the 8-byte header length"):
        check_recording(tmp_path / "tiny.safetensors")


def test_names_and_stages():
    assert parse_name("processor.3.resid_pre").stage == "processor"
    assert parse_name("processor.3.resid_pre").layer == 3
    assert parse_name("encoder.out").stage == "encoder" and parse_name("encoder.out").kind == "stage"
    assert parse_name("encoder.node_lat").kind == "coord"
    assert parse_name("node_lat").stage is None
    assert parse_name("processor.2.edge_delta").role == "edges"
    assert parse_name("processor.0.node_lat").role == "nodes"  # a layer point, not coordinates


def test_increments_are_derived_from_states():
    rng = np.random.default_rng(0)
    x = [rng.standard_normal((2, 3, 4)) for _ in range(4)]
    t = {"processor.0.resid_pre": x[0], "processor.0.delta": np.full((2, 3, 4), 7.0),
         "processor.1.resid_pre": x[1], "processor.1.resid_post": x[2],
         "processor.2.resid_pre": x[2], "processor.3.resid_pre": x[3],
         "processor.5.resid_pre": x[0]}
    v = increments(t)
    np.testing.assert_array_equal(v[0], 7.0)
    np.testing.assert_array_equal(v[1], x[2] - x[1])
    np.testing.assert_array_equal(v[2], x[3] - x[2])
    assert v[3] is None and v[5] is None


def test_probes_json_schema():
    jsonschema, doc = schema()
    sub = doc["$defs"]["probes_json"]
    meta = {  # field order and types as serde_json writes RecordingMeta (probes/src/record.rs)
        "model": "demo (Gnn)",
        "checkpoint": "runs/demo/checkpoints/best",
        "hooks": ["encoder.out", "processor.0.resid_pre", "processor.0.delta", "processor.0.resid_post"],
        "layers": [0],
        "sample_times": ["2001-01-01T00:00:00Z", "2001-01-02T00:00:00Z"],
        "node_indices": [0, 1, 2],
        "node_lat": [90.0, 26.57, -26.57],
        "node_lon": [0.0, 36.0, 72.0],
        "latent_size": 16,
        "mesh_level": 2,
    }
    validator = jsonschema.Draft202012Validator(sub)
    assert list(validator.iter_errors(meta)) == []
    assert list(validator.iter_errors({**meta, "extra": 1})) == []  # serde ignores unknown fields
    described = {**meta, "inputs": "the model's input at the grid point nearest each node"}
    assert list(validator.iter_errors(described)) == []  # optional description of the inputs tensor
    assert list(validator.iter_errors({**meta, "inputs": 3})), "inputs is a description"
    for bad in ({k: v for k, v in meta.items() if k != "mesh_level"}, {**meta, "hooks": ["processor.0.x"]},
                {**meta, "sample_times": ["2001-01-01 00:00"]}, {**meta, "latent_size": 0}):
        assert list(validator.iter_errors(bad)), bad


def test_hours_since_epoch():
    assert hours_since_epoch(dt.datetime(1970, 1, 2)) == 24
    assert hours_since_epoch("1970-01-01T06:00:00Z") == 6
    assert hours_since_epoch(np.datetime64("2000-01-01T12")) == 262_980
    assert hours_since_epoch(dt.datetime(1970, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))) == 0
    assert hours_since_epoch(12.5) == 12.5


def test_command_line_check(tmp_path):
    path = tmp_path / "a.safetensors"
    write_recording(path, base())
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR)
    out = subprocess.run([sys.executable, "-m", "weatherlens_export", "check", str(path)], capture_output=True,
                         text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["stages"]["processor"]["layers"] == {"0": ["resid_pre"], "1": ["resid_pre"]}
    (tmp_path / "b.safetensors").write_bytes(b"nonsense")
    out = subprocess.run([sys.executable, "-m", "weatherlens_export", "check", str(tmp_path / "b.safetensors")],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 1 and "not a readable safetensors file" in out.stderr


# ---------------------------------------------------------------------------------------------------------------
# Recipes, on stand-ins shaped like the real models


class _Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def test_aurora_blocks_in_forward_order():
    def layer(n):
        return _Obj(blocks=[ResidualBlock(4, seed=j) for j in range(n)])

    model = _Obj(backbone=_Obj(encoder_layers=[layer(2), layer(3), layer(1)], decoder_layers=[layer(1), layer(3), layer(2)]))
    blocks = aurora_backbone_blocks(model)
    assert [b.depth for b in blocks] == list(range(12))
    assert blocks[0].name == "backbone.encoder_layers.0.blocks.0" and blocks[0].merges == 0
    assert blocks[2].name == "backbone.encoder_layers.1.blocks.0" and blocks[2].merges == 1
    assert blocks[5].name == "backbone.encoder_layers.2.blocks.0" and blocks[5].merges == 2
    assert blocks[6].name == "backbone.decoder_layers.0.blocks.0" and blocks[6].merges == 2
    assert blocks[10].name == "backbone.decoder_layers.2.blocks.0" and blocks[10].merges == 0
    assert [b.depth for b in blocks if b.merges == 0] == [0, 1, 10, 11]


def test_aurora_tokens_become_patches():
    levels, h, w, d = 3, 2, 5, 4
    tokens = np.arange(2 * levels * h * w * d, dtype=np.float32).reshape(2, levels * h * w, d)
    nodes = aurora_tokens_to_nodes(levels)(tokens)
    assert nodes.shape == (2, h * w, levels * d)
    grid = tokens.reshape(2, levels, h, w, d)  # Swin3DTransformerBlock's view: (B, C, H, W, D)
    np.testing.assert_array_equal(nodes[1, 1 * w + 3], grid[1, :, 1, 3].reshape(-1))
    one = aurora_tokens_to_nodes(levels, level=0)(tokens)
    np.testing.assert_array_equal(one[0, 7], grid[0, 0, 1, 2])


def test_aurora_patch_centres_and_means():
    lat = np.linspace(90, -90, 721)
    lon = np.arange(1440) * 0.25
    assert aurora_patch_grid(721, 1440, 4) == (180, 360)
    assert aurora_patch_grid(721, 1440, 4, merges=2) == (45, 90)
    clat, clon = aurora_patch_centres(lat, lon, 4)
    assert clat.shape == (180 * 360,)
    assert clat[0] == pytest.approx(np.mean(lat[:4])) and clon[0] == pytest.approx(0.375)
    assert clat[360] == pytest.approx(np.mean(lat[4:8])) and clon[361] == pytest.approx(1.375)
    # merged tokens: an odd count is padded at the end; the padded slots do not count
    lat10, lon12 = np.linspace(80, -80, 10), np.arange(12) * 30.0  # 5 x 6 patches of 2 -> 3 x 3 merged
    assert aurora_patch_grid(10, 12, 2, merges=1) == (3, 3)
    mlat, mlon = aurora_patch_centres(lat10, lon12, 2, merges=1)
    assert mlat.shape == (9,)
    assert mlat[0] == pytest.approx(np.mean(lat10[:4])) and mlon[0] == pytest.approx(np.mean(lon12[:4]))
    assert mlat[8] == pytest.approx(np.mean(lat10[8:10])) and mlon[8] == pytest.approx(np.mean(lon12[8:12]))
    fields = np.random.default_rng(0).standard_normal((2, 3, 11, 12))
    means = aurora_patch_means(fields, 2, merges=1)  # 11 rows: the last one is cropped, as Batch.crop does
    assert means.shape == (2, 9, 3)
    np.testing.assert_allclose(means[1, 0], fields[1, :, :4, :4].mean(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(means[0, 8], fields[0, :, 8:10, 8:12].mean(axis=(1, 2)), rtol=1e-6)


def test_aurora_like_recording_end_to_end(tmp_path):
    levels, patch = 2, 2
    lat, lon = np.linspace(60, -60, 8), np.arange(8) * 45.0
    clat, clon = aurora_patch_centres(lat, lon, patch)
    blocks = [ResidualBlock(6, seed=s) for s in range(2)]
    rec = LatentRecorder(None, blocks, clat, clon, reshape=aurora_tokens_to_nodes(levels),
                         metadata={"layer_kind": "swin3d-block"})
    x = np.random.default_rng(0).standard_normal((1, levels * 16, 6)).astype(np.float32)
    for b in blocks:
        x = b(x)
    layout = rec.save(tmp_path / "a.safetensors")
    assert layout.stages["processor"].state_shape == (1, 16, 12)


def test_anemoi_blocks_in_both_layouts():
    blocks = [ResidualBlock(4, seed=j, tuple_output=True) for j in range(4)]
    flat = _Obj(proc=blocks)  # anemoi-models >= 0.11
    chunked = _Obj(proc=[_Obj(blocks=blocks[:2]), _Obj(blocks=blocks[2:])])  # older ProcessorChunks
    assert anemoi_processor_blocks(flat) == dict(enumerate(blocks))
    assert anemoi_processor_blocks(chunked) == dict(enumerate(blocks))
    with pytest.raises(RecordingError, match="not an anemoi processor"):
        anemoi_processor_blocks(_Obj())


def test_anemoi_hidden_coordinates_are_converted_from_radians():
    lat, lon = icosahedron_nodes(1)
    coords = np.radians(np.stack([lat, lon], axis=1))
    interface = _Obj(graph_data={"hidden": _Obj(x=coords)}, model=_Obj(_graph_name_hidden="hidden"))
    glat, glon = anemoi_hidden_coordinates(interface)
    np.testing.assert_allclose(glat, lat)
    np.testing.assert_allclose(glon, lon)
    buffers = _Obj(latlons_hidden=np.concatenate([np.sin(coords), np.cos(coords)], axis=1))
    model = _Obj(_graph_name_hidden="hidden", node_attributes=buffers)
    blat, blon = anemoi_hidden_coordinates(model)
    np.testing.assert_allclose(blat, lat, atol=1e-12)
    np.testing.assert_allclose(blon, lon, atol=1e-12)


def test_anemoi_like_recording_with_inputs_at_the_hidden_nodes(tmp_path, mesh):
    # Data on a 10-degree grid, processor on the mesh: inputs at the nodes are the nearest grid values.
    glat, glon = np.meshgrid(np.arange(-85, 90, 10.0), np.arange(0, 360, 10.0), indexing="ij")
    glat, glon = glat.ravel(), glon.ravel()
    nearest = nearest_points(glat, glon, *mesh)
    assert nearest.shape == (NODES,)
    field = np.random.default_rng(0).standard_normal((2, glat.size, CHANNELS)).astype(np.float32)
    model = StandInModel(NODES, CHANNELS, LATENT, 2, flat=True)
    rec = LatentRecorder(model, anemoi_processor_blocks(model.processor), *mesh)
    at_nodes = field[:, nearest]
    model(at_nodes)
    rec.add_inputs(at_nodes)
    layout = rec.save(tmp_path / "a.safetensors")
    assert layout.has_inputs and layout.stages["processor"].state_shape == (2, NODES, LATENT)


def test_nearest_points_brute_force_matches_a_direct_search():
    rng = np.random.default_rng(3)
    slat, slon = rng.uniform(-90, 90, 300), rng.uniform(0, 360, 300)
    dlat, dlon = rng.uniform(-90, 90, 50), rng.uniform(-180, 180, 50)
    idx = nearest_points(slat, slon, dlat, dlon, chunk=7)
    s = np.radians(np.stack([slat, slon], 1))
    for k in range(50):
        a, b = np.radians(dlat[k]), np.radians(dlon[k])
        cos_d = np.sin(a) * np.sin(s[:, 0]) + np.cos(a) * np.cos(s[:, 0]) * np.cos(b - s[:, 1])
        assert idx[k] == int(np.argmax(cos_d))


def test_icosahedron_nodes():
    for level, count in ((0, 12), (1, 42), (2, 162)):
        lat, lon = icosahedron_nodes(level)
        assert lat.size == count
        xyz = np.stack([np.cos(np.radians(lat)) * np.cos(np.radians(lon)),
                        np.cos(np.radians(lat)) * np.sin(np.radians(lon)), np.sin(np.radians(lat))], 1)
        gaps = np.sort(1 - xyz @ xyz.T, axis=1)[:, 1]
        assert gaps.min() > 1e-3  # distinct points
    assert sorted(icosahedron_nodes(0)[0])[0] == -90 and sorted(icosahedron_nodes(0)[0])[-1] == 90


# ---------------------------------------------------------------------------------------------------------------
# The same with real torch modules, when torch is installed


def test_with_torch_modules(tmp_path, mesh):
    torch = pytest.importorskip("torch")

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(LATENT, LATENT)

        def forward(self, x, edge_attr=None):
            return x + torch.tanh(self.lin(x)), edge_attr

    class Proc(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proc = torch.nn.ModuleList([Block() for _ in range(3)])

        def forward(self, x):
            for b in self.proc:
                x, _ = b(x, None)
            return x

    model = Proc().to(torch.bfloat16)
    rec = LatentRecorder(model, anemoi_processor_blocks(model), *mesh, dtype="keep")
    with torch.no_grad():
        model(torch.randn(2 * NODES, LATENT, dtype=torch.bfloat16))
    path = tmp_path / "t.safetensors"
    rec.save(path)
    assert read_header(path)["processor.0.resid_pre"]["dtype"] == "BF16"
    t, _ = read_recording(path)
    assert t["processor.2.resid_post"].shape == (2, NODES, LATENT)


def test_radian_like_coordinates_are_a_warning_for_readers(tmp_path):
    t = base()
    t["node_lat"], t["node_lon"] = np.radians(t["node_lat"]), np.radians(t["node_lon"])
    path = tmp_path / "r.safetensors"
    write_recording(path, t)
    _, warnings = check_recording(path)
    assert warnings == ["`node_lat`/`node_lon` all lie within |lat| <= pi/2, |lon| <= 2 pi: are they radians? "
                        "The format wants degrees"]
