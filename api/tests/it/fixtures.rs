//! Behavioural rows written straight into the event tables, with their
//! expected trait values computed here in Rust, independently of the SQL.

use chrono::{DateTime, Duration, TimeZone, Utc};
use engine::entity::{actions, players, purchases};
use sea_orm::{ActiveValue::Set, EntityTrait};
use serde_json::json;
use uuid::Uuid;

use crate::support::TestApp;

#[derive(Clone, Debug)]
pub struct Purchase {
    pub user: String,
    pub at: DateTime<Utc>,
    pub price: Option<f64>,
    pub platform: &'static str,
}

#[derive(Clone, Debug)]
pub struct Action {
    pub user: String,
    pub name: &'static str,
    pub damage: Option<String>,
}

pub struct Fixture {
    pub users: Vec<String>,
    pub purchases: Vec<Purchase>,
    pub actions: Vec<Action>,
    pub now: DateTime<Utc>,
}

/// A deterministic pseudo-random sequence (no extra crate, same on every run).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

pub async fn load(app: &TestApp) -> Fixture {
    let now = Utc::now();
    let mut rng = Lcg(7);
    // u00 has no events at all; the others a varying number.
    let users: Vec<String> = (0..12).map(|i| format!("u{i:02}")).collect();
    let platforms = ["Steam", "iOS", "Android"];
    let mut purchases_rows = Vec::new();
    let mut action_rows = Vec::new();
    for (i, u) in users.iter().enumerate().skip(1) {
        for _ in 0..(i % 5 + 1) {
            let days_ago = rng.next(60) as i64;
            purchases_rows.push(Purchase {
                user: u.clone(),
                at: now - Duration::days(days_ago) - Duration::minutes(rng.next(600) as i64),
                // Some purchases have no price: aggregates must skip NULLs.
                price: (rng.next(7) != 0).then(|| (rng.next(10_000) as f64) / 100.0),
                platform: platforms[rng.next(3) as usize],
            });
        }
        for _ in 0..(i % 4) {
            let names = ["fight_won", "fight_lost", "item_used"];
            let name = names[rng.next(3) as usize];
            // Damage is numeric text, sometimes absent, sometimes not a number.
            let damage = match rng.next(5) {
                0 => None,
                1 => Some("n/a".to_owned()),
                _ => Some((rng.next(500) + 1).to_string()),
            };
            action_rows.push(Action {
                user: u.clone(),
                name,
                damage,
            });
        }
    }
    let ws = app.workspace_id;
    let db = app.engine.db();
    players::Entity::insert_many(users.iter().map(|u| players::ActiveModel {
        workspace_id: Set(ws),
        user_id: Set(u.clone()),
        first_seen_at: Set(None),
        last_seen_at: Set(None),
        clan_id: Set(None),
        level: Set(Some(u[1..].parse::<i64>().unwrap() * 3)),
        device: Set(None),
        country: Set(Some(if u.ends_with('1') {
            "US".into()
        } else {
            "DE".into()
        })),
        language: Set(None),
        platform: Set(None),
        register_date: Set(None),
        last_login_at: Set(None),
        updated_at: Set(now),
    }))
    .exec(db)
    .await
    .unwrap();
    purchases::Entity::insert_many(purchases_rows.iter().map(|p| purchases::ActiveModel {
        workspace_id: Set(ws),
        id: Set(Uuid::now_v7()),
        user_id: Set(p.user.clone()),
        timestamp: Set(p.at),
        item_id: Set(Some("sword".into())),
        count: Set(Some(1)),
        price: Set(p.price),
        platform: Set(Some(p.platform.into())),
        extra: Set(None),
        source_file_id: Set(None),
        line_number: Set(None),
        loaded_at: Set(now),
    }))
    .exec(db)
    .await
    .unwrap();
    if !action_rows.is_empty() {
        actions::Entity::insert_many(action_rows.iter().map(|a| {
            let mut params = vec![json!({"key": "enemy_id", "value": "5005"})];
            if let Some(d) = &a.damage {
                params.push(json!({"key": "damage", "value": d}));
            }
            actions::ActiveModel {
                workspace_id: Set(ws),
                id: Set(Uuid::now_v7()),
                user_id: Set(a.user.clone()),
                timestamp: Set(Utc.with_ymd_and_hms(2019, 1, 1, 15, 4, 5).unwrap()),
                action_id: Set(Some("2002".into())),
                action_name: Set(Some(a.name.into())),
                action_params: Set(Some(json!(params))),
                extra: Set(None),
                source_file_id: Set(None),
                line_number: Set(None),
                loaded_at: Set(now),
            }
        }))
        .exec(db)
        .await
        .unwrap();
    }
    Fixture {
        users,
        purchases: purchases_rows,
        actions: action_rows,
        now,
    }
}

impl Fixture {
    pub fn purchases_of<'a>(&'a self, u: &'a str) -> impl Iterator<Item = &'a Purchase> + 'a {
        self.purchases.iter().filter(move |p| p.user == u)
    }
    pub fn actions_of<'a>(&'a self, u: &'a str) -> impl Iterator<Item = &'a Action> + 'a {
        self.actions.iter().filter(move |a| a.user == u)
    }
}

/// The player API reference's JSON examples (`api/tests/fixtures/`): the
/// record examples by folder and the survey routes' response examples.
pub fn player_api_examples() -> serde_json::Value {
    let text = include_str!("../fixtures/player_api_examples.json");
    serde_json::from_str(text).expect("fixture is JSON")
}
