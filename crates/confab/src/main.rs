//! The `confab` executable. Everything lives in the library crate of the same name, so that
//! integration tests and future tools can reuse the wiring.

/// The process's allocator: jemalloc instead of glibc's malloc. glibc kept the peak of a
/// burst (expired transactions, buffers of closed connections) resident for good, because
/// long-lived objects allocated meanwhile pin its heap; jemalloc returns the freed pages to
/// the OS within seconds. Why jemalloc and what it changed: ARCHITECTURE.md ("Memory") and
/// bench/README.md (memory mode).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    confab::main_entry()
}
