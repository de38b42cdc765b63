//! The object store behind each kind of source, built under the outbound
//! policy (bucket endpoints) or confined to the workspace's own folder
//! (local sources), and the sealing of bucket credentials.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use object_store::{ObjectStore, local::LocalFileSystem};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use uuid::Uuid;

use entity::data_sources;

use crate::{Engine, Error, Result, secrets};
use entity::states::SourceKind;

/// A built store, or the builder's complaint about the settings.
fn built<S: ObjectStore>(store: object_store::Result<S>) -> Result<Arc<dyn ObjectStore>> {
    match store {
        Ok(s) => Ok(Arc::new(s)),
        Err(e) => Err(Error::invalid("config", e.to_string())),
    }
}

pub(super) fn config_str<'a>(config: &'a Value, key: &str) -> Option<&'a str> {
    config
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Checks a bucket, container, account or region name against its pattern:
/// lower-case letters, digits and the separators `extra` allows, `len` long,
/// starting and ending with a letter or digit. Names go into host names and
/// paths, so nothing else is let through.
fn name_field(
    config: &Value,
    key: &str,
    extra: &[char],
    len: std::ops::RangeInclusive<usize>,
) -> Result<String> {
    let value = config_str(config, key)
        .ok_or_else(|| Error::invalid(format!("config.{key}"), "is required"))?;
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let fits = len.contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(&c))
        && edge(value.chars().next())
        && edge(value.chars().last());
    if !fits {
        let allowed: String = extra.iter().map(|c| format!(" `{c}`")).collect();
        return Err(Error::invalid(
            format!("config.{key}"),
            format!(
                "'{value}' is not a valid name: {}–{} lower-case letters, digits{allowed}, starting and ending with a letter or digit",
                len.start(),
                len.end()
            ),
        ));
    }
    Ok(value.to_owned())
}

/// What a workspace may read of a local folder: regular files reached
/// without following a symbolic link (a file or any folder on the way).
fn plain_path(folder: &Path, relative: &str) -> std::io::Result<bool> {
    let mut at = folder.to_path_buf();
    for part in relative.split('/').filter(|p| !p.is_empty()) {
        at.push(part);
        if std::fs::symlink_metadata(&at)?.file_type().is_symlink() {
            return Ok(false);
        }
    }
    Ok(std::fs::symlink_metadata(&at)?.is_file())
}

/// What a failed store request tells the workspace: the host, and the HTTP
/// status with the provider's error code (a bare word such as `NoSuchBucket`)
/// or the kind of transport failure, never the body the remote sent, which
/// may come from a server the workspace should not read.
pub(crate) fn store_failure(e: &object_store::Error) -> String {
    use object_store::client::HttpError;
    let (mut host, mut status, mut code, mut transport) = (None, None, None, None);
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        let text = err.to_string();
        if let Some(rest) = text.strip_prefix("Error performing ") {
            host = rest
                .split_whitespace()
                .nth(1)
                .and_then(|u| reqwest::Url::parse(u).ok())
                .and_then(|u| {
                    u.host_str()
                        .map(|h| u.port().map_or(h.to_owned(), |p| format!("{h}:{p}")))
                });
        }
        if let Some(rest) = text.strip_prefix("Server returned non-2xx status code: ") {
            status = rest.split(": ").next().map(str::to_owned);
            code = provider_code(rest);
        } else if let Some(rest) = text.strip_prefix("Server returned error response: ") {
            status = Some("an error response".to_owned());
            code = provider_code(rest);
        }
        // The outbound policy's refusal is ours to show; otherwise the kind only.
        if let Some(reason) = crate::outbound::refusal(err) {
            transport = Some(reason);
        } else if let Some(http) = err.downcast_ref::<HttpError>()
            && transport.is_none()
        {
            transport = Some(format!("{:?} failure", http.kind()).to_lowercase());
        }
        current = err.source();
    }
    let Some(host) = host else {
        // No HTTP request was made (a local folder, a bad setting): our own words.
        return e.to_string();
    };
    match (status, transport) {
        (Some(status), _) => match code {
            Some(code) => format!("{host} answered {status} ({code})"),
            None => format!("{host} answered {status}"),
        },
        (None, Some(reason)) => format!("{host} could not be reached: {reason}"),
        (None, None) => format!("{host}: the request failed"),
    }
}

/// The error code a provider put in its error body (`<Code>…</Code>` in S3
/// and Azure XML, `"code": "…"` in JSON), when it is one bare word.
fn provider_code(body: &str) -> Option<String> {
    let xml = body
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code);
    let json = || {
        body.split_once("\"code\"")
            .and_then(|(_, rest)| rest.trim_start().strip_prefix(':'))
            .and_then(|rest| rest.trim_start().strip_prefix('"'))
            .and_then(|rest| rest.split_once('"'))
            .map(|(code, _)| code)
    };
    xml.or_else(json)
        .filter(|c| (1..=64).contains(&c.len()) && c.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(str::to_owned)
}

/// A source's credentials in clear, read by name (empty values are absent).
#[derive(Clone, Copy)]
struct Secrets<'a>(Option<&'a Value>);

impl<'a> Secrets<'a> {
    fn get(self, key: &str) -> Option<&'a Value> {
        self.0
            .and_then(|c| c.get(key))
            .filter(|v| !v.is_null() && v.as_str() != Some(""))
    }

    fn text(self, key: &str) -> Result<&'a str> {
        self.get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| Error::invalid(format!("credentials.{key}"), "is required"))
    }
}

/// A failing store request (a 5xx, a dropped connection) is tried again a
/// few times within 8 s — long enough for a passing fault, short enough
/// that `testDataSource` (10 s) reports the store's own answer, and the
/// next scan tries again anyway. object_store's default retries for minutes.
fn store_retries() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: std::time::Duration::from_millis(100),
            max_backoff: std::time::Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(8),
    }
}

/// Emulators and private endpoints speak plain HTTP; public clouds never do.
fn plain_http(url: &str) -> bool {
    url.starts_with("http://")
}

impl Engine {
    /// The workspace's own folder under LOCAL_SOURCE_ROOT (created when missing).
    pub fn workspace_folder(&self, workspace_id: Uuid) -> Result<PathBuf> {
        let root = self.local_source_root.as_ref().ok_or_else(|| {
            Error::invalid(
                "kind",
                "local sources are disabled: the server has no LOCAL_SOURCE_ROOT",
            )
        })?;
        let root = root.canonicalize().map_err(|e| {
            Error::Unavailable(format!("LOCAL_SOURCE_ROOT {}: {e}", root.display()))
        })?;
        let folder = root.join(workspace_id.to_string());
        std::fs::create_dir_all(&folder).map_err(|e| {
            Error::Unavailable(format!("LOCAL_SOURCE_ROOT {}: {e}", folder.display()))
        })?;
        Ok(folder)
    }

    /// The folder of a local source: `path` inside the workspace's own folder
    /// (`LOCAL_SOURCE_ROOT/<workspace id>/`); anything else is refused, and
    /// so is a path through a symbolic link.
    fn local_folder(&self, workspace_id: Uuid, config: &Value) -> Result<PathBuf> {
        let own = self.workspace_folder(workspace_id)?;
        let path = config_str(config, "path")
            .ok_or_else(|| Error::invalid("config.path", "is required"))?;
        let outside = || {
            Error::invalid(
                "config.path",
                format!(
                    "'{path}' is not a folder inside this workspace's folder (LOCAL_SOURCE_ROOT/{workspace_id}/)"
                ),
            )
        };
        let mut folder = own.clone();
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            if part == ".." {
                return Err(outside());
            }
            folder.push(part);
            let meta = std::fs::symlink_metadata(&folder).map_err(|e| {
                Error::invalid("config.path", format!("'{path}' cannot be opened: {e}"))
            })?;
            if meta.file_type().is_symlink() {
                return Err(Error::invalid(
                    "config.path",
                    format!(
                        "'{path}' goes through a symbolic link, which local sources never follow"
                    ),
                ));
            }
        }
        let canonical = folder.canonicalize().map_err(|e| {
            Error::invalid("config.path", format!("'{path}' cannot be opened: {e}"))
        })?;
        if !canonical.starts_with(&own) || !canonical.is_dir() {
            return Err(outside());
        }
        Ok(canonical)
    }

    /// For a local source: whether the object at `path` (relative to its
    /// folder) may be read; a symbolic link on the way refuses it.
    pub(crate) fn readable_local_file(
        &self,
        source: &data_sources::Model,
        path: &str,
    ) -> Result<bool> {
        if source.kind != SourceKind::Local {
            return Ok(true);
        }
        let folder = self.local_folder(source.workspace_id, &source.config)?;
        plain_path(&folder, path).map_err(|e| Error::Unavailable(format!("{path}: {e}")))
    }

    /// The object store of a source; settings it cannot work with are
    /// refused (at creation too) with the field at fault. Bucket endpoints
    /// go through the outbound policy, at creation and at every request.
    pub(crate) fn object_store(
        &self,
        source: &data_sources::Model,
    ) -> Result<Arc<dyn ObjectStore>> {
        let config = &source.config;
        let credentials = self.open_credentials(source)?;
        let secrets = Secrets(credentials.as_ref());
        match Some(source.kind) {
            Some(SourceKind::Local) => {
                let folder = self.local_folder(source.workspace_id, config)?;
                Ok(Arc::new(
                    LocalFileSystem::new_with_prefix(folder)
                        .map_err(|e| Error::Unavailable(e.to_string()))?,
                ))
            }
            Some(SourceKind::S3) => self.s3_store(config, secrets),
            Some(SourceKind::Gcs) => self.gcs_store(config, secrets),
            Some(SourceKind::Azure) => self.azure_store(config, secrets),
            None => Err(Error::invalid(
                "kind",
                format!(
                    "'{}' is not one of: {}",
                    source.kind,
                    SourceKind::expected()
                ),
            )),
        }
    }

    /// A workspace's endpoint URL, checked by the outbound policy.
    fn endpoint(&self, field: &str, url: &str) -> Result<String> {
        self.outbound.check_url(field, url)?;
        Ok(url.trim().to_owned())
    }

    fn s3_store(&self, config: &Value, secrets: Secrets<'_>) -> Result<Arc<dyn ObjectStore>> {
        let region = match config_str(config, "region") {
            Some(_) => name_field(config, "region", &['-'], 2..=32)?,
            None => "us-east-1".to_owned(),
        };
        let mut builder = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(name_field(config, "bucket", &['-', '.'], 3..=63)?)
            .with_region(region)
            .with_access_key_id(secrets.text("access_key_id")?)
            .with_secret_access_key(secrets.text("secret_access_key")?)
            .with_http_connector(self.outbound.store_connector(self.storage_timeout))
            .with_retry(store_retries());
        if let Some(url) = config_str(config, "endpoint") {
            // S3-compatible stores and emulators; path-style addressing is the default.
            builder = builder
                .with_endpoint(self.endpoint("config.endpoint", url)?)
                .with_allow_http(plain_http(url));
        }
        built(builder.build())
    }

    fn gcs_store(&self, config: &Value, secrets: Secrets<'_>) -> Result<Arc<dyn ObjectStore>> {
        // The service-account JSON, as an object or as its text.
        let account = match secrets.get("service_account") {
            Some(Value::String(text)) => serde_json::from_str::<Value>(text).map_err(|e| {
                Error::invalid("credentials.service_account", format!("is not JSON: {e}"))
            })?,
            Some(v @ Value::Object(_)) => v.clone(),
            _ => {
                return Err(Error::invalid(
                    "credentials.service_account",
                    "is required (the service-account JSON)",
                ));
            }
        };
        // `gcs_base_url` in the account points it at another endpoint
        // (an emulator); it and the token URL are called like any endpoint.
        for key in ["gcs_base_url", "token_uri"] {
            if let Some(url) = account.get(key).and_then(Value::as_str) {
                self.endpoint(&format!("credentials.service_account.{key}"), url)?;
            }
        }
        let base = account
            .get("gcs_base_url")
            .and_then(Value::as_str)
            .unwrap_or("");
        let builder = object_store::gcp::GoogleCloudStorageBuilder::new()
            .with_bucket_name(name_field(config, "bucket", &['-', '.', '_'], 3..=222)?)
            .with_service_account_key(account.to_string())
            .with_client_options(
                object_store::ClientOptions::new().with_allow_http(plain_http(base)),
            )
            .with_http_connector(self.outbound.store_connector(self.storage_timeout))
            .with_retry(store_retries());
        built(builder.build())
    }

    fn azure_store(&self, config: &Value, secrets: Secrets<'_>) -> Result<Arc<dyn ObjectStore>> {
        use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
        let mut builder = MicrosoftAzureBuilder::new()
            .with_account(name_field(config, "account", &[], 3..=24)?)
            .with_container_name(name_field(config, "container", &['-'], 3..=63)?)
            .with_http_connector(self.outbound.store_connector(self.storage_timeout))
            .with_retry(store_retries());
        builder = match (secrets.get("sas_token"), secrets.get("access_key")) {
            (Some(_), _) => builder.with_config(
                AzureConfigKey::SasKey,
                secrets.text("sas_token")?.trim_start_matches('?'),
            ),
            (None, Some(_)) => builder.with_access_key(secrets.text("access_key")?),
            (None, None) => {
                return Err(Error::invalid(
                    "credentials.sas_token",
                    "is required (or credentials.access_key)",
                ));
            }
        };
        if let Some(url) = config_str(config, "endpoint") {
            // The account URL, e.g. Azurite's http://127.0.0.1:10000/devstoreaccount1.
            builder = builder
                .with_endpoint(self.endpoint("config.endpoint", url)?)
                .with_allow_http(plain_http(url));
        }
        built(builder.build())
    }

    /// The source's credentials in clear, for building its store only.
    fn open_credentials(&self, source: &data_sources::Model) -> Result<Option<Value>> {
        let Some(stored) = &source.credentials else {
            return Ok(None);
        };
        match &self.secrets {
            Some(key) => key.open(source.id, stored).map(Some),
            None if secrets::is_sealed(stored) => Err(Error::Unavailable(
                "the source's credentials are sealed and this process has no SECRETS_KEY".into(),
            )),
            None => Ok(Some(stored.clone())),
        }
    }

    /// Seals credentials given in clear before they are stored.
    pub(super) fn seal_credentials(&self, source: &mut data_sources::Model) -> Result<()> {
        let Some(plain) = source
            .credentials
            .as_ref()
            .filter(|c| !secrets::is_sealed(c))
        else {
            return Ok(());
        };
        let key = self.secrets.as_ref().ok_or_else(|| {
            Error::Unavailable(
                "SECRETS_KEY is not set: this server cannot store credentials \
                 (give every api and worker process the same 32 random bytes in base64)"
                    .into(),
            )
        })?;
        source.credentials = Some(key.seal(source.id, plain)?);
        Ok(())
    }

    /// Seals with the current key the credentials that versions before
    /// sealing stored in clear, and those sealed with `SECRETS_KEY_PREVIOUS`;
    /// run at migration. Without a key clear ones stay, with a warning.
    pub(crate) async fn seal_stored_credentials(&self) -> Result<()> {
        let stored = data_sources::Entity::find()
            .filter(data_sources::Column::Credentials.is_not_null())
            .all(&self.db)
            .await?;
        let Some(key) = &self.secrets else {
            let clear = stored
                .iter()
                .filter(|s| {
                    s.credentials
                        .as_ref()
                        .is_some_and(|c| !secrets::is_sealed(c))
                })
                .count();
            if clear > 0 {
                tracing::warn!(
                    sources = clear,
                    "bucket credentials are stored in clear: set SECRETS_KEY to seal them"
                );
            }
            return Ok(());
        };
        for source in stored {
            let Some(credentials) = &source.credentials else {
                continue;
            };
            if !key.needs_sealing(source.id, credentials) {
                continue;
            }
            let sealed = match key.open(source.id, credentials) {
                Ok(plain) => key.seal(source.id, &plain)?,
                Err(e) => {
                    // Left for the operator: scans of it fail with the same message.
                    tracing::warn!(source = %source.id, error = %e, "credentials not sealed again");
                    continue;
                }
            };
            data_sources::ActiveModel {
                id: Set(source.id),
                credentials: Set(Some(sealed)),
                ..Default::default()
            }
            .update(&self.db)
            .await?;
        }
        Ok(())
    }
}
