use std::path::{Path, PathBuf};

use super::*;

/// One tensor for [`write`]: name, dtype name, shape, raw little-endian bytes.
pub(crate) type RawTensor = (String, String, Vec<usize>, Vec<u8>);

pub(crate) fn f32_bytes(values: &[f64]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| (v as f32).to_le_bytes())
        .collect()
}

pub(crate) fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub(crate) fn tensor(name: &str, dtype: &str, shape: &[usize], bytes: Vec<u8>) -> RawTensor {
    (name.to_string(), dtype.to_string(), shape.to_vec(), bytes)
}

/// Writes a safetensors file by hand (so that broken ones can be written too), tensors in the given order.
pub(crate) fn write(path: &Path, tensors: &[RawTensor], metadata: Option<serde_json::Value>) {
    let mut header = serde_json::Map::new();
    if let Some(m) = metadata {
        header.insert("__metadata__".into(), m);
    }
    let mut offset = 0;
    for (name, dtype, shape, bytes) in tensors {
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes.len()]}),
        );
        offset += bytes.len();
    }
    let mut text = serde_json::to_vec(&header).unwrap();
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    for (_, _, _, bytes) in tensors {
        out.extend(bytes);
    }
    std::fs::write(path, out).unwrap();
}

/// A valid plain recording: 3 samples, 4 nodes, latent 2, layers 0..=2 with `resid_pre` only (layer 2 also
/// `resid_post`), value of X_i at (s, n, c) = 100 i + 10 s + n + c/10 (so v_i = 100 everywhere), F16 `inputs`
/// [3, 4, 1], I64 times, shuffled-looking coordinates.
fn valid() -> Vec<RawTensor> {
    let state = |i: usize| -> Vec<f64> {
        (0..3)
            .flat_map(|s| {
                (0..4).flat_map(move |n| {
                    (0..2).map(move |c| {
                        100.0 * i as f64 + 10.0 * s as f64 + n as f64 + c as f64 / 10.0
                    })
                })
            })
            .collect()
    };
    // F16 1.0 = 0x3C00, -2.0 = 0xC000.
    let inputs: Vec<u8> = (0..12)
        .flat_map(|k| if k % 2 == 0 { 0x3C00u16 } else { 0xC000u16 }.to_le_bytes())
        .collect();
    vec![
        tensor(
            "node_lat",
            "F64",
            &[4],
            f64_bytes(&[10.0, -30.0, 89.0, 0.0]),
        ),
        tensor(
            "node_lon",
            "F32",
            &[4],
            f32_bytes(&[-170.0, 20.0, 355.0, 0.0]),
        ),
        tensor(
            "processor.0.resid_pre",
            "F32",
            &[3, 4, 2],
            f32_bytes(&state(0)),
        ),
        tensor(
            "processor.1.resid_pre",
            "F64",
            &[3, 4, 2],
            f64_bytes(&state(1)),
        ),
        tensor(
            "processor.2.resid_pre",
            "F32",
            &[3, 4, 2],
            f32_bytes(&state(2)),
        ),
        tensor(
            "processor.2.resid_post",
            "F32",
            &[3, 4, 2],
            f32_bytes(&state(3)),
        ),
        tensor("inputs", "F16", &[3, 4, 1], inputs),
        tensor(
            "sample_time",
            "I64",
            &[3],
            [438_288i64, 438_294, 438_300]
                .iter()
                .flat_map(|t| t.to_le_bytes())
                .collect(),
        ),
    ]
}

fn open(
    tensors: &[RawTensor],
    metadata: Option<serde_json::Value>,
) -> (tempfile::TempDir, Result<Recording, RecordingError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.safetensors");
    write(&path, tensors, metadata);
    let result = Recording::open(&path);
    (dir, result)
}

fn error_of(tensors: Vec<RawTensor>) -> String {
    let (_dir, result) = open(&tensors, None);
    result.unwrap_err().to_string()
}

fn replaced(name: &str, with: RawTensor) -> Vec<RawTensor> {
    valid()
        .into_iter()
        .map(|t| if t.0 == name { with.clone() } else { t })
        .collect()
}

fn without(name: &str) -> Vec<RawTensor> {
    valid().into_iter().filter(|t| t.0 != name).collect()
}

fn with(extra: RawTensor) -> Vec<RawTensor> {
    let mut tensors = valid();
    tensors.push(extra);
    tensors
}

#[test]
fn a_plain_recording_reads_back_with_derived_increments_and_converted_dtypes() {
    let (_dir, recording) = open(
        &valid(),
        Some(serde_json::json!({"model": "toy", "format_version": "1"})),
    );
    let recording = recording.unwrap();
    assert_eq!(recording.label(), "toy");
    assert_eq!(recording.samples(), 3);
    assert_eq!(
        recording.sample_hours(),
        Some(&[438_288.0, 438_294.0, 438_300.0][..])
    );
    let processor = recording.processor();
    assert_eq!(processor.layers, [0, 1, 2]);
    assert_eq!(processor.latent, Some(2));
    assert_eq!(processor.node_lat, [10.0, -30.0, 89.0, 0.0]);
    assert_eq!(processor.node_lon, [-170.0, 20.0, 355.0, 0.0]);
    // v_0 = X_1 − X_0 (next resid_pre), v_2 = resid_post − resid_pre: 100 everywhere (exact in f64).
    for layer in [0, 1, 2] {
        let v = recording.increment("processor", layer).unwrap();
        assert!(!v.is_stored());
        let values = recording.read(&v).unwrap();
        assert_eq!(values.len(), 24);
        for value in values {
            assert!((value - 100.0).abs() < 1e-4, "layer {layer}: {value}");
        }
    }
    assert_eq!(
        recording.increment("processor", 0).unwrap().describe(),
        "processor.0.delta = processor.1.resid_pre − processor.0.resid_pre"
    );
    // X_1 of layer 0 is the next layer's resid_pre: rows (sample 2, node 3) and (0, 1).
    let post = recording.output("processor", 0).unwrap();
    assert_eq!(
        recording.read_rows(&post, &[(2, 3), (0, 1)]).unwrap(),
        [123.0, 123.1, 101.0, 101.1]
    );
    // F16 inputs: 1.0 and −2.0 alternate.
    let inputs = recording.inputs().unwrap();
    assert_eq!((inputs.nodes, inputs.width), (4, 1));
    assert_eq!(
        recording.read_rows(&inputs, &[(0, 0), (0, 1)]).unwrap(),
        [1.0, -2.0]
    );
    let err = recording
        .source("processor.7.delta")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("processor.7.delta") && err.contains("it has:"),
        "{err}"
    );
}

#[test]
fn each_rule_names_its_breach() {
    let cases: Vec<(Vec<RawTensor>, &str)> = vec![
        (
            with(tensor("Processor.0.delta", "F32", &[3, 4, 2], vec![0; 96])),
            "tensor `Processor.0.delta`: not a recording name",
        ),
        (
            with(tensor("processor.03.delta", "F32", &[3, 4, 2], vec![0; 96])),
            "tensor `processor.03.delta`: not a recording name",
        ),
        (
            replaced("node_lat", tensor("node_lat", "F16", &[4], vec![0; 8])),
            "tensor `node_lat` has dtype F16; F32 or F64 expected",
        ),
        (
            with(tensor("processor.0.delta", "I32", &[3, 4, 2], vec![0; 96])),
            "tensor `processor.0.delta` has dtype I32; F32 or F64 or F16 or BF16 expected",
        ),
        (
            replaced(
                "sample_time",
                tensor("sample_time", "I32", &[3], vec![0; 12]),
            ),
            "tensor `sample_time` has dtype I32; I64 or F64 expected",
        ),
        (
            with(tensor("processor.0.delta", "F32", &[24], vec![0; 96])),
            "tensor `processor.0.delta` has shape [24]; [samples, nodes, latent] expected",
        ),
        (
            replaced("inputs", tensor("inputs", "F32", &[3, 4], vec![0; 48])),
            "tensor `inputs` has shape [3, 4]; [samples, nodes, channels] expected",
        ),
        (
            with(tensor("processor.0.delta", "F32", &[3, 0, 2], vec![])),
            "tensor `processor.0.delta` has an empty axis (shape [3, 0, 2])",
        ),
        (
            without("node_lat"),
            "no `node_lat` tensor: a plain recording carries the node coordinates",
        ),
        (
            valid()
                .into_iter()
                .filter(|t| !t.0.starts_with("processor."))
                .chain([tensor("encoder.out", "F32", &[3, 4, 2], vec![0; 96])])
                .collect(),
            "no processor layer: a recording holds processor.{i}.resid_pre for at least one layer i",
        ),
        (
            replaced("node_lon", tensor("node_lon", "F32", &[5], vec![0; 20])),
            "`node_lon` has 5 nodes but `node_lat` has 4: one of each per node",
        ),
        (
            with(tensor(
                "encoder.node_lat",
                "F64",
                &[2],
                f64_bytes(&[0.0, 1.0]),
            )),
            "`encoder.node_lat` has no `encoder.node_lon`: a stage carries both coordinates or neither",
        ),
        (
            [
                tensor("encoder.node_lat", "F64", &[2], f64_bytes(&[0.0, 1.0])),
                tensor("encoder.node_lon", "F64", &[2], f64_bytes(&[0.0, 1.0])),
            ]
            .into_iter()
            .chain(valid())
            .collect(),
            "`encoder.node_lat`: no tensor belongs to stage `encoder`",
        ),
        (
            replaced("inputs", tensor("inputs", "F32", &[2, 4, 1], vec![0; 32])),
            "tensor `processor.0.resid_pre` has 3 samples but `inputs` has 2: every tensor holds the same samples",
        ),
        (
            replaced("inputs", tensor("inputs", "F32", &[3, 5, 1], vec![0; 60])),
            "tensor `inputs` has 5 nodes but the recording has 4 (the length of `node_lat`)",
        ),
        (
            with(tensor("processor.5.delta", "F32", &[3, 4, 2], vec![0; 96])),
            "tensor `processor.5.delta`: layer 5 of stage `processor` has no `processor.5.resid_pre`",
        ),
        (
            with(tensor("processor.0.delta", "F32", &[3, 4, 3], vec![0; 144])),
            "tensor `processor.0.delta` has shape [3, 4, 3] but `processor.0.resid_pre` has [3, 4, 2]: the \
             resid_pre, delta and resid_post tensors of a stage share one shape",
        ),
        (
            replaced(
                "node_lat",
                tensor(
                    "node_lat",
                    "F64",
                    &[4],
                    f64_bytes(&[10.0, -30.0, 91.0, 0.0]),
                ),
            ),
            "node_lat[2] = 91 is outside [-90, 90] degrees",
        ),
        (
            replaced(
                "node_lon",
                tensor(
                    "node_lon",
                    "F64",
                    &[4],
                    f64_bytes(&[0.0, f64::NAN, 0.0, 0.0]),
                ),
            ),
            "node_lon[1] = NaN is outside [-360, 360] degrees",
        ),
        (
            replaced(
                "sample_time",
                tensor("sample_time", "F64", &[3], f64_bytes(&[5.0, 7.0, 5.0])),
            ),
            "sample_time[0] and sample_time[2] are both 5 h: each sample needs its own time",
        ),
    ];
    for (k, (tensors, expected)) in cases.into_iter().enumerate() {
        let err = error_of(tensors);
        assert!(
            err.contains(expected),
            "case {k}: {err}\nexpected: {expected}"
        );
        assert!(err.contains("rec.safetensors"), "names the file: {err}");
    }
}

#[test]
fn container_and_metadata_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.safetensors");
    std::fs::write(&path, b"abc").unwrap();
    let err = Recording::open(&path).unwrap_err().to_string();
    assert!(
        err.contains("not a readable safetensors file (shorter than the 8-byte header length)"),
        "{err}"
    );
    // A tensor whose bytes do not match its shape.
    let mut tensors = valid();
    tensors[0].3.pop();
    write(&path, &tensors, None);
    let err = Recording::open(&path).unwrap_err().to_string();
    assert!(
        err.contains("entry `node_lat` spans 31 bytes but F64 [4] needs 32"),
        "{err}"
    );
    let (_d, result) = open(&valid(), Some(serde_json::json!({"format_version": "2"})));
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains(
            "recording format version 2 is not supported by this reader (it reads version 1)"
        ),
        "{err}"
    );
    let (_d, result) = open(&valid(), Some(serde_json::json!({"model": 3})));
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("__metadata__ entry `model`: keys and values must be strings, got 3"),
        "{err}"
    );
    let err = Recording::open(&dir.path().join("missing.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.safetensors"), "{err}");
}

#[test]
fn non_finite_values_are_named_when_read() {
    let mut tensors = valid();
    let mut values = vec![0.0; 24];
    values[2 * 8 + 3 * 2 + 1] = f64::INFINITY; // sample 2, node 3, channel 1
    tensors[2] = tensor(
        "processor.0.resid_pre",
        "F32",
        &[3, 4, 2],
        f32_bytes(&values),
    );
    let (_dir, recording) = open(&tensors, None);
    let recording = recording.unwrap();
    let x = recording.state("processor", 0).unwrap();
    let err = recording.read(&x).unwrap_err().to_string();
    assert!(
        err.contains(
            "tensor `processor.0.resid_pre` has a non-finite value at sample 2, node 3, channel 1"
        ),
        "{err}"
    );
    // Rows that avoid the bad value read fine.
    assert!(recording.read_rows(&x, &[(0, 0), (1, 3)]).is_ok());
}

#[test]
fn radians_are_warned_about() {
    let tensors = replaced(
        "node_lat",
        tensor("node_lat", "F64", &[4], f64_bytes(&[0.1, -0.5, 1.2, 0.0])),
    );
    let tensors: Vec<RawTensor> = tensors
        .into_iter()
        .map(|t| {
            if t.0 == "node_lon" {
                tensor("node_lon", "F64", &[4], f64_bytes(&[0.1, 3.0, 6.0, 0.0]))
            } else {
                t
            }
        })
        .collect();
    let (_dir, recording) = open(&tensors, None);
    let warnings = recording.unwrap().warnings().to_vec();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("are they radians?"), "{warnings:?}");
}

#[test]
fn half_precision_bit_patterns_convert_exactly() {
    assert_eq!(f16_to_f64(0x3C00), 1.0);
    assert_eq!(f16_to_f64(0xC000), -2.0);
    assert_eq!(f16_to_f64(0x7BFF), 65504.0); // largest finite half
    assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24)); // smallest subnormal
    assert_eq!(f16_to_f64(0x3555), 0.333_251_953_125); // nearest half to 1/3
    assert_eq!(f16_to_f64(0x7C00), f64::INFINITY);
    assert!(f16_to_f64(0x7E00).is_nan());
    let mut out = Vec::new();
    // BF16 0x3F80 = 1.0, 0x4049 = 3.140625, 0xC2F7 = -123.5.
    Dtype::BF16.to_f64(&[0x80, 0x3F, 0x49, 0x40, 0xF7, 0xC2], &mut out);
    assert_eq!(out, [1.0, 3.140625, -123.5]);
}

#[test]
fn calendar_helpers_agree_with_known_dates() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(hours_from_iso8601("2020-01-01T00:00:00Z"), Some(438_288.0));
    assert_eq!(civil_from_days(11_017), (2000, 3, 1));
    assert_eq!(civil_from_days(-1), (1969, 12, 31));
    assert_eq!(month_of_hours(438_288.0 + 24.0 * 31.0), 2);
    assert_eq!(hours_from_iso8601("2020-13-01T00:00:00Z"), None);
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/exported/standin.safetensors")
}

#[test]
fn the_exported_fixture_reads_and_its_derived_increments_match_the_recorded_ones() {
    let recording = Recording::open(&fixture()).unwrap();
    assert_eq!(recording.samples(), 16);
    let processor = recording.processor();
    assert_eq!(
        (
            processor.nodes(),
            processor.latent,
            processor.layers.clone()
        ),
        (42, Some(8), vec![0, 1, 2])
    );
    assert!(recording.inputs().is_some_and(|i| i.width == 4));
    assert_eq!(recording.sample_hours().unwrap()[0], 438_288.0);
    for layer in 0..3 {
        let stored = recording
            .read(&recording.increment("processor", layer).unwrap())
            .unwrap();
        let next = if layer < 2 {
            recording.state("processor", layer + 1).unwrap()
        } else {
            recording.source("processor.2.resid_post").unwrap()
        };
        let x = recording
            .read(&recording.state("processor", layer).unwrap())
            .unwrap();
        let derived: Vec<f64> = recording
            .read(&next)
            .unwrap()
            .iter()
            .zip(&x)
            .map(|(a, b)| a - b)
            .collect();
        for (a, b) in stored.iter().zip(&derived) {
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                "layer {layer}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn a_recording_folder_reads_like_a_plain_recording() {
    use crate::record::{ProbeRecorder, RecordingMeta, write_meta};
    use burn::prelude::*;
    use weatherlens_models::hooks::{HookPoint, Observer};
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let points = vec![
        HookPoint::ResidPre(0),
        HookPoint::Delta(0),
        HookPoint::ResidPost(0),
    ];
    let recorder =
        ProbeRecorder::create(dir.path(), points.clone(), &[0, 1], 1, 2, &device).unwrap();
    let x = Tensor::<3>::from_data(
        TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2, 1]),
        &device,
    );
    recorder.observe(HookPoint::ResidPre(0), &x);
    recorder.observe(HookPoint::Delta(0), &(x.clone() * 0.5));
    recorder.observe(HookPoint::ResidPost(0), &(x * 1.5));
    recorder.end_batch(2);
    let recording_id = recorder.recording_id().to_string();
    recorder.finish().unwrap();
    let meta = RecordingMeta {
        recording_id,
        model: "m".into(),
        checkpoint: "c".into(),
        hooks: points.iter().map(|p| p.to_string()).collect(),
        layers: vec![0],
        sample_times: vec!["2000-01-01T00:00:00Z".into(), "2000-01-01T06:00:00Z".into()],
        node_indices: vec![0, 1],
        node_lat: vec![90.0, 26.57],
        node_lon: vec![0.0, 0.0],
        latent_size: 1,
        mesh_level: 0,
        inputs: None,
    };
    write_meta(dir.path(), &meta).unwrap();
    let recording = Recording::open(dir.path()).unwrap();
    assert_eq!(recording.form(), Form::Folder);
    assert_eq!(recording.sample_hours(), Some(&[262_968.0, 262_974.0][..]));
    assert_eq!(
        recording.processor().mesh.as_ref().map(|m| m.level),
        Some(0)
    );
    let v = recording.increment("processor", 0).unwrap();
    assert!(v.is_stored());
    assert_eq!(recording.read(&v).unwrap(), [0.5, 1.0, 1.5, 2.0]);
    // probes.json that disagrees with the tensors is named.
    let mut short = meta.clone();
    short.sample_times.pop();
    write_meta(dir.path(), &short).unwrap();
    let err = Recording::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("probes.json") && err.contains("1 sample times") && err.contains("[2, 2, 1]"),
        "{err}"
    );
}
