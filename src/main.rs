//! The `aftercart` binary: parses the command line and hands over to the library.

use clap::Parser;

/// mimalloc instead of the system allocator: a decision allocates and frees many small
/// buffers (request strings, records, the response), and glibc's malloc was the largest
/// single cost in profiles of the decision path under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    aftercart::cli::run(aftercart::cli::Cli::parse())
}
