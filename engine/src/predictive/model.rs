//! A prediction's model as stored: how each feature is filled and
//! standardized, and the weights. Training and scoring build the same
//! design matrix from it, so a player is scored exactly as the holdout was.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    dataset::FeatureSpec,
    logistic::{self, sigmoid},
    quality::FeatureWeight,
};
use crate::prediction::ridge;

/// A feature's missing-value indicator: its standardization and weight.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Indicator {
    pub mean: f64,
    pub sd: f64,
    pub weight: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Column {
    pub name: String,
    pub trait_id: Option<Uuid>,
    /// The known value over no events (a count is 0); without one, a gap
    /// takes `impute` (the training mean) and the indicator says so.
    pub fill: Option<f64>,
    pub impute: f64,
    pub mean: f64,
    pub sd: f64,
    pub weight: f64,
    pub indicator: Option<Indicator>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Trained {
    pub columns: Vec<Column>,
    pub intercept: f64,
    /// Predicts spend (`expm1` of the linear score) rather than a probability.
    pub regression: bool,
    pub penalty: f64,
}

impl Trained {
    /// The standardized design matrix of `x` (players × features, NaN for gaps).
    fn design(&self, x: &ArrayView2<f64>) -> Array2<f64> {
        let width = self.columns.len()
            + self
                .columns
                .iter()
                .filter(|c| c.indicator.is_some())
                .count();
        let mut d = Array2::<f64>::zeros((x.nrows(), width));
        let mut extra = self.columns.len();
        for (c, col) in self.columns.iter().enumerate() {
            for r in 0..x.nrows() {
                let v = x[[r, c]];
                let value = if v.is_nan() {
                    col.fill.unwrap_or(col.impute)
                } else {
                    v
                };
                d[[r, c]] = (value - col.mean) / col.sd;
            }
            if let Some(ind) = &col.indicator {
                for r in 0..x.nrows() {
                    d[[r, extra]] = (f64::from(x[[r, c]].is_nan()) - ind.mean) / ind.sd;
                }
                extra += 1;
            }
        }
        d
    }

    fn weights(&self) -> Array1<f64> {
        self.columns
            .iter()
            .map(|c| c.weight)
            .chain(
                self.columns
                    .iter()
                    .filter_map(|c| c.indicator.as_ref().map(|i| i.weight)),
            )
            .collect()
    }

    /// Probability (or predicted spend) per row of `x`.
    pub fn score(&self, x: &ArrayView2<f64>) -> Vec<f64> {
        let linear = self.design(x).dot(&self.weights()) + self.intercept;
        linear
            .iter()
            .map(|z| {
                if self.regression {
                    z.exp_m1().max(0.0)
                } else {
                    sigmoid(*z)
                }
            })
            .collect()
    }

    /// The features the model reads, in its order.
    pub fn specs(&self) -> Vec<FeatureSpec> {
        self.columns
            .iter()
            .map(|c| FeatureSpec {
                name: c.name.clone(),
                trait_id: c.trait_id,
                fill: c.fill,
            })
            .collect()
    }

    /// The features with the largest standardized weights.
    pub fn top_features(&self, k: usize) -> Vec<FeatureWeight> {
        let mut all: Vec<FeatureWeight> = self
            .columns
            .iter()
            .map(|c| FeatureWeight {
                name: c.name.clone(),
                weight: c.weight,
            })
            .chain(self.columns.iter().filter_map(|c| {
                c.indicator.as_ref().map(|i| FeatureWeight {
                    name: format!("{} (missing)", c.name),
                    weight: i.weight,
                })
            }))
            .collect();
        all.sort_by(|a, b| b.weight.abs().total_cmp(&a.weight.abs()));
        all.truncate(k);
        all
    }
}

fn mean_sd(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let (sum, n) = values
        .clone()
        .fold((0.0, 0.0), |(s, n), v| (s + v, n + 1.0));
    let mean = if n > 0.0 { sum / n } else { 0.0 };
    let var = values.map(|v| (v - mean).powi(2)).sum::<f64>() / f64::max(n, 1.0);
    let sd = var.sqrt();
    // A constant column carries no information; keep it harmless.
    (mean, if sd > 1e-12 { sd } else { 1.0 })
}

/// Fits the model on the training rows: fills and standardization from
/// them, then a logistic regression (or ridge on `log1p(spend)`), each with
/// its penalty cross-validated.
pub fn train(specs: &[FeatureSpec], x: &ArrayView2<f64>, y: &[f64], regression: bool) -> Trained {
    let mut columns = Vec::with_capacity(specs.len());
    for (c, spec) in specs.iter().enumerate() {
        let column = x.column(c);
        let observed = column.iter().copied().filter(|v| !v.is_nan());
        let impute = {
            let (sum, n) = observed
                .clone()
                .fold((0.0, 0.0), |(s, n), v| (s + v, n + 1.0));
            if n > 0.0 { sum / n } else { 0.0 }
        };
        let filled = column.iter().map(|v| {
            if v.is_nan() {
                spec.fill.unwrap_or(impute)
            } else {
                *v
            }
        });
        let (mean, sd) = mean_sd(filled);
        let gaps = column.iter().any(|v| v.is_nan());
        let indicator = (gaps && spec.fill.is_none()).then(|| {
            let (mean, sd) = mean_sd(column.iter().map(|v| f64::from(v.is_nan())));
            Indicator {
                mean,
                sd,
                weight: 0.0,
            }
        });
        columns.push(Column {
            name: spec.name.clone(),
            trait_id: spec.trait_id,
            fill: spec.fill,
            impute,
            mean,
            sd,
            weight: 0.0,
            indicator,
        });
    }
    let mut m = Trained {
        columns,
        intercept: 0.0,
        regression,
        penalty: 0.0,
    };
    let d = m.design(x);
    let (weights, intercept, penalty) = if regression {
        let target = Array1::from_iter(y.iter().map(|v| v.max(0.0).ln_1p())).insert_axis(Axis(1));
        let selected = ridge::cross_validated(&d.view(), &target.view());
        (
            selected.fit.weights.column(0).to_owned(),
            selected.fit.intercepts[0],
            selected.penalty[0],
        )
    } else {
        let (fit, penalty) = logistic::cross_validated(&d.view(), y);
        (fit.weights, fit.intercept, penalty)
    };
    let n = m.columns.len();
    let mut extra = n;
    for c in 0..n {
        m.columns[c].weight = weights[c];
        if let Some(ind) = m.columns[c].indicator.as_mut() {
            ind.weight = weights[extra];
            extra += 1;
        }
    }
    m.intercept = intercept;
    m.penalty = penalty;
    m
}
