//! Builds the test guests (`tests/guests/`) and the example plugin
//! (`examples/hello-header/`) for wasm32-wasip2, and writes
//! `$OUT_DIR/guests.rs` with one `pub const <PACKAGE_NAME>: &str = "<path>";`
//! per component (e.g. `FAULTY`, `HELLO_HEADER`), sorted by name, and `ALL`,
//! every (package name, path).

fn main() {
    let mut components = lacquer_build_support::build("guests");
    components.extend(lacquer_build_support::build("../examples/hello-header"));
    let consts: String = components
        .iter()
        .map(|(name, wasm)| {
            let name = name.replace('-', "_").to_uppercase();
            format!(
                "pub const {name}: &str = {:?};\n",
                wasm.display().to_string()
            )
        })
        .collect();
    let all: String = components
        .iter()
        .map(|(name, wasm)| format!("    ({name:?}, {:?}),\n", wasm.display().to_string()))
        .collect();
    let consts = format!(
        "{consts}/// Every component: (package name, path).\npub const ALL: &[(&str, &str)] = &[\n{all}];\n"
    );
    lacquer_build_support::write_out_file("guests.rs", &consts);
}
