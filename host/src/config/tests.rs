use std::time::Duration;

use super::*;

fn err(text: &str) -> String {
    Config::from_toml(text, "t.toml", None)
        .unwrap_err()
        .to_string()
}

#[test]
fn embedded_default_is_valid() {
    let c = Config::embedded_default().unwrap();
    assert_eq!(c.listen.port(), 6081);
    assert_eq!(c.admin_listen.unwrap().port(), 6082);
    assert_eq!(c.default_backend, "default");
    let names: Vec<_> = c.plugins.iter().map(|p| p.section.name.as_str()).collect();
    assert_eq!(names, DEFAULT_BUNDLE);
}

#[test]
fn unknown_keys_are_named() {
    let e = err(
        "[server]\nlisten = \"127.0.0.1:1\"\nlisn = 1\n[[backends]]\nname=\"a\"\nurl=\"http://x:1\"",
    );
    assert!(e.contains("lisn"), "{e}");
}

#[test]
fn bad_values_name_the_key() {
    let e = err("[[backends]]\nname=\"a\"\nurl=\"ftp://x\"");
    assert!(e.contains("backends[0].url"), "{e}");
    let e = err("[[backends]]\nname=\"a\"\nurl=\"http://x:1\"\nfirst_byte_timeout=\"soon\"");
    assert!(e.contains("first_byte_timeout"), "{e}");
    let e = err(
        "[[backends]]\nname=\"a\"\nurl=\"http://x:1\"\n[[backends]]\nname=\"b\"\nurl=\"http://y:1\"",
    );
    assert!(e.contains("server.default_backend"), "{e}");
    let e = err("[cache]\nmemory=\"lots\"\n[[backends]]\nname=\"a\"\nurl=\"http://x:1\"");
    assert!(e.contains("memory"), "{e}");
}

#[test]
fn durations_and_sizes_are_human() {
    let c = Config::from_toml(
        "[cache]\nmemory=\"64MiB\"\nmax_object_size=\"1MiB\"\n[[backends]]\nname=\"a\"\nurl=\"http://x:1\"\nfirst_byte_timeout=\"250ms\"",
        "t",
        None,
    )
    .unwrap();
    assert_eq!(c.cache.memory.0, 64 << 20);
    assert_eq!(
        c.backends[0].timeouts.first_byte,
        Duration::from_millis(250)
    );
}

#[test]
fn director_cycles_and_unknown_members_are_refused() {
    let base = "[[backends]]\nname=\"a\"\nurl=\"http://x:1\"\n";
    let e = err(&format!(
        "{base}[[directors]]\nname=\"d\"\nkind=\"fallback\"\nbackends=[\"d\"]"
    ));
    assert!(e.contains("itself"), "{e}");
    let e = err(&format!(
        "{base}[[directors]]\nname=\"d\"\nkind=\"fallback\"\nbackends=[\"zz\"]"
    ));
    assert!(e.contains("zz"), "{e}");
}

#[test]
fn directors_are_typed_once() {
    let base = "[server]\ndefault_backend = \"d\"\n[[backends]]\nname=\"a\"\nurl=\"http://x:1\"\n[[backends]]\nname=\"b\"\nurl=\"http://y:1\"\n";
    let c = Config::from_toml(
        &format!("{base}[[directors]]\nname=\"d\"\nkind=\"hash\"\nkey=\"header:X-User\"\nbackends=[\"a\",\"b\"]"),
        "t",
        None,
    )
    .unwrap();
    assert_eq!(
        c.directors[0].kind,
        DirectorKind::Hash(HashKey::Header(http::HeaderName::from_static("x-user")))
    );
    let c = Config::from_toml(
        &format!("{base}[[directors]]\nname=\"d\"\nkind=\"random\"\nbackends=[\"a\",\"b\"]"),
        "t",
        None,
    )
    .unwrap();
    assert_eq!(
        c.directors[0].kind,
        DirectorKind::Random {
            weights: vec![1, 1]
        }
    );
    let e = err(&format!(
        "{base}[[directors]]\nname=\"d\"\nkind=\"round_robin\"\nbackends=[\"a\"]"
    ));
    assert!(e.contains("directors[0].kind"), "{e}");
    let e = err(&format!(
        "{base}[[directors]]\nname=\"d\"\nkind=\"hash\"\nweights=[1]\nbackends=[\"a\"]"
    ));
    assert!(e.contains("directors[0].weights"), "{e}");
}

#[test]
fn probes_and_timeouts_are_typed() {
    let c = Config::from_toml(
        "[[backends]]\nname=\"a\"\nurl=\"http://x:1\"\nconnect_timeout=\"1s\"\nprobe = { path = \"/h\", threshold = 2 }",
        "t",
        None,
    )
    .unwrap();
    let b = &c.backends[0];
    assert_eq!(b.timeouts.connect, Duration::from_secs(1));
    assert_eq!(b.timeouts.first_byte, DEFAULT_FIRST_BYTE_TIMEOUT);
    let p = b.probe.as_ref().unwrap();
    assert_eq!((p.path.as_str(), p.threshold, p.initial), ("/h", 2, 1));
}

#[test]
fn parse_errors_name_the_line_the_key_path_and_the_expected_form() {
    let b = "[[backends]]\nname=\"a\"\nurl=\"http://x:1\"\n";
    let e = err(&format!("{b}first_byte_timeout = 5\n"));
    assert!(
        e.starts_with("t.toml:4: backends[0].first_byte_timeout: ")
            && e.contains("integer")
            && e.contains("like \"250ms\""),
        "{e}"
    );
    let e = err(&format!("[cache]\nmemory = \"lots\"\n{b}"));
    assert!(
        e.starts_with("t.toml:2: cache.memory: ") && e.contains("like \"256MiB\""),
        "{e}"
    );
    let e = err(&format!("{b}[server]\nlisn = 1\n"));
    assert!(e.starts_with("t.toml:5: ") && e.contains("lisn"), "{e}");
}

#[test]
fn a_flag_is_blamed_for_what_it_set() {
    let e = ConfigSource {
        backend: Some("ftp://example.com".into()),
        ..ConfigSource::default()
    }
    .load()
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("--backend: url: "), "{e}");
    let e = ConfigSource {
        listen: Some("nowhere".into()),
        ..ConfigSource::default()
    }
    .load()
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("--listen: server.listen: "), "{e}");
}

#[test]
fn tls_keys_are_checked_and_relative_paths_resolve_against_the_config() {
    let backend = "[[backends]]\nname=\"a\"\nurl=\"http://x:1\"\n";
    let e = err(&format!(
        "[server.tls]\nlisten = \"127.0.0.1:6443\"\ncertificates = []\n{backend}"
    ));
    assert!(e.contains("server.tls.certificates"), "{e}");
    let e = err(&format!(
        "[server]\nlisten = \"127.0.0.1:6443\"\n[server.tls]\nlisten = \"127.0.0.1:6443\"\ncertificates = [{{ chain = \"a.pem\", key = \"a.key\" }}]\n{backend}"
    ));
    assert!(e.contains("server.tls.listen"), "{e}");
    let e = err(&format!(
        "[server.tls]\nlisten = \"127.0.0.1:6443\"\ncertificates = [{{ chain = \"a.pem\", key = \"a.key\", password = \"x\" }}]\n{backend}"
    ));
    assert!(e.contains("password"), "{e}");
    let c = Config::from_toml(
        &format!(
            "[server]\nproxy_protocol = true\n[server.tls]\nlisten = \"127.0.0.1:6443\"\nproxy_protocol = true\ncertificates = [{{ chain = \"a.pem\", key = \"/etc/a.key\" }}]\n{backend}"
        ),
        "t.toml",
        Some(std::path::Path::new("/srv/lacquer")),
    )
    .unwrap();
    assert!(c.proxy_protocol);
    let tls = c.tls.unwrap();
    assert!(tls.proxy_protocol);
    assert_eq!(
        tls.certificates[0].chain,
        std::path::Path::new("/srv/lacquer/a.pem")
    );
    assert_eq!(tls.certificates[0].key, std::path::Path::new("/etc/a.key"));
}

#[test]
fn compress_types_match_by_essence() {
    let c = CompressSection::default();
    for (ct, want) in [
        ("text/html", true),
        ("Text/HTML; charset=utf-8", true),
        ("application/json", true),
        ("application/json;charset=utf-8", true),
        ("image/svg+xml", true),
        ("image/png", false),
        ("application/octet-stream", false),
        ("text", false),
        ("text/", false),
        ("textual/plain", false),
        ("application/jsonx", false),
        ("", false),
    ] {
        assert_eq!(c.compressible(ct.as_bytes()), want, "{ct}");
    }
}

#[test]
fn cache_partial_and_compress_are_checked() {
    let backend = "[[backends]]\nname=\"a\"\nurl=\"http://x:1\"";
    let e = err(&format!(
        "[cache]\npartial = {{ max_pieces = 0 }}\n{backend}"
    ));
    assert!(e.contains("cache.partial.max_pieces"), "{e}");
    let e = err(&format!("[cache]\ncompress = {{ level = 0 }}\n{backend}"));
    assert!(e.contains("cache.compress.level"), "{e}");
    let e = err(&format!(
        "[cache]\ncompress = {{ types = [\"*/*\"] }}\n{backend}"
    ));
    assert!(e.contains("cache.compress.types"), "{e}");
    let c = Config::from_toml(
        &format!("[cache]\ncompress = {{ min_size = \"4KiB\" }}\n{backend}"),
        "t.toml",
        None,
    )
    .unwrap();
    assert_eq!(c.cache.compress.min_size.0, 4096);
    assert!(
        !c.cache.compress.enabled && !c.cache.partial.enabled,
        "both are opt-in"
    );
}

fn cluster(body: &str) -> String {
    format!("[[backends]]\nname=\"a\"\nurl=\"http://x:1\"\n[cluster]\n{body}")
}

const NODES: &str = "nodes = [\"http://10.0.0.1:6081\", \"http://10.0.0.2:6081/\"]\nredis = \"redis://127.0.0.1:6379\"\nsecret = \"0123456789abcdef\"\n";

#[test]
fn cluster_is_checked_key_by_key() {
    let c = Config::from_toml(
        &cluster(&format!("{NODES}self = \"http://10.0.0.2:6081\"\n")),
        "t.toml",
        None,
    )
    .unwrap();
    let cl = c.cluster.unwrap();
    assert_eq!(cl.me, 1, "a trailing slash names the same node");
    assert_eq!(cl.self_url(), "http://10.0.0.2:6081");
    assert_eq!(cl.timeout, DEFAULT_CLUSTER_TIMEOUT);
    assert!(cl.shard);
    let e = err(&cluster(&format!(
        "{NODES}self = \"http://10.0.0.3:6081\"\n"
    )));
    assert!(
        e.contains("cluster.self") && e.contains("not one of"),
        "{e}"
    );
    let e = err(&cluster(
        "nodes = [\"http://a:1/x\"]\nself = \"http://a:1\"\nredis = \"redis://r\"\nsecret = \"0123456789abcdef\"\n",
    ));
    assert!(e.contains("cluster.nodes[0]"), "{e}");
    let e = err(&cluster(
        "nodes = [\"http://a:1\"]\nself = \"http://a:1\"\nredis = \"http://r\"\nsecret = \"0123456789abcdef\"\n",
    ));
    assert!(e.contains("cluster.redis"), "{e}");
    let e = err(&cluster(
        "nodes = [\"http://a:1\"]\nself = \"http://a:1\"\nredis = \"redis://r\"\nsecret = \"short\"\n",
    ));
    assert!(e.contains("cluster.secret"), "{e}");
    let e = err(&cluster(&format!(
        "{NODES}self = \"http://10.0.0.1:6081\"\ntimeout = \"0s\"\n"
    )));
    assert!(e.contains("cluster.timeout"), "{e}");
    let e = err(&cluster(&format!(
        "{NODES}self = \"http://10.0.0.1:6081\"\nkey_prefix = \"a b\"\n"
    )));
    assert!(e.contains("cluster.key_prefix"), "{e}");
    let e = err(&cluster(
        "nodes = [\"http://a:1\", \"http://A:1\"]\nself = \"http://a:1\"\nredis = \"redis://r\"\nsecret = \"0123456789abcdef\"\n",
    ));
    assert!(e.contains("cluster.nodes[1]") && e.contains("twice"), "{e}");
}
