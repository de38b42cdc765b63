//! The lengths names, descriptions and filter trees are held to, checked in
//! one place so every entity refuses the same input the same way (422
//! naming the field). Request bodies as a whole are bounded by the server
//! (`MAX_BODY_BYTES`).

use serde_json::Value;

use crate::{Error, Result, slug::slugify};

/// Characters of a display name (traits, segments, sources, keys, surveys).
pub const MAX_NAME_CHARS: usize = 200;
/// Characters of a description.
pub const MAX_DESCRIPTION_CHARS: usize = 5_000;
/// Bytes of a segment's filter tree, as JSON.
pub const MAX_FILTER_BYTES: usize = 64 * 1024;

/// A display name: trimmed, 1 to [`MAX_NAME_CHARS`] characters.
pub fn name(value: &str, field: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > MAX_NAME_CHARS {
        return Err(Error::invalid(
            field,
            format!("must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// A name the slug is derived from: also at least one letter or digit.
pub fn sluggable_name(value: &str, field: &str) -> Result<String> {
    let value = value.trim();
    if slugify(value).is_empty() || value.chars().count() > MAX_NAME_CHARS {
        return Err(Error::invalid(
            field,
            format!("must be 1 to {MAX_NAME_CHARS} characters with at least one letter or digit"),
        ));
    }
    Ok(value.to_owned())
}

/// A description: at most [`MAX_DESCRIPTION_CHARS`] characters.
pub fn description(value: String, field: &str) -> Result<String> {
    if value.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(value)
}

/// A filter tree: at most [`MAX_FILTER_BYTES`] as JSON.
pub fn filter(value: &Value, field: &str) -> Result<()> {
    if value.to_string().len() > MAX_FILTER_BYTES {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_FILTER_BYTES} bytes of JSON"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_their_field() {
        assert_eq!(name("  Whales ", "name").unwrap(), "Whales");
        assert_eq!(name("", "name").unwrap_err().field(), Some("name"));
        assert!(
            name(&"é".repeat(200), "name").is_ok(),
            "characters, not bytes"
        );
        assert!(name(&"x".repeat(201), "name").is_err());
        assert!(sluggable_name("!!!", "name").is_err());
        assert!(description("d".repeat(5_000), "description").is_ok());
        let e = description("d".repeat(5_001), "description").unwrap_err();
        assert_eq!(e.field(), Some("description"));
        let big = Value::String("x".repeat(MAX_FILTER_BYTES));
        assert_eq!(filter(&big, "filter").unwrap_err().field(), Some("filter"));
    }
}
