//! Column standardization shared by prediction (traits) and personas (facet
//! scores): missing values (NaN) take the column's mean, every column gets
//! mean 0 and sd 1, and a constant column carries no signal (all 0).

use ndarray::{Array2, Axis};

/// Below this a column's sd counts as zero.
const CONSTANT: f64 = 1e-12;

/// Standardizes `x` in place; returns each column's mean and the sd it was
/// divided by (1 for a constant column), to apply the same scaling elsewhere.
pub(crate) fn standardize(x: &mut Array2<f64>) -> Vec<(f64, f64)> {
    x.axis_iter_mut(Axis(1))
        .map(|mut column| {
            let present: Vec<f64> = column.iter().copied().filter(|v| !v.is_nan()).collect();
            let n = present.len().max(1) as f64;
            let mean = present.iter().sum::<f64>() / n;
            let sd = (present.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
            let constant = sd < CONSTANT;
            column.mapv_inplace(|v| {
                if v.is_nan() || constant {
                    0.0
                } else {
                    (v - mean) / sd
                }
            });
            (mean, if constant { 1.0 } else { sd })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_values_take_the_mean_and_constant_columns_vanish() {
        let mut x =
            Array2::from_shape_vec((3, 2), vec![1.0, 5.0, f64::NAN, 5.0, 3.0, 5.0]).unwrap();
        let scaling = standardize(&mut x);
        assert_eq!(x[[1, 0]], 0.0);
        assert!((x[[0, 0]] + 1.0).abs() < 1e-12 && (x[[2, 0]] - 1.0).abs() < 1e-12);
        assert!(x.column(1).iter().all(|v| *v == 0.0));
        assert_eq!(scaling, vec![(2.0, 1.0), (5.0, 1.0)]);
    }
}
