//! The `tinyscore` command. Everything lives in the library (`tinyscore_tools`); this file turns
//! every error, argument errors included, into one line on standard error and exit status 1.

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches};

fn main() {
    let parsed = tinyscore_tools::cli::Cli::command()
        .try_get_matches()
        .and_then(|m| tinyscore_tools::cli::Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let (cli, matches) = match parsed {
        Ok(ok) => ok,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => e.exit(),
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("error: {}", tinyscore_tools::cli::one_line(&e.render().to_string()));
            std::process::exit(1);
        }
    };
    if let Err(e) = tinyscore_tools::cli::run(cli, &matches) {
        // A closed pipe (`tinyscore sample ... --out - | head`) is the reader's choice, not an error.
        let broken_pipe = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        });
        if broken_pipe {
            std::process::exit(0);
        }
        eprintln!("error: {}", tinyscore_tools::cli::error_line(&e));
        std::process::exit(1);
    }
}
