//! Misbehaviours that flood the host with calls or data: headers, log lines,
//! bans, cache-key inputs, a long URL.

use lacquer_plugin_sdk::host::{self, Invalidation};
use lacquer_plugin_sdk::{Level, Request, SynthResponse};

/// The name of every flooded header.
pub const HEADER: &str = "x-flood";

/// A string of exactly `size` bytes: `prefix` (cut short if need be), then
/// `x`s. `prefix` must be ASCII.
pub fn filler(prefix: &str, size: u32) -> String {
    let size = size as usize;
    let mut text = String::with_capacity(size);
    text.push_str(&prefix[..prefix.len().min(size)]);
    text.extend(std::iter::repeat_n('x', size - text.len()));
    text
}

/// `header-flood`: calls `append` with `count` `x-flood` headers of `size`
/// bytes (one value, made once).
pub fn headers(count: u32, size: u32, mut append: impl FnMut(&str, &str)) {
    let value = filler("", size);
    for _ in 0..count {
        append(HEADER, &value);
    }
}

/// `synth-header-flood`: a 200 carrying `count` `x-flood` headers of `size` bytes.
pub fn synth_headers(count: u32, size: u32) -> SynthResponse {
    let value = filler("", size);
    let mut resp = SynthResponse::new(200);
    resp.headers = vec![(HEADER.to_owned(), value); count as usize];
    resp
}

/// Line `i` of a log flood: numbered, so lines differ, and `size` bytes long.
fn line(i: u32, size: u32) -> String {
    filler(&format!("faulty flood {i} "), size)
}

/// `log-flood`: `count` info lines of `size` bytes through `host::log`.
pub fn log(count: u32, size: u32) {
    for i in 0..count {
        host::log(Level::Info, &line(i, size));
    }
}

/// `print-flood`: `count` lines of `size` bytes (plus the newline) on stdout.
pub fn print(count: u32, size: u32) {
    for i in 0..count {
        println!("{}", line(i, size));
    }
}

/// `ban-flood`: `count` bans `^/banned/<i>$` on `host`, errors ignored.
pub fn bans(host: &str, count: u32) {
    for i in 0..count {
        let _ = host::invalidate(Invalidation::Ban, host, &format!("^/banned/{i}$"));
    }
}

/// `cache-key-flood`: `count` cache-key inputs of `size` bytes.
pub fn cache_keys(req: &Request<'_>, count: u32, size: u32) {
    let data = filler("", size);
    for _ in 0..count {
        req.add_cache_key(&data);
    }
}

/// `url-flood`: a URL of `size` bytes ("/" then `a`s; just "/" for a size
/// under 2).
pub fn long_url(size: u32) -> String {
    let mut url = String::from("/");
    url.extend(std::iter::repeat_n('a', (size as usize).saturating_sub(1)));
    url
}
