//! The two macros behind every fixed-text enum of the project.

/// Declares a fieldless enum with its text form: `ALL`, `as_str`, `parse`
/// (None for unknown text) and `expected` (the accepted values, for messages).
#[macro_export]
macro_rules! text_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }

            /// The accepted values, comma-separated.
            pub fn expected() -> String {
                [$($text),+].join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A [`text_enum!`] that is also a column type (stored as its text; reading
/// an unknown text fails in the database layer, never later) and serialized
/// as its text.
#[macro_export]
macro_rules! stored_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $crate::text_enum! {
            $(#[$meta])*
            #[derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum, serde::Serialize, serde::Deserialize)]
            #[sea_orm(rs_type = "String", db_type = "Text")]
            $vis enum $name { $($(#[$vmeta])* #[sea_orm(string_value = $text)] #[serde(rename = $text)] $variant => $text),+ }
        }
    };
}
