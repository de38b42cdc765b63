//! Enums exchanged as fixed text but not stored (the stored ones live in
//! `entity::states`); one macro for both.

pub(crate) use entity::text_enum;
