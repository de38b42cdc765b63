//! Persona identities that survive a re-clustering. k-means labels are
//! arbitrary, so a new clustering's clusters are matched to the previous
//! personas (minimum total squared distance between centroids, in the
//! facets' standard deviations, as many pairs as both clusterings have): a
//! matched cluster keeps the persona's index, stable id, name and
//! description; a cluster more than there were personas is a new persona
//! under the next free index; a persona no cluster continues (fewer clusters
//! now) is retired, its index not reused for [`RETIRED_DAYS`].

/// Days a vanished persona's index stays reserved.
pub const RETIRED_DAYS: i64 = 90;
/// What leaving a cluster unmatched costs: more than any distance, so every
/// previous persona is continued while there are clusters to continue it.
const UNMATCHED: f64 = 1e12;
/// Facets named in an automatic label.
const LABEL_FACETS: usize = 2;
/// A facet names a persona when its mean is at least this far from the
/// segment's (in standard deviations).
const LABEL_MIN_DEVIATION: f64 = 0.25;

/// Previous personas up to which the matching is exact (2^k states).
const EXACT_UP_TO: usize = 12;

/// Mean squared difference per facet.
fn distance(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().max(1) as f64;
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / n
}

/// For each new centroid, the position of the old one it continues (or
/// none): of the assignments pairing as many as possible, the one of least
/// total distance, each old centroid used at most once. Exact (a search over
/// subsets of the old centroids) up to [`EXACT_UP_TO`] of them.
pub fn match_centroids(old: &[Vec<f64>], new: &[Vec<f64>]) -> Vec<Option<usize>> {
    let (k_old, k_new) = (old.len(), new.len());
    if k_old > EXACT_UP_TO {
        return match_greedily(old, new);
    }
    let masks = 1usize << k_old;
    // best[j][mask]: least cost of placing new clusters j.. with `mask` old ones taken.
    let mut best = vec![vec![0.0f64; masks]; k_new + 1];
    let mut choice = vec![vec![None::<usize>; masks]; k_new];
    for j in (0..k_new).rev() {
        for mask in 0..masks {
            let (mut cost, mut pick) = (UNMATCHED + best[j + 1][mask], None);
            for (i, o) in old.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    continue;
                }
                let d = distance(o, &new[j]);
                if d + best[j + 1][mask | (1 << i)] < cost {
                    (cost, pick) = (d + best[j + 1][mask | (1 << i)], Some(i));
                }
            }
            best[j][mask] = cost;
            choice[j][mask] = pick;
        }
    }
    let (mut mask, mut out) = (0usize, Vec::with_capacity(k_new));
    for row in &choice {
        let pick = row[mask];
        if let Some(i) = pick {
            mask |= 1 << i;
        }
        out.push(pick);
    }
    out
}

/// More personas than [`EXACT_UP_TO`]: the closest pairs first.
fn match_greedily(old: &[Vec<f64>], new: &[Vec<f64>]) -> Vec<Option<usize>> {
    let mut pairs: Vec<(f64, usize, usize)> = new
        .iter()
        .enumerate()
        .flat_map(|(j, n)| {
            old.iter()
                .enumerate()
                .map(move |(i, o)| (distance(o, n), i, j))
        })
        .collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut out, mut used) = (vec![None; new.len()], vec![false; old.len()]);
    for (_, i, j) in pairs {
        if out[j].is_none() && !used[i] {
            out[j] = Some(i);
            used[i] = true;
        }
    }
    out
}

/// "High Competition · Low Social": the facets where the persona's mean is
/// furthest from the segment's (`centroid` in standard deviations, by facet).
pub fn label(facets: &[(String, String)], centroid: &[f64]) -> String {
    let mut by_deviation: Vec<(usize, f64)> = centroid.iter().copied().enumerate().collect();
    by_deviation.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
    let named: Vec<String> = by_deviation
        .into_iter()
        .take(LABEL_FACETS)
        .filter(|(_, z)| z.abs() >= LABEL_MIN_DEVIATION)
        .map(|(f, z)| format!("{} {}", if z > 0.0 { "High" } else { "Low" }, facets[f].1))
        .collect();
    if named.is_empty() {
        "Typical".into()
    } else {
        named.join(" · ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_keep_the_nearest_previous_persona_and_strangers_are_new() {
        let old = vec![vec![1.0, 0.0], vec![-1.0, 0.0], vec![0.0, 1.5]];
        // Shuffled and moved a little; one more cluster than before: the
        // furthest from every previous centroid is the new one.
        let new = vec![
            vec![-0.9, 0.1],
            vec![3.0, 3.0],
            vec![1.1, -0.1],
            vec![0.1, 1.4],
        ];
        assert_eq!(
            match_centroids(&old, &new),
            vec![Some(1), None, Some(0), Some(2)]
        );
        // One fewer: the one left over is not continued.
        let new = vec![vec![0.1, 1.4], vec![1.1, -0.1]];
        assert_eq!(match_centroids(&old, &new), vec![Some(2), Some(0)]);
        // The least total distance, not the greedy first pick.
        let old = vec![vec![0.0], vec![1.0]];
        let new = vec![vec![0.6], vec![-0.5]];
        assert_eq!(match_centroids(&old, &new), vec![Some(1), Some(0)]);
    }

    #[test]
    fn labels_name_the_most_distinguishing_facets() {
        let facets: Vec<(String, String)> = ["Competition", "Social", "Flow"]
            .iter()
            .map(|f| ("motivations".to_owned(), (*f).to_owned()))
            .collect();
        assert_eq!(
            label(&facets, &[1.2, -0.8, 0.1]),
            "High Competition · Low Social"
        );
        assert_eq!(label(&facets, &[0.1, -0.1, 0.0]), "Typical");
    }
}
