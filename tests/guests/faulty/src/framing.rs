//! Misbehaviours aimed at the host's HTTP framing: responses whose headers
//! claim a length, encoding, connection handling or protocol switch the host
//! must not obey.

use lacquer_plugin_sdk::{Response, SynthResponse};

/// The `framing` body: 60 bytes that read as a second response (with header
/// `x-smuggled: 1` and body `evil!`) to a client that trusts
/// `content-length: 3`. The trailing CR LF is padding, an empty line that
/// HTTP/1.1 parsers skip before a status line.
pub const SMUGGLED: &str = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-smuggled: 1\r\n\r\nevil!\r\n";

const _: () = assert!(SMUGGLED.len() == 60);

/// `framing`: a 200 whose framing headers contradict its body and each other.
pub fn takeover() -> SynthResponse {
    SynthResponse::new(200)
        .header("content-length", "3")
        .header("transfer-encoding", "chunked")
        .header("connection", "keep-alive, x-evil")
        .header("upgrade", "websocket")
        .body(SMUGGLED)
}

/// `framing-edit`: the same kind of headers, set on a real response.
pub fn edit(resp: &Response<'_>) {
    for (name, value) in [
        ("content-length", "3"),
        ("transfer-encoding", "chunked"),
        ("connection", "close"),
        ("upgrade", "h2c"),
    ] {
        let _ = resp.set_header(name, value);
    }
}

/// `status-101`: an informational (or any) status with a body.
pub fn switching(status: u16) -> SynthResponse {
    SynthResponse::new(status).body("switch\n")
}
