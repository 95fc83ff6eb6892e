//! Small macros shared by the model modules.

/// Defines a string enumeration: serde names, `as_str` and parsing from the
/// database's text.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// The spelling used in Statuspage's JSON and in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::StoreError;

            fn from_str(s: &str) -> Result<Self, $crate::StoreError> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err($crate::StoreError::Corrupt(format!(
                        concat!(stringify!($name), " {:?}"),
                        other
                    ))),
                }
            }
        }
    };
}
