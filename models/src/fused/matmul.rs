//! Dense matrix products through the `gemm` crate (the one burn's CPU backend uses) on strided views, so a
//! transpose is a change of strides rather than a copy, and a fresh output is never zeroed first.

use std::mem::MaybeUninit;

/// Element types the products run on.
pub trait Element: Copy + Send + Sync + 'static {
    const ZERO: Self;
    const ONE: Self;
}

impl Element for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

impl Element for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

/// A read-only strided matrix: element (r, c) is data[r·row_stride + c·column_stride].
#[derive(Debug, Clone, Copy)]
pub struct View<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub columns: usize,
    pub row_stride: usize,
    pub column_stride: usize,
}

impl<'a, T> View<'a, T> {
    /// data: [rows, columns] row-major.
    pub fn row_major(data: &'a [T], rows: usize, columns: usize) -> Self {
        Self {
            data,
            rows,
            columns,
            row_stride: columns,
            column_stride: 1,
        }
    }

    pub fn transposed(self) -> Self {
        Self {
            data: self.data,
            rows: self.columns,
            columns: self.rows,
            row_stride: self.column_stride,
            column_stride: self.row_stride,
        }
    }

    /// Rows start..start + rows.
    pub fn row_range(self, start: usize, rows: usize) -> Self {
        Self {
            data: &self.data[start * self.row_stride..],
            rows,
            ..self
        }
    }

    /// Whether every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.columns == 0
            || (self.rows - 1) * self.row_stride + (self.columns - 1) * self.column_stride
                < self.data.len()
    }
}

/// out = lhs · rhs, or out += lhs · rhs with `accumulate`; out: [lhs.rows, rhs.columns] row-major.
/// `parallel` spreads one product over the rayon pool.
pub fn multiply<T: Element>(
    lhs: View<T>,
    rhs: View<T>,
    out: &mut [T],
    accumulate: bool,
    parallel: bool,
) {
    check(&lhs, &rhs, out.len());
    // SAFETY: `check` keeps every element gemm reads or writes inside its slice; `out` is borrowed mutably.
    unsafe { gemm_into(lhs, rhs, out.as_mut_ptr(), accumulate, parallel) }
}

/// lhs · rhs as a new row-major [lhs.rows, rhs.columns] vector.
pub fn product<T: Element>(lhs: View<T>, rhs: View<T>, parallel: bool) -> Vec<T> {
    let len = lhs.rows * rhs.columns;
    let mut out: Vec<T> = Vec::with_capacity(len);
    let spare: &mut [MaybeUninit<T>] = &mut out.spare_capacity_mut()[..len];
    check(&lhs, &rhs, spare.len());
    // SAFETY: as in `multiply`; with accumulate = false gemm only writes `out` (dst := lhs · rhs, read_dst
    // false), every one of its len elements, so they are initialised afterwards.
    unsafe {
        gemm_into(lhs, rhs, spare.as_mut_ptr().cast::<T>(), false, parallel);
        out.set_len(len);
    }
    out
}

fn check<T>(lhs: &View<T>, rhs: &View<T>, out_len: usize) {
    assert!(
        lhs.columns == rhs.rows,
        "inner dimensions differ: {} vs {}",
        lhs.columns,
        rhs.rows
    );
    assert!(
        out_len == lhs.rows * rhs.columns,
        "output holds {out_len} values, not {}",
        lhs.rows * rhs.columns
    );
    assert!(
        lhs.in_bounds() && rhs.in_bounds(),
        "a strided view reaches past its data"
    );
}

/// # Safety
/// `out` must be valid for writes (and reads, with `accumulate`) of lhs.rows · rhs.columns elements, and the
/// views must be in bounds (see `check`).
unsafe fn gemm_into<T: Element>(
    lhs: View<T>,
    rhs: View<T>,
    out: *mut T,
    accumulate: bool,
    parallel: bool,
) {
    if lhs.rows == 0 || rhs.columns == 0 {
        return;
    }
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // dst := alpha·dst + beta·lhs·rhs, dst read only when accumulating.
    let alpha = if accumulate { T::ONE } else { T::ZERO };
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm::gemm(
            lhs.rows,
            rhs.columns,
            lhs.columns,
            out,
            1,
            rhs.columns as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.column_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.column_stride as isize,
            rhs.row_stride as isize,
            alpha,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_by_hand_with_transposes_and_accumulation() {
        // a = [[1, 2, 3], [4, 5, 6]], b = [[1, 0], [0, 1], [1, 1]]
        let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0];
        let ab = product(View::row_major(&a, 2, 3), View::row_major(&b, 3, 2), true);
        assert_eq!(ab, [4.0, 5.0, 10.0, 11.0]);
        // aᵀ·a = [[17, 22, 27], [22, 29, 36], [27, 36, 45]], added to ones
        let mut out = [1.0f32; 9];
        let view = View::row_major(&a, 2, 3);
        multiply(view.transposed(), view, &mut out, true, false);
        assert_eq!(out, [18.0, 23.0, 28.0, 23.0, 30.0, 37.0, 28.0, 37.0, 46.0]);
    }
}
