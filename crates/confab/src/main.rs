//! The `confab` executable. Everything lives in the library crate of the same name, so that
//! integration tests and future tools can reuse the wiring.

fn main() -> std::process::ExitCode {
    confab::main_entry()
}
