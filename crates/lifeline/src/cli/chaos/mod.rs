//! `lifeline chaos`: game days for a config. Runs failure scenarios against
//! the gateway with the config's models, their providers replaced by
//! simulated ones the run controls, drives realistic mixed traffic, injects
//! each fault, checks what clients experienced and what the status page
//! said, and gives each scenario a verdict.
//!
//! - [`scenario`]: the vocabulary (faults, targets, windows, expectations);
//!   [`provider`]: the provider-fault scenarios; [`gateway`]: the
//!   gateway-level ones (surge, abusive key, reloads, restart,
//!   maintenance, store outage, disaster recovery, slow clients);
//!   [`store`]: the store's faults; [`clients`]: misbehaving clients.
//! - [`plan`]: the config's chaos copy, the client keys, the targets.
//! - [`rig`]: one scenario's world (mocks, gateway, status side, store).
//! - [`traffic`]: the clients and the checks of every answer.
//! - [`runner`]: one scenario's schedule, ticks and progress line.
//! - [`measure`]: samples, detection and recovery times, verdicts.
//! - [`report`]: the scorecard and `report.json`; [`html`]: `report.html`.
//! - [`against`]: `--against URL --mock ...`, the provider scenarios
//!   against a running gateway whose providers are `lifeline mock`s.
//!
//! Exit status: 0 when every scenario that ran passed, 1 otherwise (and on
//! errors), so a pipeline can gate a config change on it.

pub mod against;
pub mod clients;
pub mod gateway;
pub mod html;
pub mod measure;
pub mod plan;
pub mod provider;
pub mod report;
pub mod rig;
pub mod runner;
pub mod scenario;
pub mod store;
pub mod traffic;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use lifeline_core::Config;

use self::plan::Plan;
use self::report::{Report, ScenarioResult};
use self::scenario::{Expect, Needs, Scenario};

/// Flags of `lifeline chaos`.
#[derive(clap::Args, Debug)]
pub struct ChaosArgs {
    /// The config to rehearse (default: the built-in example).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run only this scenario (repeatable); default: all. `--list` names them.
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    /// Length of each scenario's fault schedule, in seconds (at least 6).
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Write report.json and report.html into this directory.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Require at least this success ratio, in percent, of every scenario
    /// instead of its own bound (a stricter, or looser, bar).
    #[arg(long, value_name = "PERCENT")]
    pub min_success: Option<f64>,
    /// List the scenarios and their expectations, and exit.
    #[arg(long)]
    pub list: bool,
    /// Rehearse against a running gateway at this URL (`http://host:port`)
    /// instead of one of the run's own: its providers must point at
    /// `lifeline mock` instances, named with `--mock` (see [`against`]).
    #[arg(long, value_name = "URL")]
    pub against: Option<String>,
    /// With `--against`: a provider's `lifeline mock`, as `PROVIDER=ADDR`
    /// (or a bare `ADDR`: the config's providers in order). Repeatable.
    #[arg(long = "mock", value_name = "[PROVIDER=]ADDR", requires = "against")]
    pub mocks: Vec<String>,
    /// With `--against`: a client key the traffic sends, as
    /// `PRIORITY=TOKEN` (or a bare token: standard). Repeatable; without
    /// one, the gateway must run with `auth = "none"`.
    #[arg(long = "key", value_name = "[PRIORITY=]TOKEN", requires = "against")]
    pub keys: Vec<String>,
}

/// Every scenario, in run order.
pub fn catalogue() -> Vec<Scenario> {
    let mut all = provider::scenarios();
    all.extend(gateway::scenarios());
    all
}

/// Runs `lifeline chaos`.
pub async fn run(args: ChaosArgs) -> anyhow::Result<ExitCode> {
    let mut all = catalogue();
    if args.list {
        let mut out = std::io::stdout().lock();
        for s in &all {
            writeln!(out, "{:<24} {}", s.name, s.description)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    for name in &args.scenarios {
        if !all.iter().any(|s| s.name == name) {
            let names: Vec<&str> = all.iter().map(|s| s.name).collect();
            anyhow::bail!("no scenario {name:?} (known: {})", names.join(", "));
        }
    }
    if !args.scenarios.is_empty() {
        all.retain(|s| args.scenarios.iter().any(|n| n == s.name));
    }
    if let Some(pct) = args.min_success {
        for s in &mut all {
            for e in &mut s.expect {
                if let Expect::SuccessRatio(min) = e {
                    *min = pct / 100.0;
                }
            }
        }
    }
    let (config, label) = match &args.config {
        Some(path) => (load(path)?, path.display().to_string()),
        None => (
            lifeline_core::config::example::example_config()
                .map_err(|e| anyhow::anyhow!("built-in config: {e}"))?,
            "<built-in>".to_string(),
        ),
    };
    let mut plan = Plan::new(config)?;
    let remote = match &args.against {
        Some(url) => {
            if let Some(keys) = against::keys(&args.keys)? {
                plan.keys = keys;
            }
            Some(against::Remote::new(&plan, url, &args.mocks).await?)
        }
        None => None,
    };
    let settings = runner::RunSettings {
        duration: Duration::from_secs(args.duration.max(6)),
        concurrency: args.concurrency.max(1),
    };
    println!(
        "Lifeline chaos: {} scenario(s) of {} s against {label} (primary model `{}`, tier 1 [{}]), {} clients.",
        all.len(),
        settings.duration.as_secs(),
        plan.primary_model,
        plan.first_tier.join(", "),
        settings.concurrency
    );
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut results = Vec::new();
    for sc in &all {
        if let Some(why) = skip_reason(&plan, sc) {
            println!("  {:<22} skipped: {why}", sc.name);
            results.push(skipped(sc, why));
            continue;
        }
        let adapted;
        let sc = match &remote {
            Some(remote) => match against::adapt(sc, &plan, remote) {
                Ok(a) => {
                    adapted = a;
                    &adapted
                }
                Err(why) => {
                    println!("  {:<22} skipped: {why}", sc.name);
                    results.push(skipped(sc, why));
                    continue;
                }
            },
            None => sc,
        };
        let r = runner::run_scenario(&plan, sc, &settings, remote.as_ref())
            .await
            .with_context(|| format!("scenario {}", sc.name))?;
        println!(
            "  {:<22} {}{}",
            r.name,
            r.verdict.to_uppercase(),
            r.expectations
                .iter()
                .filter(|e| !e.pass)
                .map(|e| format!(
                    "  [{}: {} measured, {} required]",
                    e.name, e.measured, e.required
                ))
                .collect::<String>()
        );
        results.push(r);
    }
    let pass = !results.iter().any(ScenarioResult::failed);
    let report = Report {
        config: label,
        started_at,
        duration_s: settings.duration.as_secs(),
        concurrency: settings.concurrency,
        pass,
        scenarios: results,
    };
    report::print_scorecard(&report)?;
    if let Some(dir) = &args.report {
        report::write(&report, dir)?;
        println!(
            "Report: {} and {}",
            dir.join("report.json").display(),
            dir.join("report.html").display()
        );
    }
    Ok(if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Loads the config to rehearse. `${VAR}` comes from the environment, and a
/// variable that is not set reads as a placeholder: the secrets a config
/// names are replaced by dummies in the chaos copy anyway, so a pipeline
/// can rehearse a production config without its credentials.
fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {file}"))?;
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .or_else(|| Some("chaos-placeholder".into()))
    };
    let mut config =
        Config::parse_with_env(&text, &file, &env).map_err(|e| anyhow::anyhow!("{e}"))?;
    config.source = Some(path.to_path_buf());
    Ok(config)
}

fn skip_reason(plan: &Plan, sc: &Scenario) -> Option<String> {
    match sc.needs {
        Needs::Nothing => None,
        Needs::SecondTier if plan.primary_tiers < 2 => Some(format!(
            "model `{}` has a single tier: there is no next tier to serve",
            plan.primary_model
        )),
        Needs::Fallback if plan.primary_tiers < 2 && plan.first_tier.len() < 2 => Some(format!(
            "model `{}` has a single deployment: nothing can take over from it",
            plan.primary_model
        )),
        Needs::SecondTier | Needs::Fallback => None,
    }
}

fn skipped(sc: &Scenario, why: String) -> ScenarioResult {
    ScenarioResult {
        name: sc.name.to_string(),
        description: sc.description.to_string(),
        verdict: "skipped".into(),
        skipped_because: Some(why),
        ran_s: 0.0,
        windows: Vec::new(),
        expectations: Vec::new(),
        totals: Default::default(),
        examples: Default::default(),
        incidents: Vec::new(),
        samples: Vec::new(),
    }
}
