//! The few HDF5 C calls that `hdf5-metno` 0.15 does not offer in the form NetCDF-4 needs.
//!
//! * Hyperslab reads and writes into flat `Vec<T>` buffers: `hdf5-metno` returns slices as `ndarray` arrays whose
//!   dimensionality type must be named, and this crate does not depend on `ndarray`.
//! * Fixed-length text attributes padded `H5T_STR_NULLTERM`: `hdf5-metno` pads fixed strings `NULLPAD`, but the
//!   Dimension Scale specification (and `H5DSis_scale`, which netCDF-C calls) requires `CLASS` to be a
//!   null-terminated fixed string, and netCDF-C writes its text attributes that way.
//!
//! `hdf5-metno` does not re-export `hdf5-sys`, so the five functions are declared here; the library is already
//! linked by `hdf5-metno-sys`. Their prototypes are those of `H5Apublic.h`, `H5Dpublic.h` and `H5Tpublic.h` in
//! HDF5 >= 1.10 (`hid_t` is 64-bit there; `Object::id()` returning `i64` makes the compiler check that).
//! Every call is made under `hdf5::sync::sync`, the global lock `hdf5-metno` uses for all library calls.

use std::ffi::{c_int, c_void};

use hdf5::types::TypeDescriptor;
use hdf5::{Attribute, Dataspace, Datatype, H5Type, Hyperslab, Location, SliceOrIndex};

type HidT = i64;
type HerrT = c_int;

/// `H5P_DEFAULT` and `H5S_ALL` are both 0 in HDF5 >= 1.10.
const H5P_DEFAULT: HidT = 0;
/// `H5T_STR_NULLTERM` in `H5T_str_t`.
const H5T_STR_NULLTERM: c_int = 0;

unsafe extern "C" {
    fn H5Dread(
        dset_id: HidT,
        mem_type_id: HidT,
        mem_space_id: HidT,
        file_space_id: HidT,
        plist_id: HidT,
        buf: *mut c_void,
    ) -> HerrT;
    fn H5Dwrite(
        dset_id: HidT,
        mem_type_id: HidT,
        mem_space_id: HidT,
        file_space_id: HidT,
        plist_id: HidT,
        buf: *const c_void,
    ) -> HerrT;
    fn H5Aread(attr_id: HidT, type_id: HidT, buf: *mut c_void) -> HerrT;
    fn H5Awrite(attr_id: HidT, type_id: HidT, buf: *const c_void) -> HerrT;
    fn H5Tset_strpad(type_id: HidT, strpad: c_int) -> HerrT;
}

/// The file dataspace of `dataset` with the box `start .. start + count` selected.
fn select_box(
    dataset: &hdf5::Dataset,
    start: &[usize],
    count: &[usize],
) -> hdf5::Result<Dataspace> {
    let slices: Vec<SliceOrIndex> = start
        .iter()
        .zip(count)
        .map(|(&s, &c)| SliceOrIndex::from(s..s + c))
        .collect();
    dataset.space()?.select(Hyperslab::from(slices))
}

/// Reads the box `start .. start + count` of `dataset`, converted by HDF5 to `T`.
///
/// Returns [count[0], count[1], ..] row-major.
pub(crate) fn read_box<T: H5Type + Copy + Default>(
    dataset: &hdf5::Dataset,
    start: &[usize],
    count: &[usize],
) -> hdf5::Result<Vec<T>> {
    let len: usize = count.iter().product();
    let mut out = vec![T::default(); len];
    if len == 0 {
        return Ok(out);
    }
    let file_space = if count.is_empty() {
        dataset.space()?
    } else {
        select_box(dataset, start, count)?
    };
    let memory_space = Dataspace::try_new(len)?;
    let memory_type = Datatype::from_type::<T>()?;
    hdf5::sync::sync(|| {
        // SAFETY: `out` holds exactly `len` elements of `T`, the memory dataspace has `len` elements and the memory
        // type describes `T`; the ids are alive for the duration of the call.
        let status = unsafe {
            H5Dread(
                dataset.id(),
                memory_type.id(),
                memory_space.id(),
                file_space.id(),
                H5P_DEFAULT,
                out.as_mut_ptr().cast(),
            )
        };
        hdf5::h5check(status)
    })?;
    Ok(out)
}

/// Writes `values` into the box `start .. start + count` of `dataset`.
///
/// values: [count[0], count[1], ..] row-major.
pub(crate) fn write_box<T: H5Type>(
    dataset: &hdf5::Dataset,
    start: &[usize],
    count: &[usize],
    values: &[T],
) -> hdf5::Result<()> {
    let len: usize = count.iter().product();
    if values.len() != len {
        return Err(hdf5::Error::from(format!(
            "{} values for a box of {len}",
            values.len()
        )));
    }
    if len == 0 {
        return Ok(());
    }
    let file_space = select_box(dataset, start, count)?;
    let memory_space = Dataspace::try_new(len)?;
    let memory_type = Datatype::from_type::<T>()?;
    hdf5::sync::sync(|| {
        // SAFETY: `values` holds `len` elements of `T` matching the memory dataspace and type.
        let status = unsafe {
            H5Dwrite(
                dataset.id(),
                memory_type.id(),
                memory_space.id(),
                file_space.id(),
                H5P_DEFAULT,
                values.as_ptr().cast(),
            )
        };
        hdf5::h5check(status)
    })?;
    Ok(())
}

/// Creates a scalar fixed-length ASCII attribute padded `H5T_STR_NULLTERM`.
///
/// With `with_terminator` the stored size is `len + 1` and includes the NUL, as the Dimension Scale API stores
/// `CLASS` and `NAME`; without it the size is `len`, as netCDF-C stores text (`NC_CHAR`) attributes.
pub(crate) fn write_text_attr(
    location: &Location,
    name: &str,
    value: &str,
    with_terminator: bool,
) -> hdf5::Result<()> {
    let mut bytes = value.as_bytes().to_vec();
    if with_terminator || bytes.is_empty() {
        bytes.push(0);
    }
    let datatype = Datatype::from_descriptor(&TypeDescriptor::FixedAscii(bytes.len()))?;
    hdf5::sync::sync(|| {
        // SAFETY: `datatype` is a transient copy made by `from_descriptor`, so it may be modified.
        hdf5::h5check(unsafe { H5Tset_strpad(datatype.id(), H5T_STR_NULLTERM) })
    })?;
    let attribute = location
        .new_attr_builder()
        .empty_as(&datatype)
        .create(name)?;
    hdf5::sync::sync(|| {
        // SAFETY: a scalar attribute of a fixed string type of `bytes.len()` bytes reads exactly that many bytes.
        hdf5::h5check(unsafe { H5Awrite(attribute.id(), datatype.id(), bytes.as_ptr().cast()) })
    })?;
    Ok(())
}

/// Reads a fixed-length string attribute of `size` bytes per element, trimming NUL and space padding.
pub(crate) fn read_fixed_text_attr(
    attribute: &Attribute,
    size: usize,
) -> hdf5::Result<Vec<String>> {
    let count = attribute.space()?.size();
    let datatype = attribute.dtype()?;
    let mut bytes = vec![0_u8; size * count];
    if size == 0 || bytes.is_empty() {
        return Ok(Vec::new());
    }
    hdf5::sync::sync(|| {
        // SAFETY: the attribute's own type has `size` bytes per element and `bytes` has room for `count` of them.
        hdf5::h5check(unsafe { H5Aread(attribute.id(), datatype.id(), bytes.as_mut_ptr().cast()) })
    })?;
    Ok(bytes
        .chunks(size)
        .map(|chunk| {
            let end = chunk.iter().position(|&b| b == 0).unwrap_or(chunk.len());
            String::from_utf8_lossy(&chunk[..end])
                .trim_end()
                .to_string()
        })
        .collect())
}
