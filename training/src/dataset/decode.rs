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
    #[inline]
    pub fn unpack(&self, raw: f64) -> f64 {
        raw * self.scale_factor + self.add_offset
    }

    /// The physical value of a raw value, or what is wrong with it (missing by one of the rules above, or
    /// beyond the range of the f32 the readers keep). One pass, for the read loop.
    #[inline]
    pub fn decode(&self, raw: f64) -> Result<f64, &'static str> {
        for &(missing, kind) in &self.missing {
            if missing == raw || (missing.is_nan() && raw.is_nan()) {
                return Err(kind);
            }
        }
        if !raw.is_finite() {
            return Err(if raw.is_nan() { "NaN" } else { "infinity" });
        }
        let physical = self.unpack(raw);
        if (physical as f32).is_infinite() {
            return Err("value beyond the f32 range");
        }
        Ok(physical)
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::dataset::source::{Dimension, SourceFormat};

    /// A source with no data, to give `Decoding::of` a path and a format.
    #[derive(Debug)]
    struct Empty(SourceFormat, PathBuf);

    impl GriddedSource for Empty {
        fn path(&self) -> &Path {
            &self.1
        }
        fn format(&self) -> SourceFormat {
            self.0
        }
        fn dimensions(&self) -> &[Dimension] {
            &[]
        }
        fn variables(&self) -> &[VariableInfo] {
            &[]
        }
        fn read(&self, _: &str, _: &[usize], _: &[usize]) -> Result<Vec<f64>, DatasetError> {
            Ok(Vec::new())
        }
    }

    fn variable(value_type: ValueType, attributes: &[(&str, AttrValue)]) -> VariableInfo {
        VariableInfo {
            name: "x".into(),
            dims: vec!["time".into()],
            shape: vec![1],
            value_type,
            attributes: attributes
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect(),
        }
    }

    fn numbers(values: &[f64]) -> AttrValue {
        AttrValue::Numbers(values.to_vec())
    }

    #[test]
    fn missing_values_follow_the_netcdf_rules() {
        let netcdf = Empty(SourceFormat::Netcdf4, "a.nc".into());
        let zarr = Empty(SourceFormat::ZarrV2, "a.zarr".into());
        // No _FillValue: netCDF's default fill is missing (NC_FILL_FLOAT read back as f64), in netCDF only.
        let plain = variable(ValueType::F32, &[]);
        let decoding = Decoding::of(&netcdf, &plain).unwrap();
        assert_eq!(
            decoding.decode(9.969_209_968_386_869e36),
            Err("netCDF default fill value")
        );
        assert_eq!(decoding.decode(1.5), Ok(1.5));
        assert_eq!(
            Decoding::of(&zarr, &plain)
                .unwrap()
                .decode(9.969_209_968_386_869e36)
                .ok(),
            Some(9.969_209_968_386_869e36)
        );
        // A float32 _FillValue of 1e20 matches the stored float32 1.00000002e20; NaN and infinities are missing.
        let filled = variable(ValueType::F32, &[("_FillValue", numbers(&[1e20]))]);
        let decoding = Decoding::of(&netcdf, &filled).unwrap();
        assert_eq!(decoding.decode(f64::from(1e20_f32)), Err("fill value"));
        assert_eq!(decoding.decode(f64::NAN), Err("NaN"));
        assert_eq!(decoding.decode(f64::INFINITY), Err("infinity"));
        // Packed int16 with missing_value only: -999 is missing, and so is the default fill -32767.
        let packed = variable(
            ValueType::I16,
            &[
                ("scale_factor", numbers(&[0.5])),
                ("add_offset", numbers(&[100.0])),
                ("missing_value", numbers(&[-999.0])),
            ],
        );
        let decoding = Decoding::of(&netcdf, &packed).unwrap();
        assert_eq!(decoding.decode(10.0), Ok(105.0));
        assert_eq!(decoding.decode(-999.0), Err("missing_value"));
        assert_eq!(decoding.decode(-32767.0), Err("netCDF default fill value"));
        // A NaN _FillValue; a value that unpacks beyond the f32 range.
        let nan_fill = variable(
            ValueType::F64,
            &[
                ("_FillValue", numbers(&[f64::NAN])),
                ("scale_factor", numbers(&[1e300])),
            ],
        );
        let decoding = Decoding::of(&netcdf, &nan_fill).unwrap();
        assert_eq!(decoding.decode(f64::NAN), Err("fill value"));
        assert_eq!(decoding.decode(1.0), Err("value beyond the f32 range"));
        // A text _FillValue is a bad attribute naming the variable.
        let text = variable(
            ValueType::F32,
            &[("_FillValue", AttrValue::Text("none".into()))],
        );
        let error = Decoding::of(&netcdf, &text).unwrap_err().to_string();
        assert!(
            error.contains("_FillValue") && error.contains("`x`"),
            "{error}"
        );
    }
}
