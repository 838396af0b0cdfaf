//! The NetCDF-4 files WeatherLens writes: the ERA5 (CDS) layout of a [`super::Dataset`] ([`era5`]) and
//! forecasts in GraphCast's example-batch layout ([`forecast`]).
//!
//! NetCDF-4 compatibility: each coordinate variable is an HDF5 dimension scale and each variable is attached to
//! its scales, exactly as the HDF5 Dimension Scale API (`H5DSset_scale` / `H5DSattach_scale`, HDF5 high-level
//! library) would store it: `CLASS = "DIMENSION_SCALE"` and `NAME` (null-terminated fixed strings) on the scale,
//! `DIMENSION_LIST` (one variable-length list of object references per axis) on the variable, and
//! `REFERENCE_LIST` (compound {dataset: object reference, dimension: int}) on the scale. A dimension without a
//! coordinate variable is a scale whose `NAME` says so, as netCDF-C writes it. `hdf5-metno` does not bind the
//! high-level library, so these attributes are written directly; links and attributes track creation order as
//! netCDF-C expects for files it may modify. `_NCProperties` is not written (it is optional).

mod era5;
mod forecast;

pub use era5::{Era5Writer, write_era5};
pub use forecast::{ForecastFile, ForecastVariable, write_forecast};

use hdf5::ObjectReference1;
use hdf5::plist::dataset_create::AttrCreationOrder;
use hdf5::types::VarLenArray;

use super::hdf5_raw;

/// One row of a dimension scale's `REFERENCE_LIST`: a variable attached to the scale and the axis it uses.
#[derive(hdf5::H5Type, Clone, Copy)]
#[repr(C)]
struct ReferenceListEntry {
    dataset: ObjectReference1,
    dimension: i32,
}

/// A text attribute as netCDF-C stores one.
fn text(location: &hdf5::Location, name: &str, value: &str) -> hdf5::Result<()> {
    hdf5_raw::write_text_attr(location, name, value, false)
}

/// `Conventions`, `source` and `history` of every file WeatherLens writes.
fn global_attributes(file: &hdf5::File) -> hdf5::Result<()> {
    text(file, "Conventions", "CF-1.8")?;
    text(file, "source", "WeatherLens")?;
    text(
        file,
        "history",
        &format!(
            "written by weatherlens-training {}",
            env!("CARGO_PKG_VERSION")
        ),
    )
}

/// Creates a one-dimensional coordinate variable and makes it a dimension scale (`H5DSset_scale`).
fn coordinate<T: hdf5::H5Type>(
    file: &hdf5::File,
    name: &str,
    values: &[T],
    attributes: &[(&str, &str)],
) -> hdf5::Result<hdf5::Dataset> {
    let dataset = file
        .new_dataset::<T>()
        .attr_creation_order(AttrCreationOrder::Indexed)
        .shape(values.len())
        .create(name)?;
    hdf5_raw::write_box(&dataset, &[0], &[values.len()], values)?;
    hdf5_raw::write_text_attr(&dataset, "CLASS", "DIMENSION_SCALE", true)?;
    hdf5_raw::write_text_attr(&dataset, "NAME", name, true)?;
    for (key, value) in attributes {
        text(&dataset, key, value)?;
    }
    Ok(dataset)
}

/// netCDF-C's `NAME` of a dimension without a coordinate variable (`DIM_WITHOUT_VARIABLE` followed by the
/// length as `%10d`, libhdf5/nc4hdf.c).
const DIMENSION_WITHOUT_VARIABLE: &str = "This is a netCDF dimension but not a netCDF variable.";

/// Creates a dimension of `len` that has no coordinate variable (GraphCast's `batch`): an unwritten f32 scale
/// whose `NAME` tells netCDF-C not to show it as a variable.
fn dimension_without_variable(
    file: &hdf5::File,
    name: &str,
    len: usize,
) -> hdf5::Result<hdf5::Dataset> {
    let dataset = file
        .new_dataset::<f32>()
        .attr_creation_order(AttrCreationOrder::Indexed)
        .shape(len)
        .create(name)?;
    hdf5_raw::write_text_attr(&dataset, "CLASS", "DIMENSION_SCALE", true)?;
    hdf5_raw::write_text_attr(
        &dataset,
        "NAME",
        &format!("{DIMENSION_WITHOUT_VARIABLE}{len:10}"),
        true,
    )?;
    Ok(dataset)
}

/// The scales of a file and the variables attached to them (`H5DSattach_scale`): each variable's
/// `DIMENSION_LIST` is written when it is attached, each scale's `REFERENCE_LIST` by [`Self::finish`].
#[derive(Default)]
struct Attachments {
    /// Per scale (by name): the scale and the (variable, axis) pairs attached to it.
    scales: Vec<(hdf5::Dataset, Vec<ReferenceListEntry>)>,
}

impl Attachments {
    /// Attaches `scales[axis]` to each axis of `variable`.
    fn attach(
        &mut self,
        file: &hdf5::File,
        variable: &hdf5::Dataset,
        scales: &[&hdf5::Dataset],
    ) -> hdf5::Result<()> {
        let mut dimension_list = Vec::with_capacity(scales.len());
        let variable_reference = file.reference::<ObjectReference1>(&variable.name())?;
        for (axis, scale) in scales.iter().enumerate() {
            let scale_reference = file.reference::<ObjectReference1>(&scale.name())?;
            dimension_list.push(VarLenArray::from_slice(&[scale_reference]));
            let entry = ReferenceListEntry {
                dataset: variable_reference,
                dimension: axis as i32,
            };
            match self
                .scales
                .iter_mut()
                .find(|(s, _)| s.name() == scale.name())
            {
                Some((_, entries)) => entries.push(entry),
                None => self.scales.push(((*scale).clone(), vec![entry])),
            }
        }
        variable
            .new_attr::<VarLenArray<ObjectReference1>>()
            .shape(dimension_list.len())
            .create("DIMENSION_LIST")?
            .write_raw(&dimension_list)?;
        Ok(())
    }

    /// Writes every scale's `REFERENCE_LIST`.
    fn finish(self) -> hdf5::Result<()> {
        for (scale, entries) in self.scales {
            scale
                .new_attr::<ReferenceListEntry>()
                .shape(entries.len())
                .create("REFERENCE_LIST")?
                .write_raw(&entries)?;
        }
        Ok(())
    }
}

/// Runs a tool when it is installed; `None` (and a note on stderr) when it is not.
#[cfg(test)]
fn run_if_installed(program: &str, args: &[&str]) -> Option<std::process::Output> {
    match std::process::Command::new(program).args(args).output() {
        Ok(output) => Some(output),
        Err(e) => {
            eprintln!("skipping the {program} check: {e}");
            None
        }
    }
}
