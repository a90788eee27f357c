//! Builds the default plugin bundle (`plugins/`) for wasm32-wasip2 and embeds
//! it: writes `$OUT_DIR/bundle.rs` with
//! `pub static BUNDLE: &[(&str, &[u8])] = &[("cache-policy", include_bytes!("...")), ...];`
//! (package name, component bytes), sorted by name.

fn main() {
    let entries: Vec<String> = lacquer_build_support::build("../plugins")
        .iter()
        .map(|(name, wasm)| {
            format!(
                "({name:?}, include_bytes!({:?}))",
                wasm.display().to_string()
            )
        })
        .collect();
    let bundle = format!(
        "pub static BUNDLE: &[(&str, &[u8])] = &[{}];\n",
        entries.join(", ")
    );
    lacquer_build_support::write_out_file("bundle.rs", &bundle);
}
