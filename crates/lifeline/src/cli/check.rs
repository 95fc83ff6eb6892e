//! `lifeline check --config FILE`: validate a config and explain each error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use lifeline_core::Config;

/// Flags of `lifeline check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The config file to validate.
    #[arg(long, short)]
    pub config: PathBuf,
}

/// Validates the file; exit code 1 and one line per error when invalid.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match Config::load(&args.config) {
        Ok(c) => {
            writeln!(
                out,
                "{}: OK ({} providers, {} models, {} deployments, {} client keys)",
                args.config.display(),
                c.providers.len(),
                c.models.len(),
                c.models
                    .iter()
                    .flat_map(|m| m.tiers.iter())
                    .map(Vec::len)
                    .sum::<usize>(),
                c.keys.len()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            let mut err = std::io::stderr().lock();
            for e in &errors.0 {
                writeln!(err, "{e}")?;
            }
            writeln!(
                err,
                "{}: {} error(s)",
                args.config.display(),
                errors.0.len()
            )?;
            Ok(ExitCode::FAILURE)
        }
    }
}
