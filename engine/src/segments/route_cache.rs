//! The persona routes' rendered responses, kept in memory per segment state,
//! each with a gzip form made once on the first request that accepts it.

use std::{
    collections::HashMap,
    io::Write,
    sync::{Arc, Mutex, OnceLock},
    time::Instant,
};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::personas::{PersonaRef, PersonaRoute};

/// What a segment row looked like when a body was rendered: any change to
/// it (members, personas, an erasure) makes the body stale.
pub(crate) type Stamp = (DateTime<Utc>, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Workspace, the segment as the client named it, persona, route.
pub(crate) type RouteKey = (Uuid, String, PersonaRef, PersonaRoute);

/// A body is served without looking at the segment row for this long after
/// its stamp was last checked. So a recomputation or an erasure made through
/// another server process shows there within this time (this process
/// forgets its bodies at once on an erasure).
pub(crate) const ROUTE_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);
/// Plain bodies held at most; their gzip forms add a fraction of that (ids
/// and scores compress several times over).
const ROUTE_CACHE_BYTES: usize = 64 << 20;

/// A rendered response: the JSON, and its gzip form once someone asked.
pub struct Rendered {
    plain: Bytes,
    gzip: OnceLock<Bytes>,
}

impl Rendered {
    pub(crate) fn new(plain: Bytes) -> Arc<Rendered> {
        Arc::new(Rendered {
            plain,
            gzip: OnceLock::new(),
        })
    }

    pub fn plain(&self) -> Bytes {
        self.plain.clone()
    }

    /// The body gzipped, compressed on the first call only: a cached body is
    /// compressed once per segment state, not once per request.
    pub fn gzip(&self) -> Bytes {
        self.gzip
            .get_or_init(|| {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                // Writing into a Vec cannot fail.
                encoder.write_all(&self.plain).expect("gzip into memory");
                Bytes::from(encoder.finish().expect("gzip into memory"))
            })
            .clone()
    }
}

/// Rendered persona route responses (the whole envelope), reused while the
/// segment's stamp is unchanged: a hit costs no database read at all, a
/// recheck one primary-key read, never a scan of the members. Bounded by size.
#[derive(Default)]
pub struct RouteCache {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    bytes: usize,
    bodies: HashMap<RouteKey, Entry>,
}

struct Entry {
    stamp: Stamp,
    checked: Instant,
    body: Arc<Rendered>,
}

impl RouteCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A body whose stamp was checked within [`ROUTE_RECHECK`].
    pub(crate) fn recent(&self, key: &RouteKey) -> Option<Arc<Rendered>> {
        let entries = self.entries();
        let entry = entries.bodies.get(key)?;
        (entry.checked.elapsed() < ROUTE_RECHECK).then(|| entry.body.clone())
    }

    /// A body rendered from a segment row with this stamp.
    pub(crate) fn current(&self, key: &RouteKey, stamp: &Stamp) -> Option<Arc<Rendered>> {
        let mut entries = self.entries();
        let entry = entries.bodies.get_mut(key).filter(|e| e.stamp == *stamp)?;
        entry.checked = Instant::now();
        Some(entry.body.clone())
    }

    pub(crate) fn put(&self, key: RouteKey, stamp: Stamp, body: Arc<Rendered>) {
        let mut entries = self.entries();
        if entries.bytes + body.plain.len() > ROUTE_CACHE_BYTES {
            *entries = Entries::default();
        }
        entries.bytes += body.plain.len();
        let entry = Entry {
            stamp,
            checked: Instant::now(),
            body,
        };
        if let Some(old) = entries.bodies.insert(key, entry) {
            entries.bytes -= old.body.plain.len();
        }
    }

    /// Forgets every body of a workspace (after an erasure).
    pub(crate) fn forget_workspace(&self, ws: Uuid) {
        let mut entries = self.entries();
        entries.bodies.retain(|k, _| k.0 != ws);
        entries.bytes = entries.bodies.values().map(|e| e.body.plain.len()).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gzip_form_inflates_to_the_body_and_is_made_once() {
        let plain = Bytes::from(format!(
            "{{\"ids\":[{}]}}",
            (0..5000)
                .map(|i| format!("\"p{i}\""))
                .collect::<Vec<_>>()
                .join(",")
        ));
        let rendered = Rendered::new(plain.clone());
        let gz = rendered.gzip();
        assert!(
            gz.len() * 3 < plain.len(),
            "{} of {}",
            gz.len(),
            plain.len()
        );
        let mut inflated = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut inflated)
            .unwrap();
        assert_eq!(inflated, plain);
        // The same allocation: compressed once.
        assert_eq!(rendered.gzip().as_ptr(), gz.as_ptr());
    }
}
