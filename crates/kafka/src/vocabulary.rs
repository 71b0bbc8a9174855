//! The closed sets of words Ricochet's records, tables and APIs use:
//! complaint codes, tiers, reputation levels and the rules that move a tier.
//! Each is an enum with its wire name (`as_str`, `Display`, serde) and a
//! strict `FromStr` whose error lists the accepted names; an unknown name is
//! an error everywhere, never a default.

use serde::{Deserialize, Serialize};

/// Declares a wire enum: variants with their names, `ALL`, `as_str`,
/// `Display`, serde by name, and `FromStr` failing with `$unknown`.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $unknown:ident, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $wire)] $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$($wire),+].len()] = [$($name::$variant),+];

            /// The name on the wire and in the tables.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $wire ),+
                }
            }

            /// The position in [`ALL`](Self::ALL) (a small id for tables in memory).
            pub fn index(self) -> usize {
                self as usize
            }

            /// Every name, comma-separated (for error messages and help).
            pub fn list() -> String {
                Self::ALL.map(Self::as_str).join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        #[doc = concat!("A name that is not a ", $what, ".")]
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[error("unknown {} {:?} (expected one of {})", $what, .0, $name::list())]
        pub struct $unknown(pub String);

        impl std::str::FromStr for $name {
            type Err = $unknown;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| $unknown(s.to_string()))
            }
        }
    };
}

wire_enum! {
    /// What the user said about a message: the `code` a provider sends.
    ComplaintCode, UnknownCode, "complaint code" {
        /// The user did not want it (the usual "report spam").
        Unwanted = "unwanted",
        /// It pretended to be something it is not.
        Misrepresented = "misrepresented",
        /// It broke the provider's policy.
        PolicyViolation = "policy-violation",
        /// It tried to steal credentials or money.
        Phishing = "phishing",
        /// The user had unsubscribed and still got it.
        UnsubscribeIgnored = "unsubscribe-ignored",
        /// The user said it was wanted after all: the positive signal.
        NotSpam = "not-spam",
    }
}

impl ComplaintCode {
    /// Whether the user said the mail was wanted.
    pub fn is_positive(self) -> bool {
        self == ComplaintCode::NotSpam
    }
}

wire_enum! {
    /// Penalty tiers, in increasing severity (`Ord` follows severity).
    Tier, UnknownTier, "tier" {
        /// Nothing to report.
        Ok = "ok",
        /// Complaints approach the limits mailbox providers enforce.
        Warning = "warning",
        /// The ESP should slow this sender down.
        Throttle = "throttle",
        /// The ESP should stop this sender until reviewed.
        Suspend = "suspend",
        /// The sender should not send through any participating ESP.
        Exclude = "exclude",
    }
}

wire_enum! {
    /// The level of a reputation, standing or penalty row: what a figure is
    /// about. A sender id is chosen by its ESP, so a spammer can rename
    /// itself; the levels above it aggregate what renaming cannot escape.
    /// In the tables the `sender` column holds the key at that level
    /// (see [`Level::key_name`]).
    Level, UnknownLevel, "reputation level" {
        /// One sender id of one ESP: `(esp, sender)`.
        Sender = "sender",
        /// All of one ESP's mail: `(esp)`, key empty.
        Esp = "esp",
        /// One campaign of one ESP across every sender id that carries it: `(esp, campaign)`.
        Campaign = "campaign",
        /// One From domain (token `dom`) across every ESP: `(domain)`, ESP empty.
        Domain = "domain",
    }
}

impl Level {
    /// What the key of a row at this level names.
    pub fn key_name(self) -> &'static str {
        match self {
            Level::Sender => "sender id",
            Level::Esp => "nothing (the ESP itself)",
            Level::Campaign => "campaign id",
            Level::Domain => "From domain",
        }
    }
}

wire_enum! {
    /// Why a tier changed (the `rule` of a penalty entry).
    Rule, UnknownRule, "rule" {
        /// The lower bound reached a higher tier's threshold.
        RiseOnLowerBound = "rise-on-lower-bound",
        /// The evidence stayed below the tier for the whole cool-down.
        FallAfterCoolDown = "fall-after-cool-down",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for l in Level::ALL {
            assert_eq!(l.as_str().parse::<Level>(), Ok(l));
            assert_eq!(serde_json::to_value(l).unwrap(), l.as_str());
        }
        for t in Tier::ALL {
            assert_eq!(
                serde_json::from_value::<Tier>(t.as_str().into()).unwrap(),
                t
            );
        }
        assert_eq!("dom".parse::<Level>(), Err(UnknownLevel("dom".into())));
        let e = "spam".parse::<ComplaintCode>().unwrap_err().to_string();
        assert!(
            e.contains("\"spam\" (expected one of unwanted, misrepresented"),
            "{e}"
        );
        assert!(Tier::Ok < Tier::Warning && Tier::Suspend < Tier::Exclude);
        assert_eq!(Rule::FallAfterCoolDown.to_string(), "fall-after-cool-down");
        assert!(serde_json::from_value::<Tier>("bad".into()).is_err());
    }
}
