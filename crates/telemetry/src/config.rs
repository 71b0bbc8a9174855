//! Settings from environment variables, with errors that name the variable.

use std::str::FromStr;

use thiserror::Error;

/// A setting that is present but unusable.
#[derive(Debug, Error)]
#[error("environment variable {name}={value:?} is invalid: {why}")]
pub struct ConfigError {
    /// The variable's name.
    pub name: String,
    /// Its value as found.
    pub value: String,
    /// Why it was refused.
    pub why: String,
}

/// The variable's value, or `default` when it is unset or empty.
pub fn env_or(name: &str, default: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => default.to_string(),
    }
}

/// The variable parsed as `T`, or `default` when unset or empty.
pub fn env_parse<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v.parse().map_err(|e: T::Err| ConfigError {
            name: name.into(),
            value: v.clone(),
            why: e.to_string(),
        }),
        _ => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_name_the_variable() {
        std::env::set_var("RICOCHET_TEST_PORT_X", "eighty");
        let err = env_parse::<u16>("RICOCHET_TEST_PORT_X", 80).unwrap_err();
        assert!(err.to_string().contains("RICOCHET_TEST_PORT_X"));
        assert_eq!(env_parse::<u16>("RICOCHET_TEST_UNSET_Y", 80).unwrap(), 80);
        assert_eq!(env_or("RICOCHET_TEST_UNSET_Y", "d"), "d");
    }
}
