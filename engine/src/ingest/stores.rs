//! The object store behind each kind of source, built under the outbound
//! policy (bucket endpoints) or confined to the workspace's own folder
//! (local sources), and the sealing of bucket credentials.

use std::{path::PathBuf, sync::Arc};

use object_store::{ObjectStore, local::LocalFileSystem};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;

use entity::data_sources;

use super::sources::SourceKind;
use crate::{Engine, Error, Result, secrets};

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

impl Engine {
    fn local_root(&self) -> Result<PathBuf> {
        let root = self.local_source_root.as_ref().ok_or_else(|| {
            Error::invalid(
                "kind",
                "local sources are disabled: the server has no LOCAL_SOURCE_ROOT",
            )
        })?;
        root.canonicalize()
            .map_err(|e| Error::Unavailable(format!("LOCAL_SOURCE_ROOT {}: {e}", root.display())))
    }

    /// The folder of a local source; anything outside LOCAL_SOURCE_ROOT is refused.
    fn local_folder(&self, config: &Value) -> Result<PathBuf> {
        let root = self.local_root()?;
        let path = config_str(config, "path")
            .ok_or_else(|| Error::invalid("config.path", "is required"))?;
        let folder = root
            .join(path.trim_start_matches('/'))
            .canonicalize()
            .map_err(|e| {
                Error::invalid("config.path", format!("'{path}' cannot be opened: {e}"))
            })?;
        if !folder.starts_with(&root) || !folder.is_dir() {
            return Err(Error::invalid(
                "config.path",
                format!("'{path}' is not a folder inside LOCAL_SOURCE_ROOT"),
            ));
        }
        Ok(folder)
    }

    /// The object store of a source; settings it cannot work with are
    /// refused (at creation too) with the field at fault.
    pub(crate) fn object_store(
        &self,
        source: &data_sources::Model,
    ) -> Result<Arc<dyn ObjectStore>> {
        let config = &source.config;
        let required = |key: &str| {
            config_str(config, key)
                .ok_or_else(|| Error::invalid(format!("config.{key}"), "is required"))
        };
        let credentials = self.open_credentials(source)?;
        let secret = |key: &str| {
            credentials
                .as_ref()
                .and_then(|c| c.get(key))
                .filter(|v| !v.is_null() && v.as_str() != Some(""))
        };
        let secret_str = |key: &str| {
            secret(key)
                .and_then(Value::as_str)
                .ok_or_else(|| Error::invalid(format!("credentials.{key}"), "is required"))
        };
        // Emulators and private endpoints speak plain HTTP; public clouds never do.
        let plain_http = |url: &str| url.starts_with("http://");
        match SourceKind::parse(&source.kind) {
            Some(SourceKind::Local) => {
                let folder = self.local_folder(config)?;
                Ok(Arc::new(
                    LocalFileSystem::new_with_prefix(folder)
                        .map_err(|e| Error::Unavailable(e.to_string()))?,
                ))
            }
            Some(SourceKind::S3) => {
                let mut builder = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(required("bucket")?)
                    .with_region(config_str(config, "region").unwrap_or("us-east-1"))
                    .with_access_key_id(secret_str("access_key_id")?)
                    .with_secret_access_key(secret_str("secret_access_key")?);
                if let Some(endpoint) = config_str(config, "endpoint") {
                    // S3-compatible stores and emulators; path-style addressing is the default.
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(plain_http(endpoint));
                }
                built(builder.build())
            }
            Some(SourceKind::Gcs) => {
                // The service-account JSON, as an object or as its text.
                let account = match secret("service_account") {
                    Some(Value::String(text)) => {
                        serde_json::from_str::<Value>(text).map_err(|e| {
                            Error::invalid(
                                "credentials.service_account",
                                format!("is not JSON: {e}"),
                            )
                        })?
                    }
                    Some(v @ Value::Object(_)) => v.clone(),
                    _ => {
                        return Err(Error::invalid(
                            "credentials.service_account",
                            "is required (the service-account JSON)",
                        ));
                    }
                };
                // `gcs_base_url` in the account points it at another endpoint (an emulator).
                let base = account
                    .get("gcs_base_url")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let builder = object_store::gcp::GoogleCloudStorageBuilder::new()
                    .with_bucket_name(required("bucket")?)
                    .with_service_account_key(account.to_string())
                    .with_client_options(
                        object_store::ClientOptions::new().with_allow_http(plain_http(base)),
                    );
                built(builder.build())
            }
            Some(SourceKind::Azure) => {
                use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
                let mut builder = MicrosoftAzureBuilder::new()
                    .with_account(required("account")?)
                    .with_container_name(required("container")?);
                builder = match (secret("sas_token"), secret("access_key")) {
                    (Some(_), _) => builder.with_config(
                        AzureConfigKey::SasKey,
                        secret_str("sas_token")?.trim_start_matches('?'),
                    ),
                    (None, Some(_)) => builder.with_access_key(secret_str("access_key")?),
                    (None, None) => {
                        return Err(Error::invalid(
                            "credentials.sas_token",
                            "is required (or credentials.access_key)",
                        ));
                    }
                };
                if let Some(endpoint) = config_str(config, "endpoint") {
                    // The account URL, e.g. Azurite's http://127.0.0.1:10000/devstoreaccount1.
                    builder = builder
                        .with_endpoint(endpoint.to_owned())
                        .with_allow_http(plain_http(endpoint));
                }
                built(builder.build())
            }
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
