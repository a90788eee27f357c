//! The default plugin bundle, embedded in the binary by `build.rs`: its
//! names (checked by the config) and code (loaded by the plugin runtime).

mod generated {
    include!(concat!(env!("OUT_DIR"), "/bundle.rs"));
}

/// Names of the plugins embedded in the binary.
pub fn names() -> impl Iterator<Item = &'static str> {
    generated::BUNDLE.iter().map(|(n, _)| *n)
}

/// The code of an embedded plugin.
pub fn bytes(name: &str) -> Option<&'static [u8]> {
    generated::BUNDLE
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
}
