//! L2-regularized logistic regression by Newton's method (IRLS), on
//! standardized features, the penalty chosen by cross-validated log loss.
//!
//! Objective: `1/n Σ logloss(yᵢ, σ(b + xᵢ·w)) + λ/2‖w‖²`, the intercept
//! unpenalized: scikit-learn's `LogisticRegression(C = 1/(n·λ))`. Features
//! are tens, so each Newton step is one p×p solve; it converges in a few
//! steps whatever the number of players.

use ndarray::{Array1, Array2, ArrayView2, Axis, Slice};

use crate::prediction::ridge::solve_spd;

/// The penalties tried (features are standardized, so one grid fits all).
pub const PENALTIES: [f64; 5] = [0.0001, 0.001, 0.01, 0.1, 1.0];
const FOLDS: usize = 5;
/// Penalty selection reads at most this many rows (every k-th); the final
/// fit reads all.
const SELECTION_ROWS: usize = 50_000;
const MAX_STEPS: usize = 50;

#[derive(Clone, Debug)]
pub struct Logistic {
    pub weights: Array1<f64>,
    pub intercept: f64,
}

pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

impl Logistic {
    pub fn linear(&self, x: &ArrayView2<f64>) -> Array1<f64> {
        x.dot(&self.weights) + self.intercept
    }

    pub fn probabilities(&self, x: &ArrayView2<f64>) -> Array1<f64> {
        self.linear(x).mapv(sigmoid)
    }
}

/// Fits `y` (0/1) on `x` at penalty `lambda`.
pub fn fit(x: &ArrayView2<f64>, y: &[f64], lambda: f64) -> Logistic {
    let (n, p) = (x.nrows(), x.ncols());
    let nf = n.max(1) as f64;
    // The intercept is column 0 of the design.
    let mut design = Array2::<f64>::ones((n, p + 1));
    design.slice_axis_mut(Axis(1), Slice::from(1..)).assign(x);
    let mean = y.iter().sum::<f64>() / nf;
    let mut beta = Array1::<f64>::zeros(p + 1);
    beta[0] = (mean.clamp(1e-6, 1.0 - 1e-6) / (1.0 - mean.clamp(1e-6, 1.0 - 1e-6))).ln();
    let y = Array1::from(y.to_vec());
    for _ in 0..MAX_STEPS {
        let prob = design.dot(&beta).mapv(sigmoid);
        let w = prob.mapv(|q| (q * (1.0 - q)).max(1e-10));
        // Gradient and Hessian of n × the objective.
        let mut gradient = design.t().dot(&(&prob - &y));
        let weighted = &design * &w.view().insert_axis(Axis(1));
        let mut hessian = design.t().dot(&weighted);
        for j in 1..=p {
            gradient[j] += nf * lambda * beta[j];
            hessian[[j, j]] += nf * lambda;
        }
        let step = solve_spd(hessian, gradient.insert_axis(Axis(1)))
            .column(0)
            .to_owned();
        beta -= &step;
        if step.iter().all(|d| d.abs() < 1e-9) {
            break;
        }
    }
    Logistic {
        intercept: beta[0],
        weights: beta.slice_axis(Axis(0), Slice::from(1..)).to_owned(),
    }
}

pub fn log_loss(y: &[f64], p: &[f64]) -> f64 {
    let n = y.len().max(1) as f64;
    y.iter()
        .zip(p)
        .map(|(y, p)| {
            let p = p.clamp(1e-15, 1.0 - 1e-15);
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        })
        .sum::<f64>()
        / n
}

/// k-fold cross-validation over [`PENALTIES`] on at most
/// [`SELECTION_ROWS`] rows, then one fit on every row at the penalty with
/// the best mean out-of-fold log loss. Returns the fit and its penalty.
pub fn cross_validated(x: &ArrayView2<f64>, y: &[f64]) -> (Logistic, f64) {
    let n = x.nrows();
    let every = n.div_ceil(SELECTION_ROWS).max(1);
    let rows: Vec<usize> = (0..n).step_by(every).collect();
    let folds = FOLDS.min(rows.len()).max(1);
    let mut best = (f64::INFINITY, PENALTIES[0]);
    for lambda in PENALTIES {
        let mut loss = 0.0;
        for fold in 0..folds {
            let fold_rows = |inside: bool| -> Vec<usize> {
                rows.iter()
                    .enumerate()
                    .filter(|(k, _)| (k % folds == fold) == inside)
                    .map(|(_, r)| *r)
                    .collect()
            };
            let (test, train) = (fold_rows(true), fold_rows(false));
            let y_train: Vec<f64> = train.iter().map(|r| y[*r]).collect();
            let y_test: Vec<f64> = test.iter().map(|r| y[*r]).collect();
            let model = fit(&x.select(Axis(0), &train).view(), &y_train, lambda);
            let p = model.probabilities(&x.select(Axis(0), &test).view());
            loss += log_loss(&y_test, p.as_slice().unwrap_or_default()) / folds as f64;
        }
        if loss < best.0 {
            best = (loss, lambda);
        }
    }
    (fit(x, y, best.1), best.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Planted weights come back from enough data: the fit is a logistic
    /// regression, not an approximation of one.
    #[test]
    fn recovers_planted_weights() {
        let n = 20_000;
        let mut x = Array2::<f64>::zeros((n, 2));
        let mut y = Vec::with_capacity(n);
        // A deterministic spread of points and a deterministic "coin".
        let mut state: u64 = 7;
        let mut uniform = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for i in 0..n {
            let (a, b) = (uniform() * 4.0 - 2.0, uniform() * 4.0 - 2.0);
            x[[i, 0]] = a;
            x[[i, 1]] = b;
            let p = sigmoid(0.5 + 1.5 * a - 1.0 * b);
            y.push(f64::from(uniform() < p));
        }
        let m = fit(&x.view(), &y, 0.0);
        assert!((m.intercept - 0.5).abs() < 0.1, "{}", m.intercept);
        assert!((m.weights[0] - 1.5).abs() < 0.1, "{}", m.weights[0]);
        assert!((m.weights[1] + 1.0).abs() < 0.1, "{}", m.weights[1]);
        // A penalty shrinks the weights towards 0.
        let shrunk = fit(&x.view(), &y, 1.0);
        assert!(shrunk.weights[0].abs() < m.weights[0].abs());
    }
}
