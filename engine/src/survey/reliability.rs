//! What a survey owner asks first: do a facet's items measure one thing?
//! Cronbach's alpha and corrected item-total correlations per facet, over the
//! complete respondents who answered every item of the facet, from running
//! sums (one pass over the answers; memory per item, not per respondent).

use std::collections::HashMap;

use super::instrument::{FacetRef, Instrument, Item};

/// Below this alpha a facet's items are flagged as not measuring one thing
/// (the usual rule of thumb for a research scale).
pub const LOW_ALPHA: f64 = 0.7;

#[derive(Clone, Debug, PartialEq)]
pub struct FacetReliability {
    pub category: String,
    pub facet: String,
    /// Complete respondents who answered every item of the facet.
    pub respondents: i64,
    /// Cronbach's alpha; `None` below two respondents or without variance.
    pub alpha: Option<f64>,
    /// `alpha < LOW_ALPHA`.
    pub low_alpha: bool,
    pub items: Vec<ItemReliability>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ItemReliability {
    pub item_id: String,
    /// Reverse-keyed items count reversed.
    pub reverse_keyed: bool,
    /// Pearson correlation of the item with the sum of the facet's other items.
    pub corrected_item_total: Option<f64>,
}

/// Per facet: sums of the keyed items `x`, their squares, their products
/// with the facet total `t`, and of the total and its square.
struct FacetSums<'a> {
    facet: FacetRef,
    items: Vec<&'a Item>,
    n: f64,
    x: Vec<f64>,
    xx: Vec<f64>,
    xt: Vec<f64>,
    t: f64,
    tt: f64,
}

/// Accumulates respondents one at a time.
pub struct Reliability<'a> {
    instrument: &'a Instrument,
    facets: Vec<FacetSums<'a>>,
}

/// Sample covariance from sums over `n` observations.
fn cov(n: f64, ab: f64, a: f64, b: f64) -> f64 {
    (ab - a * b / n) / (n - 1.0)
}

impl<'a> Reliability<'a> {
    pub fn new(instrument: &'a Instrument) -> Self {
        let facets = instrument
            .facet_items()
            .into_iter()
            .map(|(facet, items)| FacetSums {
                facet,
                n: 0.0,
                x: vec![0.0; items.len()],
                xx: vec![0.0; items.len()],
                xt: vec![0.0; items.len()],
                t: 0.0,
                tt: 0.0,
                items,
            })
            .collect();
        Reliability { instrument, facets }
    }

    /// One respondent's answers (by item id).
    pub fn add(&mut self, answers: &HashMap<String, i16>) {
        for f in &mut self.facets {
            let values: Option<Vec<f64>> = f
                .items
                .iter()
                .map(|it| answers.get(&it.id).map(|v| self.instrument.keyed(it, *v)))
                .collect();
            let Some(values) = values else { continue };
            let total: f64 = values.iter().sum();
            f.n += 1.0;
            f.t += total;
            f.tt += total * total;
            for (i, v) in values.iter().enumerate() {
                f.x[i] += v;
                f.xx[i] += v * v;
                f.xt[i] += v * total;
            }
        }
    }

    pub fn finish(self) -> Vec<FacetReliability> {
        self.facets
            .into_iter()
            .map(|f| {
                let n = f.n;
                let k = f.items.len() as f64;
                let enough = n >= 2.0;
                let var_t = cov(n, f.tt, f.t, f.t);
                let var_i: Vec<f64> = (0..f.items.len())
                    .map(|i| cov(n, f.xx[i], f.x[i], f.x[i]))
                    .collect();
                let alpha = (enough && var_t > 0.0 && k > 1.0)
                    .then(|| k / (k - 1.0) * (1.0 - var_i.iter().sum::<f64>() / var_t));
                let items = f
                    .items
                    .iter()
                    .enumerate()
                    .map(|(i, it)| {
                        // The rest of the facet is total − item.
                        let cov_it = cov(n, f.xt[i], f.x[i], f.t);
                        let cov_rest = cov_it - var_i[i];
                        let var_rest = var_t - 2.0 * cov_it + var_i[i];
                        let r = (enough && var_i[i] > 0.0 && var_rest > 0.0)
                            .then(|| cov_rest / (var_i[i] * var_rest).sqrt());
                        ItemReliability {
                            item_id: it.id.clone(),
                            reverse_keyed: it.keying.as_deref() == Some("-"),
                            corrected_item_total: r,
                        }
                    })
                    .collect();
                FacetReliability {
                    category: f.facet.category,
                    facet: f.facet.facet,
                    respondents: n as i64,
                    low_alpha: alpha.is_some_and(|a| a < LOW_ALPHA),
                    alpha,
                    items,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two respondents agreeing perfectly on a two-item facet: alpha 1.
    #[test]
    fn parallel_items_have_alpha_one_and_item_total_one() {
        let instrument = Instrument::default_instrument();
        let (facet, items) = instrument.facet_items().into_iter().next().unwrap();
        let mut r = Reliability::new(&instrument);
        for level in [2i16, 4, 3] {
            let answers: HashMap<String, i16> = items
                .iter()
                .map(|it| {
                    let v = if it.keying.as_deref() == Some("-") {
                        6 - level
                    } else {
                        level
                    };
                    (it.id.clone(), v)
                })
                .collect();
            r.add(&answers);
        }
        let out = r.finish();
        let f = out.iter().find(|f| f.facet == facet.facet).unwrap();
        assert_eq!(f.respondents, 3);
        assert!((f.alpha.unwrap() - 1.0).abs() < 1e-12, "{f:?}");
        assert!(!f.low_alpha);
        for it in &f.items {
            assert!((it.corrected_item_total.unwrap() - 1.0).abs() < 1e-12);
        }
        // Facets nobody answered fully have no figures.
        let other = out.iter().find(|f| f.facet != facet.facet).unwrap();
        assert_eq!((other.respondents, other.alpha), (0, None));
    }
}
