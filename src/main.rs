//! The `mediavault` command: parses the command line and hands it to [`mediavault::cli`], where
//! each subcommand has its own file.

use clap::Parser;

use mediavault::cli::{Cli, run};

/// Two malloc arenas, set by the binary itself before any thread starts. glibc otherwise gives
/// every thread that allocates an arena of its own (up to eight per core: the runtime's workers,
/// its blocking pool, one thread per SQLite connection) and keeps what each one freed, so the
/// vault held about 65 MiB after a burst of requests against about 30 MiB with two
/// (`mediavault bench` measures it, as `mediavault serve` is started, no environment needed).
/// mimalloc was tried instead and held as much as glibc unlimited. `MALLOC_ARENA_MAX` in the
/// environment, where set, still wins: glibc reads it on first use, and this keeps it.
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: mallopt only sets a parameter of glibc's allocator; it is called here, first thing
    // in main, before any other thread exists, and M_ARENA_MAX with a positive value is a
    // documented setting. It returns 0 on failure, which leaves glibc's default in force.
    let _ = unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
}

fn main() {
    limit_malloc_arenas();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        // A refusal by the vault's rules ends with the stable code the API gives the same
        // refusal (problem+json `code`), as `mediavault admin` prints the API's: a script can
        // tell `already_exists` from `not_permitted` without matching the message's words.
        match e
            .chain()
            .find_map(|c| c.downcast_ref::<mediavault::error::Error>())
        {
            Some(refusal) => eprintln!(
                "error: {e:#} ({})",
                mediavault::http::problem::code_of(refusal)
            ),
            None => eprintln!("error: {e:#}"),
        }
        std::process::exit(1);
    }
}
