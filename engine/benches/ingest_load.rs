//! Loading a 1M-line NDJSON file of purchases from a local source into
//! PostgreSQL, beside `COPY` of the same rows as CSV into a same-shaped table
//! (`LIKE purchases INCLUDING ALL`: same columns, keys and indexes; the rows
//! carry a file id and line number as the loader's do), in one run.
//!
//! `BENCH_POSTGRES_URL=postgres://… BENCH_REDIS_URL=redis://… cargo bench -p engine --bench ingest_load`
//! (`psql` on PATH runs the `\copy`). Prints rows/s of both, their ratio and
//! the loader's peak RSS (VmHWM, reset just before the load).

use std::{
    io::{BufWriter, Write},
    time::Instant,
};

mod support;

use engine::{entity::source_files, ingest::sources::SourceInput};
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::json;
use support::Bench;
use uuid::Uuid;

const LINES: u64 = 1_000_000;
const PLAYERS: u64 = 100_000;

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::main]
async fn main() {
    let bench = Bench::start(|name| Some(std::env::temp_dir().join(name))).await;
    let (engine, p, url) = (&bench.engine, &bench.principal, &bench.url);
    let root = std::env::temp_dir().join(&bench.name);
    std::fs::create_dir_all(root.join("purchases")).unwrap();

    // The same rows twice: NDJSON for the loader, CSV for COPY (written as we go, bounded memory).
    let ws_id = bench.workspace_id;
    let mut ndjson =
        BufWriter::new(std::fs::File::create(root.join("purchases/p.ndjson")).unwrap());
    let mut csv = BufWriter::new(std::fs::File::create(root.join("copy.csv")).unwrap());
    // The loader's rows name their file and line (the exactly-once key, a
    // unique index): the COPY rows do too, or COPY would skip that index's
    // uniqueness checks (NULLs never collide) and not be the same rows.
    let copy_file_id = Uuid::now_v7();
    for n in 0..LINES {
        let user = format!("u{}", n * 7919 % PLAYERS);
        let ts = format!(
            "2020-09-{:02} {:02}:{:02}:{:02}",
            1 + n % 28,
            n % 24,
            n % 60,
            (n / 60) % 60
        );
        let price = (n % 10_000) as f64 / 100.0;
        let item = format!("item{}", n % 500);
        writeln!(
            ndjson,
            "{}",
            json!({ "timestamp": ts, "user_id": user, "item_id": item, "count": 1, "price": price, "platform": "Steam" })
        )
        .unwrap();
        writeln!(
            csv,
            "{ws_id},{},{user},{ts}+00,{item},1,{price},Steam,{copy_file_id},{},now",
            Uuid::now_v7(),
            n + 1
        )
        .unwrap();
    }
    ndjson.flush().unwrap();
    csv.flush().unwrap();
    drop((ndjson, csv));

    let source = engine
        .create_source(
            p,
            SourceInput {
                name: Some("bench".into()),
                kind: Some("local".into()),
                config: Some(json!({ "path": "." })),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let run = engine.scan_source(p, source.id).await.unwrap();
    engine.execute_scan(run.id).await.unwrap();
    let file = source_files::Entity::find()
        .one(engine.db())
        .await
        .unwrap()
        .expect("the scan recorded the file");

    // Peak RSS from here on is the loader's (the generator above wrote as it went).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let clock = Instant::now();
    engine.execute_load_file(file.id).await.unwrap();
    let loader = clock.elapsed();
    let rss_kib = vm_hwm_kib();
    let loaded = source_files::Entity::find_by_id(file.id)
        .one(engine.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.rows_loaded as u64, LINES, "{loaded:?}");

    let db = engine.db();
    db.execute_unprepared("CREATE TABLE bench_copy (LIKE purchases INCLUDING ALL)")
        .await
        .unwrap();
    let csv_path = root.join("copy.csv");
    let clock = Instant::now();
    let status = std::process::Command::new("psql")
        .arg(url)
        .arg("-q")
        .arg("-c")
        .arg(format!(
            "\\copy bench_copy (workspace_id, id, user_id, timestamp, item_id, count, price, platform, source_file_id, line_number, loaded_at) FROM '{}' CSV",
            csv_path.display()
        ))
        .status()
        .expect("psql");
    let copy = clock.elapsed();
    assert!(status.success());

    let rate = |d: std::time::Duration| LINES as f64 / d.as_secs_f64();
    println!(
        "loader: {LINES} lines in {:.2} s = {:.0} rows/s, peak RSS {:.1} MiB",
        loader.as_secs_f64(),
        rate(loader),
        rss_kib as f64 / 1024.0
    );
    println!(
        "COPY:   {LINES} rows in {:.2} s = {:.0} rows/s",
        copy.as_secs_f64(),
        rate(copy)
    );
    println!(
        "ratio (loader / COPY rows/s): {:.2}x",
        rate(loader) / rate(copy)
    );

    bench.finish().await;
    std::fs::remove_dir_all(root).unwrap();
}
