//! The quality report of a prediction, measured on its holdout players:
//! what the model foretold against what happened.
//!
//! Classification: AUC (the chance that a random positive is ranked above a
//! random negative), log loss, Brier score, lift of the top decile, and
//! calibration by decile. Spend: Spearman's ρ, R², and the share of the
//! window's spend captured by the top decile. The quality word reads the
//! AUC (Spearman's ρ for spend) against [`QUALITY_CUTS`].

use serde::{Deserialize, Serialize};

/// (AUC below, word), in order; at or above the last cut: `excellent`.
pub const QUALITY_CUTS: [(f64, &str); 3] = [(0.6, "poor"), (0.7, "fair"), (0.8, "good")];
/// The same for spend, on Spearman's ρ.
pub const SPEND_QUALITY_CUTS: [(f64, &str); 3] = [(0.2, "poor"), (0.4, "fair"), (0.6, "good")];

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Decile {
    /// 1 = the highest predictions.
    pub decile: u32,
    pub players: u64,
    pub mean_predicted: f64,
    /// Share with the outcome (classification) or mean outcome (spend).
    pub observed: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct FeatureWeight {
    pub name: String,
    /// The weight of the standardized feature (log-odds, or log1p spend, per sd).
    pub weight: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub training_players: u64,
    pub holdout_players: u64,
    /// Training players with the outcome (churned, bought; spent > 0) and without.
    pub positives: u64,
    pub negatives: u64,
    pub holdout_positives: u64,
    pub base_rate: f64,
    pub auc: Option<f64>,
    pub log_loss: Option<f64>,
    pub brier: Option<f64>,
    pub top_decile_lift: Option<f64>,
    pub spearman: Option<f64>,
    pub r2: Option<f64>,
    pub top_decile_capture: Option<f64>,
    pub deciles: Vec<Decile>,
    pub top_features: Vec<FeatureWeight>,
    pub penalty: f64,
    pub quality: String,
}

/// The area under the ROC curve: the Mann–Whitney U over the ranks of the
/// scores, ties counted half.
pub fn auc(scores: &[f64], labels: &[f64]) -> Option<f64> {
    let ranks = ranks(scores);
    let positives = labels.iter().filter(|l| **l > 0.5).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    let rank_sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l > 0.5)
        .map(|(r, _)| r)
        .sum();
    Some((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

/// 1-based ranks, ties sharing their mean rank.
pub fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| values[*a].total_cmp(&values[*b]));
    let mut out = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            out[order[k]] = rank;
        }
        i = j + 1;
    }
    out
}

pub fn brier(scores: &[f64], labels: &[f64]) -> f64 {
    mean(scores.iter().zip(labels).map(|(p, y)| (p - y).powi(2)))
}

pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    pearson(&ranks(a), &ranks(b))
}

fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let (ma, mb) = (mean(a.iter().copied()), mean(b.iter().copied()));
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

pub fn r2(actual: &[f64], predicted: &[f64]) -> Option<f64> {
    let m = mean(actual.iter().copied());
    let total: f64 = actual.iter().map(|a| (a - m).powi(2)).sum();
    let residual: f64 = actual
        .iter()
        .zip(predicted)
        .map(|(a, p)| (a - p).powi(2))
        .sum();
    (total > 0.0).then(|| 1.0 - residual / total)
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Ten groups of (nearly) equal size by prediction, highest first.
pub fn deciles(predicted: &[f64], actual: &[f64]) -> Vec<Decile> {
    let mut order: Vec<usize> = (0..predicted.len()).collect();
    order.sort_by(|a, b| predicted[*b].total_cmp(&predicted[*a]));
    let n = order.len();
    (0..10)
        .filter_map(|d| {
            let group = &order[d * n / 10..(d + 1) * n / 10];
            (!group.is_empty()).then(|| Decile {
                decile: d as u32 + 1,
                players: group.len() as u64,
                mean_predicted: mean(group.iter().map(|i| predicted[*i])),
                observed: mean(group.iter().map(|i| actual[*i])),
            })
        })
        .collect()
}

pub fn word(value: Option<f64>, cuts: &[(f64, &str)]) -> String {
    let Some(v) = value else {
        return "poor".into();
    };
    cuts.iter()
        .find(|(below, _)| v < *below)
        .map_or("excellent", |(_, w)| w)
        .to_owned()
}

/// The report's measures of the holdout (`predicted` probabilities or
/// spend, `actual` outcomes).
pub fn measure(report: &mut Report, regression: bool, predicted: &[f64], actual: &[f64]) {
    report.holdout_players = actual.len() as u64;
    report.holdout_positives = actual.iter().filter(|a| **a > 0.0).count() as u64;
    report.deciles = deciles(predicted, actual);
    if regression {
        report.spearman = spearman(predicted, actual);
        report.r2 = r2(actual, predicted);
        let total: f64 = actual.iter().sum();
        let top: f64 = report
            .deciles
            .first()
            .map_or(0.0, |d| d.observed * d.players as f64);
        report.top_decile_capture = (total > 0.0).then(|| top / total);
        report.quality = word(report.spearman, &SPEND_QUALITY_CUTS);
    } else {
        report.auc = auc(predicted, actual);
        report.log_loss = Some(super::logistic::log_loss(actual, predicted));
        report.brier = Some(brier(predicted, actual));
        let rate = mean(actual.iter().copied());
        report.top_decile_lift = report
            .deciles
            .first()
            .filter(|_| rate > 0.0)
            .map(|d| d.observed / rate);
        report.quality = word(report.auc, &QUALITY_CUTS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ordered_pairs_and_half_ties() {
        // Pairs (pos, neg): (0.9,0.1) ✓, (0.9,0.5) ✓, (0.5,0.1) ✓, (0.5,0.5) ½.
        let auc = auc(&[0.9, 0.5, 0.5, 0.1], &[1.0, 1.0, 0.0, 0.0]).unwrap();
        assert!((auc - 3.5 / 4.0).abs() < 1e-12);
        assert_eq!(super::auc(&[0.3, 0.2], &[1.0, 1.0]), None);
    }

    #[test]
    fn deciles_split_by_prediction_highest_first() {
        let predicted: Vec<f64> = (0..100).map(f64::from).collect();
        let actual: Vec<f64> = (0..100).map(|i| f64::from(i >= 90)).collect();
        let d = deciles(&predicted, &actual);
        assert_eq!(d.len(), 10);
        assert_eq!(d[0].observed, 1.0);
        assert_eq!(d[1].observed, 0.0);
        assert!((d[0].mean_predicted - 94.5).abs() < 1e-12);
        assert_eq!(word(Some(0.75), &QUALITY_CUTS), "good");
        assert_eq!(word(Some(0.85), &QUALITY_CUTS), "excellent");
    }
}
