//! Enums stored and exchanged as fixed lower-case text.

/// Declares a fieldless enum with its text form: `ALL`, `as_str`, `parse`
/// (None for unknown text) and `expected` (the accepted values, for messages).
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
    };
}

pub(crate) use text_enum;
