//! The survey instrument as data: Likert items keyed to facets, attention
//! checks, facets that combine others, and the norms that turn raw means into
//! T-scores. Validated whole before it is stored.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Ours, written for Traitforge; covers every category and facet of the
/// player API's persona traits.
pub const DEFAULT_INSTRUMENT: &str = include_str!("default_instrument.json");

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instrument {
    pub version: u32,
    pub scale: Scale,
    pub items_per_page: usize,
    /// `workspace` (the default): the facets' norms hold until enough of the
    /// workspace's players completed the survey, then their own mean and sd
    /// replace them; `instrument`: the norms below are fixed by an admin.
    #[serde(default, skip_serializing_if = "NormMode::is_workspace")]
    pub norms: NormMode,
    pub facets: Vec<Facet>,
    #[serde(default)]
    pub combined: Vec<Combined>,
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    pub min: i16,
    pub max: i16,
    /// One label per point, lowest first.
    pub labels: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facet {
    pub category: String,
    pub facet: String,
    pub norm: Norm,
}

/// Mean and standard deviation of the facet's raw score in the norm group.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Norm {
    pub mean: f64,
    pub sd: f64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormMode {
    #[default]
    Workspace,
    Instrument,
}

impl NormMode {
    fn is_workspace(&self) -> bool {
        *self == NormMode::Workspace
    }
}

/// A facet scored as the mean of other facets' T-scores (e.g. a personality
/// domain from its facets), with no items of its own.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Combined {
    pub category: String,
    pub facet: String,
    pub from: Vec<FacetRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacetRef {
    pub category: String,
    pub facet: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub id: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facet: Option<String>,
    /// `+` or `-` (reverse-keyed) for scored items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keying: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_check: Option<AttentionCheck>,
}

/// An item with one right answer, to catch careless responding.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttentionCheck {
    pub expect: i16,
}

/// One facet's score.
#[derive(Clone, Debug, PartialEq)]
pub struct FacetScore {
    pub category: String,
    pub facet: String,
    pub score: f64,
}

/// Why a complete response is disqualified.
#[derive(Clone, Debug, PartialEq)]
pub enum Disqualification {
    AttentionCheck(String),
    StraightLining { share: f64 },
    TooFast { seconds: i64, minimum: i64 },
}

impl std::fmt::Display for Disqualification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Disqualification::AttentionCheck(id) => write!(f, "failed attention check {id}"),
            Disqualification::StraightLining { share } => write!(
                f,
                "straight-lining: {:.0}% of answers are the same",
                share * 100.0
            ),
            Disqualification::TooFast { seconds, minimum } => {
                write!(f, "completed in {seconds} s, the minimum is {minimum} s")
            }
        }
    }
}

/// Share of identical answers from which a response counts as straight-lined.
pub const STRAIGHT_LINING_SHARE: f64 = 0.9;

impl Instrument {
    pub fn default_instrument() -> Instrument {
        serde_json::from_str(DEFAULT_INSTRUMENT).expect("the default instrument is valid JSON")
    }

    /// Parses and validates an instrument sent by a client; errors name the
    /// offending path (`instrument.items[3].facet`).
    pub fn parse(value: &serde_json::Value) -> Result<Instrument> {
        let instrument: Instrument =
            serde_json::from_value(value.clone()).map_err(|e| Error::invalid("instrument", e))?;
        instrument.validate()?;
        Ok(instrument)
    }

    /// Every (category, facet) a completed survey scores: the item facets,
    /// then the combined ones.
    pub fn scored_facets(&self) -> impl Iterator<Item = (&str, &str)> {
        let facets = self
            .facets
            .iter()
            .map(|f| (f.category.as_str(), f.facet.as_str()));
        let combined = self
            .combined
            .iter()
            .map(|c| (c.category.as_str(), c.facet.as_str()));
        facets.chain(combined)
    }

    /// An instrument read back from the database: it was validated when it
    /// was stored, so only decoded here (this runs on every survey page).
    pub fn stored(value: &serde_json::Value) -> Result<Instrument> {
        Instrument::deserialize(value).map_err(Error::internal)
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |path: String, msg: &str| Err(Error::invalid(format!("instrument.{path}"), msg));
        if self.scale.min != 1 || self.scale.max != 5 || self.scale.labels.len() != 5 {
            return bad(
                "scale".into(),
                "must be a 1–5 Likert scale with five labels",
            );
        }
        if !(1..=50).contains(&self.items_per_page) {
            return bad("items_per_page".into(), "must be between 1 and 50");
        }
        let mut facets = HashSet::new();
        for (i, f) in self.facets.iter().enumerate() {
            if f.category.trim().is_empty() || f.facet.trim().is_empty() {
                return bad(format!("facets[{i}]"), "needs a category and a facet name");
            }
            if f.norm.sd.is_nan() || f.norm.sd <= 0.0 || !f.norm.mean.is_finite() {
                return bad(
                    format!("facets[{i}].norm"),
                    "needs a finite mean and sd > 0",
                );
            }
            if !facets.insert(f.key()) {
                return bad(format!("facets[{i}]"), "is declared twice");
            }
        }
        let mut ids = HashSet::new();
        let mut per_facet: HashMap<FacetRef, usize> = HashMap::new();
        for (i, item) in self.items.iter().enumerate() {
            if item.id.trim().is_empty() || !ids.insert(item.id.as_str()) {
                return bad(format!("items[{i}].id"), "must be present and unique");
            }
            if item.text.trim().is_empty() {
                return bad(format!("items[{i}].text"), "must not be empty");
            }
            match (&item.attention_check, &item.category, &item.facet) {
                (Some(check), None, None) => {
                    if !(self.scale.min..=self.scale.max).contains(&check.expect) {
                        return bad(
                            format!("items[{i}].attention_check.expect"),
                            "is outside the scale",
                        );
                    }
                }
                (None, Some(category), Some(facet)) => {
                    let key = FacetRef {
                        category: category.clone(),
                        facet: facet.clone(),
                    };
                    if !facets.contains(&key) {
                        return bad(
                            format!("items[{i}].facet"),
                            "names a facet that is not declared in facets",
                        );
                    }
                    if !matches!(item.keying.as_deref(), Some("+" | "-")) {
                        return bad(format!("items[{i}].keying"), "must be '+' or '-'");
                    }
                    *per_facet.entry(key).or_default() += 1;
                }
                _ => {
                    return bad(
                        format!("items[{i}]"),
                        "is either a scored item (category, facet, keying) or an attention check",
                    );
                }
            }
        }
        for (i, f) in self.facets.iter().enumerate() {
            if per_facet.get(&f.key()).copied().unwrap_or(0) < 2 {
                return bad(format!("facets[{i}]"), "needs at least two items");
            }
        }
        for (i, c) in self.combined.iter().enumerate() {
            let key = FacetRef {
                category: c.category.clone(),
                facet: c.facet.clone(),
            };
            if facets.contains(&key) {
                return bad(
                    format!("combined[{i}]"),
                    "is also declared as a scored facet",
                );
            }
            if c.from.is_empty() || c.from.iter().any(|r| !facets.contains(r)) {
                return bad(
                    format!("combined[{i}].from"),
                    "must list declared scored facets",
                );
            }
        }
        Ok(())
    }

    /// Number of pages of the survey.
    pub fn page_count(&self) -> usize {
        self.items.len().div_ceil(self.items_per_page)
    }

    /// The items of page `page` (0-based).
    pub fn page(&self, page: usize) -> &[Item] {
        let start = (page * self.items_per_page).min(self.items.len());
        let end = (start + self.items_per_page).min(self.items.len());
        &self.items[start..end]
    }

    /// The first page with an unanswered item, or `None` when every item is answered.
    pub fn next_page(&self, answers: &HashMap<String, i16>) -> Option<usize> {
        (0..self.page_count())
            .find(|&i| self.page(i).iter().any(|it| !answers.contains_key(&it.id)))
    }

    /// The answers a submitted form gives for the items of `page` (values on
    /// the scale), and the ids of the items it leaves unanswered.
    pub fn read_page(
        &self,
        page: usize,
        submitted: &HashMap<String, String>,
    ) -> (Vec<(String, i16)>, Vec<String>) {
        let scale = self.scale.min..=self.scale.max;
        let (mut values, mut missing) = (Vec::new(), Vec::new());
        for item in self.page(page) {
            match submitted
                .get(&item.id)
                .and_then(|v| v.trim().parse::<i16>().ok())
                .filter(|v| scale.contains(v))
            {
                Some(v) => values.push((item.id.clone(), v)),
                None => missing.push(item.id.clone()),
            }
        }
        (values, missing)
    }

    /// Quality checks on a complete response (answers by item id).
    pub fn disqualification(
        &self,
        answers: &HashMap<String, i16>,
        seconds: i64,
        min_seconds: i64,
    ) -> Option<Disqualification> {
        for item in &self.items {
            if let Some(check) = item.attention_check
                && answers.get(&item.id) != Some(&check.expect)
            {
                return Some(Disqualification::AttentionCheck(item.id.clone()));
            }
        }
        let scored: Vec<i16> = self
            .items
            .iter()
            .filter(|i| i.attention_check.is_none())
            .filter_map(|i| answers.get(&i.id).copied())
            .collect();
        if !scored.is_empty() {
            let mut counts = [0usize; 8];
            for v in &scored {
                counts[(*v as usize).min(7)] += 1;
            }
            let share = *counts.iter().max().unwrap() as f64 / scored.len() as f64;
            if share >= STRAIGHT_LINING_SHARE {
                return Some(Disqualification::StraightLining { share });
            }
        }
        if seconds < min_seconds {
            return Some(Disqualification::TooFast {
                seconds,
                minimum: min_seconds,
            });
        }
        None
    }

    /// An answer as it counts for its facet: reverse-keyed items as `min + max − v`.
    pub fn keyed(&self, item: &Item, v: i16) -> f64 {
        f64::from(if item.keying.as_deref() == Some("-") {
            self.scale.min + self.scale.max - v
        } else {
            v
        })
    }

    /// Each item facet's scored items, in instrument order.
    pub fn facet_items(&self) -> BTreeMap<FacetRef, Vec<&Item>> {
        let mut out: BTreeMap<FacetRef, Vec<&Item>> = BTreeMap::new();
        for item in &self.items {
            if let (Some(category), Some(facet)) = (&item.category, &item.facet) {
                out.entry(FacetRef {
                    category: category.clone(),
                    facet: facet.clone(),
                })
                .or_default()
                .push(item);
            }
        }
        out
    }

    /// Facet raw scores: the mean of the facet's answered items, keyed.
    pub fn raw_scores(&self, answers: &HashMap<String, i16>) -> BTreeMap<FacetRef, f64> {
        self.facet_items()
            .into_iter()
            .filter_map(|(facet, items)| {
                let values: Vec<f64> = items
                    .iter()
                    .filter_map(|it| answers.get(&it.id).map(|v| self.keyed(it, *v)))
                    .collect();
                (!values.is_empty())
                    .then(|| (facet, values.iter().sum::<f64>() / values.len() as f64))
            })
            .collect()
    }

    /// The instrument's own norm per item facet.
    pub fn norms(&self) -> HashMap<FacetRef, Norm> {
        self.facets.iter().map(|f| (f.key(), f.norm)).collect()
    }

    /// [`Instrument::score_with`] the instrument's own norms.
    pub fn score(&self, answers: &HashMap<String, i16>) -> Vec<FacetScore> {
        self.score_with(answers, &self.norms())
    }

    /// Facet raw score = mean of its items (reverse-keyed as `min + max − v`),
    /// T = 50 + 10 × (raw − mean) / sd against the facet's norm in `norms`;
    /// combined facets are the mean of their components' T-scores.
    pub fn score_with(
        &self,
        answers: &HashMap<String, i16>,
        norms: &HashMap<FacetRef, Norm>,
    ) -> Vec<FacetScore> {
        let mut t: BTreeMap<FacetRef, f64> = BTreeMap::new();
        for (facet, raw) in self.raw_scores(answers) {
            if let Some(norm) = norms.get(&facet) {
                t.insert(facet, 50.0 + 10.0 * (raw - norm.mean) / norm.sd);
            }
        }
        let mut out: Vec<FacetScore> = t
            .iter()
            .map(|(k, s)| FacetScore {
                category: k.category.clone(),
                facet: k.facet.clone(),
                score: *s,
            })
            .collect();
        for c in &self.combined {
            let parts: Vec<f64> = c.from.iter().filter_map(|r| t.get(r).copied()).collect();
            if parts.len() == c.from.len() {
                out.push(FacetScore {
                    category: c.category.clone(),
                    facet: c.facet.clone(),
                    score: parts.iter().sum::<f64>() / parts.len() as f64,
                });
            }
        }
        out
    }
}

impl Facet {
    pub fn key(&self) -> FacetRef {
        FacetRef {
            category: self.category.clone(),
            facet: self.facet.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATEGORIES: [&str; 12] = [
        "agreeableness",
        "communication",
        "competitiveness",
        "conscientiousness",
        "coreMotivations",
        "culture",
        "extraversion",
        "motivations",
        "neuroticism",
        "openness",
        "personality",
        "wellBeing",
    ];

    #[test]
    fn the_default_instrument_is_valid_and_covers_every_reference_category() {
        let i = Instrument::default_instrument();
        i.validate().unwrap();
        let mut cats: HashSet<&str> = i.facets.iter().map(|f| f.category.as_str()).collect();
        cats.extend(i.combined.iter().map(|c| c.category.as_str()));
        for c in CATEGORIES {
            assert!(cats.contains(c), "{c} is missing");
        }
        assert!(
            i.items
                .iter()
                .filter(|i| i.attention_check.is_some())
                .count()
                >= 2
        );
    }

    #[test]
    fn invalid_instruments_name_the_path() {
        let mut v: serde_json::Value = serde_json::from_str(DEFAULT_INSTRUMENT).unwrap();
        v["items"][0]["keying"] = "x".into();
        let e = Instrument::parse(&v).unwrap_err();
        assert_eq!(e.field(), Some("instrument.items[0].keying"), "{e}");
        let mut v: serde_json::Value = serde_json::from_str(DEFAULT_INSTRUMENT).unwrap();
        v["facets"][0]["norm"]["sd"] = 0.into();
        assert_eq!(
            Instrument::parse(&v).unwrap_err().field(),
            Some("instrument.facets[0].norm")
        );
    }

    #[test]
    fn reverse_keying_and_t_scores() {
        let i = Instrument::default_instrument();
        // Agree with every positive item, disagree with every negative one: raw 4 everywhere.
        let answers: HashMap<String, i16> = i
            .items
            .iter()
            .map(|it| {
                (
                    it.id.clone(),
                    if it.keying.as_deref() == Some("-") {
                        2
                    } else {
                        4
                    },
                )
            })
            .collect();
        let scores = i.score(&answers);
        let norm = i.facets[0].norm;
        let want = 50.0 + 10.0 * (4.0 - norm.mean) / norm.sd;
        let first = &scores[0];
        assert!((first.score - want).abs() < 1e-9, "{first:?}");
        assert!(
            scores
                .iter()
                .any(|s| s.category == "personality" && s.facet == "Openness")
        );
    }
}
