//! Slugs: lower-case ASCII words joined by `_` (`Total Purchases` → `total_purchases`).

pub fn slugify(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for ch in name.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// A client-chosen slug, which must already be in slug form.
pub fn validate<'a>(slug: &'a str, field: &str) -> crate::Result<&'a str> {
    if slug.is_empty() || slug.len() > 100 || slugify(slug) != slug {
        return Err(crate::Error::invalid(
            field,
            "must be lower-case letters and digits joined by `_` (at most 100 characters)",
        ));
    }
    Ok(slug)
}

#[cfg(test)]
mod tests {
    use super::slugify;

    #[test]
    fn words_become_snake_case() {
        assert_eq!(slugify("Total Purchases"), "total_purchases");
        assert_eq!(slugify("  LTV (30 days)!  "), "ltv_30_days");
        assert_eq!(slugify("Ünïcode only"), "n_code_only");
        assert_eq!(slugify("!!!"), "");
    }
}
