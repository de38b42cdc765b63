//! A made-up studio's players: each has a planted type that drives both what
//! they do in the game (the eight record types, over several weeks) and how
//! they answer the survey, so traits, prediction and personas find signal.
//! Deterministic: the same size gives the same studio.

use std::{fmt::Write as _, io::Write as _, path::Path};

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

pub const WEEKS: i64 = 6;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PlayerType {
    /// Spends real money, plays often.
    Whale,
    /// Fights a lot, levels up fast.
    Fighter,
    /// Chats and gifts.
    Socializer,
    /// Drops by now and then.
    Casual,
}

impl PlayerType {
    fn of(n: usize) -> Self {
        match n % 10 {
            0 => PlayerType::Whale,
            1..=3 => PlayerType::Fighter,
            4..=5 => PlayerType::Socializer,
            _ => PlayerType::Casual,
        }
    }

    fn index(self) -> u64 {
        match self {
            PlayerType::Whale => 0,
            PlayerType::Fighter => 1,
            PlayerType::Socializer => 2,
            PlayerType::Casual => 3,
        }
    }

    /// Sessions per week.
    fn sessions(self) -> std::ops::RangeInclusive<u32> {
        match self {
            PlayerType::Whale => 4..=8,
            PlayerType::Fighter => 5..=9,
            PlayerType::Socializer => 3..=7,
            PlayerType::Casual => 0..=2,
        }
    }

    /// The chance that a player of this type stops playing: their sessions
    /// thin out in weeks 3 and 4 and end before the last two weeks.
    fn churn_chance(self) -> f64 {
        match self {
            PlayerType::Whale => 0.15,
            PlayerType::Fighter => 0.25,
            PlayerType::Socializer => 0.3,
            PlayerType::Casual => 0.55,
        }
    }

    /// How this type leans on a survey facet: -1.4 to +1.4 points of the scale,
    /// fixed per (type, facet), so a type has one psychological profile.
    pub fn lean(self, category: &str, facet: &str) -> f64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ self.index();
        for b in category.bytes().chain([b'.']).chain(facet.bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        ((h % 29) as f64 - 14.0) / 10.0
    }
}

pub struct Player {
    pub user_id: String,
    pub kind: PlayerType,
}

pub fn players(n: usize) -> Vec<Player> {
    (0..n)
        .map(|i| Player {
            user_id: format!("player-{i:05}"),
            kind: PlayerType::of(i),
        })
        .collect()
}

const PLATFORMS: [&str; 3] = ["Steam", "PlayStation", "Switch"];
const COUNTRIES: [&str; 6] = ["US", "DE", "FR", "BR", "JP", "KR"];
const ITEMS: [(&str, f64, &str); 8] = [
    ("starter_pack", 4.99, "bundle"),
    ("gem_pouch", 9.99, "currency"),
    ("gem_chest", 49.99, "currency"),
    ("dragon_skin", 14.99, "skin"),
    ("battle_pass", 9.99, "pass"),
    ("xp_boost", 1.99, "booster"),
    ("legend_bundle", 99.99, "bundle"),
    ("pet_fox", 4.99, "pet"),
];

/// NDJSON lines per record type, written as one file per type and week.
struct Files {
    lines: std::collections::BTreeMap<(&'static str, i64), String>,
}

impl Files {
    fn add(&mut self, record_type: &'static str, week: i64, line: serde_json::Value) {
        let file = self.lines.entry((record_type, week)).or_default();
        let _ = writeln!(file, "{line}");
    }
}

fn at(start: DateTime<Utc>, week: i64, rng: &mut impl Rng) -> DateTime<Utc> {
    start + Duration::days(week * 7) + Duration::seconds(rng.random_range(0..7 * 86_400))
}

/// Writes the studio's behavioural data into `folder/<record type>/week-N.ndjson`.
pub fn write_files(
    folder: &Path,
    players: &[Player],
    now: DateTime<Utc>,
) -> std::io::Result<usize> {
    let mut rng = StdRng::seed_from_u64(7);
    let start = Utc
        .timestamp_opt((now - Duration::weeks(WEEKS)).timestamp(), 0)
        .single()
        .unwrap_or(now);
    let mut files = Files {
        lines: Default::default(),
    };
    for (id, price, kind) in ITEMS {
        files.add(
            "items",
            0,
            json!({ "item_id": id, "price": price, "currency": "USD", "name": id.replace('_', " "), "type": kind }),
        );
    }
    for (i, p) in players.iter().enumerate() {
        let platform = PLATFORMS[rng.random_range(0..PLATFORMS.len())];
        let country = COUNTRIES[rng.random_range(0..COUNTRIES.len())];
        let mut level = 1;
        // Churners, planted with their own generator so the rest stays as it was.
        let churns = StdRng::seed_from_u64(1_000 + i as u64).random_bool(p.kind.churn_chance());
        for week in 0..WEEKS {
            let sessions = rng.random_range(p.kind.sessions());
            let sessions = match (churns, WEEKS - week) {
                (false, _) => sessions,
                (true, 1..=2) => 0,
                (true, 3) => sessions / 3,
                (true, 4) => sessions * 2 / 3,
                (true, _) => sessions,
            };
            for _ in 0..sessions {
                let t = at(start, week, &mut rng);
                let ts = t.format("%Y-%m-%d %H:%M:%S").to_string();
                files.add("logins", week, json!({ "timestamp": ts, "user_id": p.user_id, "platform": platform, "country": country, "device": if platform == "Steam" { "pc" } else { "console" }, "level": level }));
                let fights = match p.kind {
                    PlayerType::Fighter => rng.random_range(2..6),
                    PlayerType::Whale => rng.random_range(0..3),
                    _ => rng.random_range(0..2),
                };
                for _ in 0..fights {
                    let won = rng.random_bool(if p.kind == PlayerType::Fighter {
                        0.7
                    } else {
                        0.4
                    });
                    let name = if won { "fight_won" } else { "fight_lost" };
                    files.add("actions", week, json!({ "timestamp": ts, "user_id": p.user_id, "action_name": name, "action_params": [{"key": "damage", "value": rng.random_range(10..500)}] }));
                }
                if p.kind == PlayerType::Fighter && rng.random_bool(0.5) || rng.random_bool(0.1) {
                    level += 1;
                    files.add(
                        "level_ups",
                        week,
                        json!({ "timestamp": ts, "user_id": p.user_id, "level": level }),
                    );
                }
                let buys = match p.kind {
                    PlayerType::Whale => rng.random_bool(0.6),
                    PlayerType::Casual => rng.random_bool(0.02),
                    _ => rng.random_bool(0.08),
                };
                if buys {
                    let (item, price, _) = ITEMS[rng.random_range(0..ITEMS.len())];
                    files.add("purchases", week, json!({ "timestamp": ts, "user_id": p.user_id, "item_id": item, "count": 1, "price": price, "platform": platform }));
                }
                if rng.random_bool(if p.kind == PlayerType::Casual {
                    0.1
                } else {
                    0.4
                }) {
                    files.add("virtual_purchases", week, json!({ "timestamp": ts, "user_id": p.user_id, "item_id": "xp_boost", "count": 1, "virtual_price": rng.random_range(50..500), "currency": "gems" }));
                }
                let chats = if p.kind == PlayerType::Socializer {
                    rng.random_range(1..5)
                } else {
                    u32::from(rng.random_bool(0.2))
                };
                for _ in 0..chats {
                    let other = format!("player-{:05}", rng.random_range(0..players.len()));
                    let interaction = if rng.random_bool(0.3) { "gift" } else { "chat" };
                    files.add("social_dynamics", week, json!({ "timestamp": ts, "user_id": p.user_id, "target_user_id": other, "interaction": interaction }));
                }
            }
            if sessions > 0 {
                let t = at(start, week, &mut rng)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string();
                files.add("kpis", week, json!({ "timestamp": t, "user_id": p.user_id, "kpi_id": "minutes_played", "value": sessions * rng.random_range(10..60) }));
            }
        }
    }
    let mut written = 0;
    for ((record_type, week), text) in files.lines {
        let dir = folder.join(record_type);
        std::fs::create_dir_all(&dir)?;
        let mut f = std::fs::File::create(dir.join(format!("week-{week}.ndjson")))?;
        f.write_all(text.as_bytes())?;
        written += text.lines().count();
    }
    Ok(written)
}

/// A player's answer to one item, on `min..=max`: the type's lean on the
/// item's facet (reversed for reverse-keyed items) plus noise.
pub fn answer(
    kind: PlayerType,
    item: &engine::survey::instrument::Item,
    min: i16,
    max: i16,
    rng: &mut impl Rng,
) -> i16 {
    if let Some(check) = &item.attention_check {
        return check.expect;
    }
    let middle = f64::from(min + max) / 2.0;
    let lean = match (&item.category, &item.facet) {
        (Some(c), Some(f)) => kind.lean(c, f),
        _ => 0.0,
    };
    let lean = if item.keying.as_deref() == Some("-") {
        -lean
    } else {
        lean
    };
    let value = middle + lean + rng.random_range(-1.0..=1.0);
    (value.round() as i16).clamp(min, max)
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}
