//! The safetensors container of a recording: the header read and checked against rule 1 of docs/recording.md
//! (entries well formed, byte spans tiling the data section), and tensor values read from their place in the
//! file, a run of rows at a time, converted to f64 on the way (F32, F64, F16, BF16, I64).
//!
//! Nothing here reads a whole file: the header is read alone, and values are read with positioned reads of the
//! rows asked for, so a reader of a 10⁶-row recording holds only the rows it uses.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use weatherlens_models::files::FileError;

use super::RecordingError;

/// safetensors refuses headers larger than this (and so does the format's reference implementation).
const MAX_HEADER_BYTES: u64 = 100_000_000;
/// Bytes read per positioned read when a run of rows is long.
const READ_CHUNK_BYTES: usize = 16 << 20;

/// An element type a safetensors header may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F64,
    F32,
    F16,
    BF16,
    I64,
    /// Any other safetensors dtype (valid in the container, refused by the recording rules).
    Other(&'static str, usize),
}

/// Every dtype name safetensors writes, with its element size in bytes.
const DTYPES: [(&str, usize); 15] = [
    ("BOOL", 1),
    ("U8", 1),
    ("I8", 1),
    ("F8_E5M2", 1),
    ("F8_E4M3", 1),
    ("I16", 2),
    ("U16", 2),
    ("F16", 2),
    ("BF16", 2),
    ("I32", 4),
    ("U32", 4),
    ("F32", 4),
    ("I64", 8),
    ("U64", 8),
    ("F64", 8),
];

impl Dtype {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "F64" => Dtype::F64,
            "F32" => Dtype::F32,
            "F16" => Dtype::F16,
            "BF16" => Dtype::BF16,
            "I64" => Dtype::I64,
            other => {
                let &(known, size) = DTYPES.iter().find(|(known, _)| *known == other)?;
                Dtype::Other(known, size)
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Dtype::F64 => "F64",
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::I64 => "I64",
            Dtype::Other(name, _) => name,
        }
    }

    pub fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            Dtype::Other(_, size) => size,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Dtype::F64 | Dtype::F32 | Dtype::F16 | Dtype::BF16)
    }

    /// Little-endian bytes of whole elements -> f64 values (I64 exactly while |v| < 2⁵³).
    pub fn to_f64(self, bytes: &[u8], out: &mut Vec<f64>) {
        let size = self.size();
        out.reserve(bytes.len() / size);
        let chunks = bytes.chunks_exact(size);
        match self {
            Dtype::F64 => {
                out.extend(chunks.map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8]))))
            }
            Dtype::F32 => out.extend(
                chunks.map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap_or([0; 4])))),
            ),
            Dtype::F16 => out.extend(chunks.map(|b| f16_to_f64(u16::from_le_bytes([b[0], b[1]])))),
            Dtype::BF16 => out.extend(chunks.map(|b| {
                f64::from(f32::from_bits(
                    u32::from(u16::from_le_bytes([b[0], b[1]])) << 16,
                ))
            })),
            Dtype::I64 => out
                .extend(chunks.map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f64)),
            Dtype::Other(..) => out.extend(chunks.map(|_| f64::NAN)),
        }
    }
}

/// IEEE 754 binary16 -> f64, exactly: sign, 5 exponent bits (bias 15), 10 fraction bits; exponent 0 holds the
/// subnormals (fraction · 2⁻²⁴), exponent 31 infinities and NaN.
pub fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f64::from(bits & 0x3ff);
    sign * match exponent {
        0 => fraction * 2f64.powi(-24),
        31 if fraction == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1.0 + fraction / 1024.0) * 2f64.powi(exponent - 15),
    }
}

/// One tensor of the header.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Absolute byte offset of the first element in the file.
    pub start: u64,
}

impl Entry {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A safetensors file's header, checked.
#[derive(Debug, Clone)]
pub struct Container {
    pub path: PathBuf,
    pub entries: BTreeMap<String, Entry>,
    /// `__metadata__` as written (its values are checked by rule 2, not here).
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Container {
    /// Reads and checks the header of `path` (rule 1); values are not read.
    pub fn open(path: &Path) -> Result<Self, RecordingError> {
        let bad = |what: String| {
            RecordingError::invalid(path, format!("not a readable safetensors file ({what})"))
        };
        let file = File::open(path).map_err(FileError::at("reading", path))?;
        let size = file
            .metadata()
            .map_err(FileError::at("reading", path))?
            .len();
        let mut length = [0u8; 8];
        if size < 8 {
            return Err(bad("shorter than the 8-byte header length".into()));
        }
        file.read_exact_at(&mut length, 0)
            .map_err(FileError::at("reading", path))?;
        let header_len = u64::from_le_bytes(length);
        if header_len > MAX_HEADER_BYTES || 8 + header_len > size {
            return Err(bad(format!(
                "header length {header_len} does not fit a {size}-byte file"
            )));
        }
        let mut text = vec![0u8; header_len as usize];
        file.read_exact_at(&mut text, 8)
            .map_err(FileError::at("reading", path))?;
        let header: serde_json::Value = std::str::from_utf8(&text)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(t).map_err(|e| e.to_string()))
            .map_err(|e| bad(format!("header is not JSON: {e}")))?;
        let serde_json::Value::Object(header) = header else {
            return Err(bad("header is not a JSON object".into()));
        };
        let data_start = 8 + header_len;
        let mut entries = BTreeMap::new();
        let mut metadata = None;
        let mut spans = Vec::new();
        for (name, entry) in header {
            if name == "__metadata__" {
                let serde_json::Value::Object(map) = entry else {
                    return Err(bad("__metadata__ is not an object".into()));
                };
                metadata = Some(map);
                continue;
            }
            let fields = entry.as_object().filter(|fields| {
                fields.len() == 3
                    && ["dtype", "shape", "data_offsets"]
                        .iter()
                        .all(|key| fields.contains_key(*key))
            });
            let Some(fields) = fields else {
                return Err(bad(format!(
                    "entry `{name}` needs exactly dtype, shape and data_offsets"
                )));
            };
            let dtype_name = fields["dtype"].as_str().unwrap_or_default();
            let Some(dtype) = Dtype::parse(dtype_name) else {
                return Err(bad(format!(
                    "entry `{name}` has unknown dtype {}",
                    fields["dtype"]
                )));
            };
            let shape: Option<Vec<usize>> = fields["shape"].as_array().and_then(|dims| {
                dims.iter()
                    .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                    .collect()
            });
            let Some(shape) = shape else {
                return Err(bad(format!(
                    "entry `{name}` has a bad shape {}",
                    fields["shape"]
                )));
            };
            let offsets: Option<Vec<u64>> = fields["data_offsets"]
                .as_array()
                .filter(|o| o.len() == 2)
                .and_then(|o| o.iter().map(|v| v.as_u64()).collect());
            let Some([begin, end]) = offsets.and_then(|o| <[u64; 2]>::try_from(o).ok()) else {
                return Err(bad(format!(
                    "entry `{name}` has bad data_offsets {}",
                    fields["data_offsets"]
                )));
            };
            let expected = shape
                .iter()
                .try_fold(dtype.size() as u64, |bytes, &d| bytes.checked_mul(d as u64));
            if end.checked_sub(begin) != expected || expected.is_none() {
                return Err(bad(format!(
                    "entry `{name}` spans {} bytes but {} {} needs {}",
                    end as i128 - begin as i128,
                    dtype.name(),
                    shape_text(&shape),
                    expected.map_or("more than 2^64".to_string(), |e| e.to_string())
                )));
            }
            spans.push((begin, end, name.clone()));
            entries.insert(
                name,
                Entry {
                    dtype,
                    shape,
                    start: data_start + begin,
                },
            );
        }
        spans.sort();
        let mut at = 0;
        for (begin, end, name) in &spans {
            if *begin != at {
                return Err(bad(format!(
                    "entry `{name}` starts at byte {begin} of the data, {at} expected (gap or overlap)"
                )));
            }
            at = *end;
        }
        if at != size - data_start {
            return Err(bad(format!(
                "the tensors cover {at} bytes but the data section has {}",
                size - data_start
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
            entries,
            metadata,
        })
    }

    /// Elements `runs` of tensor `name` as f64, each run (first element, element count) read with positioned
    /// reads; the values of all runs in order.
    pub fn read_runs(
        &self,
        file: &File,
        name: &str,
        runs: &[(usize, usize)],
    ) -> Result<Vec<f64>, RecordingError> {
        let entry = &self.entries[name];
        let size = entry.dtype.size();
        let total: usize = runs.iter().map(|r| r.1).sum();
        let mut out = Vec::with_capacity(total);
        let mut buffer = Vec::new();
        for &(first, count) in runs {
            let mut done = 0;
            while done < count {
                let take = (count - done).min((READ_CHUNK_BYTES / size).max(1));
                buffer.resize(take * size, 0);
                let at = entry.start + ((first + done) * size) as u64;
                file.read_exact_at(&mut buffer, at)
                    .map_err(FileError::at("reading", &self.path))?;
                entry.dtype.to_f64(&buffer, &mut out);
                done += take;
            }
        }
        Ok(out)
    }

    /// The whole of a small tensor (coordinates, times) as f64.
    pub fn read_all(&self, name: &str) -> Result<Vec<f64>, RecordingError> {
        let file = File::open(&self.path).map_err(FileError::at("reading", &self.path))?;
        let count = self.entries[name].elements();
        self.read_runs(&file, name, &[(0, count)])
    }
}

/// `[2, 3, 4]`.
pub fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}
