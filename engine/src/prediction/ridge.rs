//! Ridge regression in closed form, one penalty per target chosen by k-fold
//! cross-validation. Exact (a Cholesky solve of the normal equations, the
//! same as scikit-learn's `Ridge(alpha = n·λ)`), and cheap: features are
//! traits (tens), so the p×p system is tiny whatever the number of players.
//!
//! Objective per target: `1/(2n)‖y − Xw − b‖² + λ/2‖w‖²`, the intercept `b`
//! unpenalized (X and y are centred on the rows fitted).

use ndarray::{Array1, Array2, ArrayView2, Axis};

/// The penalties tried (features are standardized, so one grid fits all).
pub const PENALTIES: [f64; 6] = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0];
pub const FOLDS: usize = 5;

/// Weights (features × targets) and intercepts (targets).
pub struct Fit {
    pub weights: Array2<f64>,
    pub intercepts: Array1<f64>,
}

impl Fit {
    pub fn predict(&self, x: &ArrayView2<f64>) -> Array2<f64> {
        x.dot(&self.weights) + &self.intercepts
    }
}

/// The cross-validated choice per target.
pub struct Selected {
    pub fit: Fit,
    /// The penalty chosen per target (best mean R² over the folds).
    pub penalty: Vec<f64>,
    /// Out-of-fold R² per target at its chosen penalty (pooled over folds).
    pub r2: Vec<f64>,
}

/// Fits every target of `y` on `x` at penalty `lambda`.
pub fn fit(x: &ArrayView2<f64>, y: &ArrayView2<f64>, lambda: f64) -> Fit {
    let n = x.nrows().max(1) as f64;
    let x_mean = x
        .mean_axis(Axis(0))
        .unwrap_or_else(|| Array1::zeros(x.ncols()));
    let y_mean = y
        .mean_axis(Axis(0))
        .unwrap_or_else(|| Array1::zeros(y.ncols()));
    let xc = x - &x_mean;
    let yc = y - &y_mean;
    let mut gram = xc.t().dot(&xc);
    for i in 0..gram.nrows() {
        gram[[i, i]] += n * lambda;
    }
    let weights = solve_spd(gram, xc.t().dot(&yc));
    let intercepts = &y_mean - &x_mean.dot(&weights);
    Fit {
        weights,
        intercepts,
    }
}

/// Solves `a·w = b` for a symmetric positive definite `a` (Cholesky).
pub(crate) fn solve_spd(a: Array2<f64>, b: Array2<f64>) -> Array2<f64> {
    let p = a.nrows();
    let mut l = Array2::<f64>::zeros((p, p));
    for i in 0..p {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[[i, k]] * l[[j, k]]).sum();
            if i == j {
                l[[i, i]] = (a[[i, i]] - s).max(f64::MIN_POSITIVE).sqrt();
            } else {
                l[[i, j]] = (a[[i, j]] - s) / l[[j, j]];
            }
        }
    }
    let mut w = b;
    for mut col in w.columns_mut() {
        // L·z = b, then Lᵀ·w = z.
        for i in 0..p {
            let s: f64 = (0..i).map(|k| l[[i, k]] * col[k]).sum();
            col[i] = (col[i] - s) / l[[i, i]];
        }
        for i in (0..p).rev() {
            let s: f64 = (i + 1..p).map(|k| l[[k, i]] * col[k]).sum();
            col[i] = (col[i] - s) / l[[i, i]];
        }
    }
    w
}

/// 1 − SS_res/SS_tot (0 when the target is constant).
fn r2(actual: impl Iterator<Item = f64> + Clone, predicted: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = actual
        .clone()
        .fold((0.0, 0.0), |(s, n), v| (s + v, n + 1.0));
    let mean = sum / f64::max(n, 1.0);
    let total: f64 = actual.clone().map(|v| (v - mean).powi(2)).sum();
    let residual: f64 = actual.zip(predicted).map(|(a, p)| (a - p).powi(2)).sum();
    if total > 0.0 {
        1.0 - residual / total
    } else {
        0.0
    }
}

/// k-fold cross-validation over [`PENALTIES`] (row i is in fold i mod k, so
/// rows in a stable order give stable folds), then one fit per target on
/// every row at the penalty it chose.
pub fn cross_validated(x: &ArrayView2<f64>, y: &ArrayView2<f64>) -> Selected {
    let (n, targets) = (x.nrows(), y.ncols());
    let folds = FOLDS.min(n).max(1);
    let mut mean_r2 = Array2::<f64>::zeros((PENALTIES.len(), targets));
    let mut pooled = Array2::<f64>::zeros((PENALTIES.len(), targets));
    for (g, lambda) in PENALTIES.iter().enumerate() {
        let mut out_of_fold = Array2::<f64>::zeros((n, targets));
        for fold in 0..folds {
            let test: Vec<usize> = (0..n).filter(|i| i % folds == fold).collect();
            let train: Vec<usize> = (0..n).filter(|i| i % folds != fold).collect();
            let model = fit(
                &x.select(Axis(0), &train).view(),
                &y.select(Axis(0), &train).view(),
                *lambda,
            );
            let predicted = model.predict(&x.select(Axis(0), &test).view());
            for t in 0..targets {
                mean_r2[[g, t]] += r2(
                    test.iter().map(|i| y[[*i, t]]),
                    predicted.column(t).iter().copied(),
                ) / folds as f64;
            }
            for (k, row) in test.iter().enumerate() {
                out_of_fold.row_mut(*row).assign(&predicted.row(k));
            }
        }
        for t in 0..targets {
            pooled[[g, t]] = r2(
                y.column(t).iter().copied(),
                out_of_fold.column(t).iter().copied(),
            );
        }
    }
    let best: Vec<usize> = (0..targets)
        .map(|t| {
            (0..PENALTIES.len())
                .max_by(|a, b| mean_r2[[*a, t]].total_cmp(&mean_r2[[*b, t]]))
                .unwrap_or(0)
        })
        .collect();
    let mut weights = Array2::zeros((x.ncols(), targets));
    let mut intercepts = Array1::zeros(targets);
    for (g, lambda) in PENALTIES.iter().enumerate() {
        let chosen: Vec<usize> = (0..targets).filter(|t| best[*t] == g).collect();
        if chosen.is_empty() {
            continue;
        }
        let model = fit(x, &y.select(Axis(1), &chosen).view(), *lambda);
        for (k, t) in chosen.iter().enumerate() {
            weights.column_mut(*t).assign(&model.weights.column(k));
            intercepts[*t] = model.intercepts[k];
        }
    }
    Selected {
        fit: Fit {
            weights,
            intercepts,
        },
        penalty: best.iter().map(|g| PENALTIES[*g]).collect(),
        r2: (0..targets).map(|t| pooled[[best[t], t]]).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closed form against the normal equations solved by hand for one feature.
    #[test]
    fn one_feature_matches_the_textbook_formula() {
        let x = Array2::from_shape_vec((5, 1), vec![1.0, 2.0, 3.0, 4.0, 6.0]).unwrap();
        let y = Array2::from_shape_vec((5, 1), vec![2.0, 4.5, 5.5, 8.0, 12.5]).unwrap();
        let lambda = 0.3;
        let m = fit(&x.view(), &y.view(), lambda);
        let (xm, ym) = (16.0 / 5.0, 32.5 / 5.0);
        let sxy: f64 = x
            .iter()
            .zip(y.iter())
            .map(|(a, b)| (a - xm) * (b - ym))
            .sum();
        let sxx: f64 = x.iter().map(|a| (a - xm).powi(2)).sum();
        let slope = sxy / (sxx + 5.0 * lambda);
        assert!((m.weights[[0, 0]] - slope).abs() < 1e-12);
        assert!((m.intercepts[0] - (ym - slope * xm)).abs() < 1e-12);
    }

    /// A strong signal picks a small penalty, pure noise a large one.
    #[test]
    fn cross_validation_shrinks_noise_and_keeps_signal() {
        let n = 200;
        let mut seed = 7u64;
        let mut noise = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        };
        let x = Array2::from_shape_fn((n, 3), |_| noise());
        let mut y = Array2::zeros((n, 2));
        for i in 0..n {
            y[[i, 0]] = 3.0 * x[[i, 0]] - 2.0 * x[[i, 1]] + 0.01 * noise();
            y[[i, 1]] = noise();
        }
        let s = cross_validated(&x.view(), &y.view());
        assert!(s.penalty[0] <= 0.01, "{:?}", s.penalty);
        assert!(s.r2[0] > 0.99, "{:?}", s.r2);
        assert!(s.penalty[1] >= 1.0, "{:?}", s.penalty);
        assert!(s.r2[1] < 0.05, "{:?}", s.r2);
    }
}
