//! Parsing a plugin's config, as `init` does.

use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::Plugin;

/// Parses a plugin config from JSON, the way the SDK's `init` does.
///
/// An empty document (or `null`) counts as `{}`. Errors name the offending
/// setting, e.g. `invalid config: rules[0].backend: invalid type: ...`.
///
/// ```
/// #[derive(serde::Deserialize)]
/// #[serde(default, deny_unknown_fields)]
/// struct Config { greeting: String }
/// impl Default for Config {
///     fn default() -> Self { Config { greeting: "world".into() } }
/// }
///
/// let config: Config = lacquer_plugin_sdk::parse_config("").unwrap();
/// assert_eq!(config.greeting, "world");
/// let err = lacquer_plugin_sdk::parse_config::<Config>(r#"{"greting": "x"}"#).err().unwrap();
/// assert!(err.contains("unknown field `greting`"));
/// ```
pub fn parse_config<C: serde::de::DeserializeOwned>(json: &str) -> Result<C, String> {
    let json = match json.trim() {
        "" | "null" => "{}",
        other => other,
    };
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let config: C = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        if path == "." {
            format!("invalid config: {}", err.inner())
        } else {
            format!("invalid config: {path}: {}", err.inner())
        }
    })?;
    deserializer
        .end()
        .map_err(|err| format!("invalid config: {err}"))?;
    Ok(config)
}

/// Makes a plugin from its JSON config, as the host's `init` call does:
/// [`parse_config`], then [`Plugin::new`]. Handy in unit tests.
pub fn instantiate<P: Plugin>(config_json: &str) -> Result<P, String> {
    P::new(parse_config(config_json)?)
}

/// The config of a plugin without settings: only `{}` (or no table) is
/// accepted, any key is an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

/// Deserializes a duration given either as a human-readable string
/// ("250ms", "2s", "1m 30s") or as a whole number of seconds.
///
/// Use it with `#[serde(deserialize_with = "lacquer_plugin_sdk::config::duration")]`.
///
/// ```
/// use std::time::Duration;
///
/// #[derive(serde::Deserialize)]
/// struct Config {
///     #[serde(deserialize_with = "lacquer_plugin_sdk::config::duration")]
///     ttl: Duration,
/// }
/// let a: Config = lacquer_plugin_sdk::parse_config(r#"{"ttl": "1m 30s"}"#).unwrap();
/// let b: Config = lacquer_plugin_sdk::parse_config(r#"{"ttl": 90}"#).unwrap();
/// assert_eq!(a.ttl, Duration::from_secs(90));
/// assert_eq!(b.ttl, Duration::from_secs(90));
/// ```
pub fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }
    match Raw::deserialize(deserializer).map_err(|_| {
        de::Error::custom("expected a duration: whole seconds or a string like \"250ms\" or \"2s\"")
    })? {
        Raw::Seconds(secs) => Ok(Duration::from_secs(secs)),
        Raw::Text(text) => humantime::parse_duration(&text)
            .map_err(|err| de::Error::custom(format!("invalid duration {text:?}: {err}"))),
    }
}
