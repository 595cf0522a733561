//! The `tinyscore` command. Everything lives in the library (`tinyscore_tools`); this file turns
//! every error, argument errors included, into one line on standard error and exit status 1.

use clap::error::ErrorKind;
use clap::Parser;

fn main() {
    let cli = match tinyscore_tools::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => e.exit(),
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            std::process::exit(1);
        }
        Err(e) => {
            // clap's message is several lines (usage, tips); its first line names the problem.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("error: {first} (see 'tinyscore --help')");
            std::process::exit(1);
        }
    };
    if let Err(e) = tinyscore_tools::cli::run(cli) {
        // A closed pipe (`tinyscore sample ... --out - | head`) is the reader's choice, not an error.
        let broken_pipe = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        });
        if broken_pipe {
            std::process::exit(0);
        }
        // `{:#}` joins the context chain on one line: "reading x.csv: line 3: ...".
        let msg = format!("{e:#}").replace('\n', " ");
        eprintln!("error: {msg}");
        std::process::exit(1);
    }
}
