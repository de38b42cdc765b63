use migration::{Migrator, MigratorTrait};

use crate::support::fresh_db;

/// Migrations apply on an empty database, are idempotent, and roll back and
/// forward again cleanly, on the backend under test.
#[tokio::test]
async fn migrations_run_forward_back_and_forward_again() {
    let db = fresh_db().await;
    let conn = engine::db::connect(&db.url).await.unwrap();
    Migrator::up(&conn, None).await.unwrap();
    Migrator::up(&conn, None).await.unwrap();
    let applied = Migrator::get_applied_migrations(&conn).await.unwrap();
    assert_eq!(applied.len(), Migrator::migrations().len());
    assert!(
        Migrator::get_pending_migrations(&conn)
            .await
            .unwrap()
            .is_empty()
    );

    Migrator::down(&conn, None).await.unwrap();
    assert!(
        Migrator::get_applied_migrations(&conn)
            .await
            .unwrap()
            .is_empty()
    );
    Migrator::up(&conn, None).await.unwrap();
    assert_eq!(
        Migrator::get_applied_migrations(&conn).await.unwrap().len(),
        Migrator::migrations().len()
    );
}
