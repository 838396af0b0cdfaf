//! [`Decoding`]: how a variable's stored numbers become physical values, the same for every format.
//!
//! `physical = raw × scale_factor + add_offset` (CF packing), except raw values that mean "no data":
//!
//! * `_FillValue` (the variable's fill value);
//! * `missing_value` (one or several values);
//! * without a `_FillValue` attribute, netCDF's default fill value for the type (`NC_FILL_*`): what a netCDF
//!   file holds where nothing was written, e.g. records of an unlimited dimension never written to a variable;
//! * NaN, and infinities.
//!
//! Missing values are compared with raw values rounded to the variable's own precision, so that a float32
//! `_FillValue = 1e20` matches what is stored.

use super::error::DatasetError;
use super::source::{AttrValue, GriddedSource, ValueType, VariableInfo};

/// Unpacking and missing-value rules of one variable.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decoding {
    pub scale_factor: f64,
    pub add_offset: f64,
    /// Raw values meaning "no data" and what each is called in messages.
    pub missing: Vec<(f64, &'static str)>,
}

impl Decoding {
    /// The rules of `variable` of `source` from its attributes.
    pub fn of(source: &dyn GriddedSource, variable: &VariableInfo) -> Result<Self, DatasetError> {
        let bad = |attribute: &str, detail: &str| DatasetError::BadAttribute {
            path: source.path().to_path_buf(),
            variable: variable.name.clone(),
            attribute: attribute.to_string(),
            detail: detail.to_string(),
        };
        let numbers = |name: &str| -> Result<Option<&[f64]>, DatasetError> {
            match variable.attribute(name) {
                None => Ok(None),
                Some(AttrValue::Numbers(values)) => Ok(Some(values)),
                Some(AttrValue::Text(_)) => Err(bad(name, "expected a number")),
            }
        };
        let scalar = |name: &str| -> Result<Option<f64>, DatasetError> {
            match numbers(name)? {
                None => Ok(None),
                Some([first, ..]) => Ok(Some(*first)),
                Some([]) => Err(bad(name, "has no value")),
            }
        };
        let own_precision = |v: f64| {
            if variable.value_type == ValueType::F32 {
                f64::from(v as f32)
            } else {
                v
            }
        };
        let mut missing = Vec::new();
        match numbers("_FillValue")? {
            Some(values) => {
                missing.extend(values.iter().map(|&v| (own_precision(v), "fill value")));
            }
            None if source.format().uses_netcdf_default_fill() => {
                if let Some(fill) = variable.value_type.netcdf_default_fill() {
                    missing.push((own_precision(fill), "netCDF default fill value"));
                }
            }
            None => {}
        }
        for &value in numbers("missing_value")?.unwrap_or_default() {
            missing.push((own_precision(value), "missing_value"));
        }
        Ok(Self {
            scale_factor: scalar("scale_factor")?.unwrap_or(1.0),
            add_offset: scalar("add_offset")?.unwrap_or(0.0),
            missing,
        })
    }

    /// What is wrong with a raw value, or `None` when it is a usable number.
    pub fn classify(&self, raw: f64) -> Option<&'static str> {
        if let Some((_, kind)) = self
            .missing
            .iter()
            .find(|(m, _)| *m == raw || (m.is_nan() && raw.is_nan()))
        {
            return Some(kind);
        }
        if raw.is_nan() {
            Some("NaN")
        } else if raw.is_infinite() {
            Some("infinity")
        } else {
            None
        }
    }

    /// The physical value of a raw value.
    pub fn unpack(&self, raw: f64) -> f64 {
        raw * self.scale_factor + self.add_offset
    }

    /// What is wrong with a raw value once decoded to the f32 the readers keep, or `None` when usable.
    pub fn problem(&self, raw: f64) -> Option<&'static str> {
        self.classify(raw).or_else(|| {
            let single = self.unpack(raw) as f32;
            single.is_infinite().then_some("value beyond the f32 range")
        })
    }
}
