//! The `lacquer` command.

fn main() -> std::process::ExitCode {
    lacquer::cli::main()
}
