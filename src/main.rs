//! The `aftercart` binary: parses the command line and hands over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    aftercart::cli::run(aftercart::cli::Cli::parse())
}
