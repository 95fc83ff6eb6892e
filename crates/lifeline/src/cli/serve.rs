//! `lifeline serve`: run the gateway until SIGTERM or Ctrl-C; reload on SIGHUP
//! (the config file, and with it the TLS certificate and key: new
//! connections get the new certificate, open ones keep theirs).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use lifeline_core::config::example::example_config;
use lifeline_core::config::Secret;
use lifeline_core::{Config, Gateway, Server};
use tokio_util::sync::CancellationToken;

/// Flags of `lifeline serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Config file (TOML). Without it, the built-in example runs.
    #[arg(long, short, env = "LIFELINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the built-in example config (a commented starting point) and exit.
    #[arg(long)]
    pub print_example: bool,
}

/// Runs the gateway.
pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if args.print_example {
        let mut out = std::io::stdout().lock();
        out.write_all(lifeline_core::config::example::EXAMPLE_TOML.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    let example = args.config.is_none();
    let config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(errors) => {
                for e in &errors.0 {
                    tracing::error!(message = "Invalid config.", error = %e);
                }
                anyhow::bail!(
                    "invalid config {} ({} error(s), logged above)",
                    path.display(),
                    errors.0.len()
                );
            }
        },
        None => {
            let mut c = example_config().map_err(|e| anyhow::anyhow!("built-in example: {e}"))?;
            // The example has no config file to hold an admin token; a random
            // one, printed below, keeps the admin API closed to others.
            c.admin.token = Some(Secret::new(format!("{:032x}", fastrand::u128(..))));
            c
        }
    };
    let gw = Gateway::start(config)
        .await
        .context("starting the gateway")?;
    // Stored client keys are installed before the listeners open.
    let keys =
        crate::keys_sync::KeySync::start(&gw, crate::status_side::store_path(&gw.live().config))
            .await;
    // Signal handlers before the listeners open: a SIGHUP sent as soon as
    // the gateway answers must reload it, not kill it (the default action),
    // however long the status side then takes to start.
    let shutdown = CancellationToken::new();
    tokio::spawn(signals(gw.clone(), shutdown.clone()));
    let bound = Server::bind(gw.clone())
        .await
        .context("binding the listeners")?;
    let admin = bound
        .admin_addr
        .map_or_else(|| "none".to_string(), |a| a.to_string());
    let status_addr = bound.status_addr.unwrap_or(bound.data_addr);
    let tls = gw.live().config.server.tls.is_some();
    tracing::info!(message = "Lifeline is serving.", listen = %bound.data_addr, admin = %admin, status = %status_addr, tls);
    log_auth(&gw);
    let config = gw.live().config.clone();
    let status = crate::status_side::Supervised::start(&gw, &config).await;
    if example {
        let live = gw.live();
        let token = live.config.admin.token.as_ref().map_or("", |t| t.expose());
        // Ask the gateway rather than the config: it knows `auth` and the
        // keys of the config and the store.
        let keys_required = gw.check_key(&live, &http::HeaderMap::new()).is_err();
        print_example_help(
            &bound.data_addr.to_string(),
            bound.admin_addr.map(|a| a.to_string()),
            token,
            keys_required,
        )?;
    }
    bound.run(shutdown).await;
    status.stop().await;
    keys.stop().await;
    gw.close().await;
    tracing::info!(message = "Stopped.");
    Ok(ExitCode::SUCCESS)
}

/// Says at startup how the data plane authenticates, plainly when it is
/// open or when no key can pass.
fn log_auth(gw: &Gateway) {
    let live = gw.live();
    if live.keys.is_open() {
        tracing::warn!(message = "The data plane is open: [server] auth = \"none\", no client key is checked; anyone who can reach the listener may use it.");
    } else if !live.keys.enabled() && gw.dynamic_key_count() == 0 {
        tracing::warn!(message = "No client key exists: data-plane requests are refused with 401 until one is created (`lifeline keys create`), or [server] auth = \"none\" is set.");
    } else {
        tracing::info!(
            message = "Client keys are required.",
            config_keys = live.config.keys.len(),
            stored_keys = gw.dynamic_key_count()
        );
    }
}

fn print_example_help(
    addr: &str,
    admin: Option<String>,
    token: &str,
    keys_required: bool,
) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Lifeline is running the built-in example: model `demo` over three simulated providers."
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "  curl http://{addr}/v1/chat/completions -H 'content-type: application/json' \\"
    )?;
    if keys_required {
        writeln!(out, "       -H 'authorization: Bearer YOUR_KEY' \\")?;
    }
    writeln!(out, "       -d '{{\"model\":\"demo\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'")?;
    writeln!(out)?;
    if keys_required {
        writeln!(out, "  OpenAI SDK:  OpenAI(base_url=\"http://{addr}/v1\", api_key=\"YOUR_KEY\")  (create one: `lifeline keys create --name NAME`)")?;
    } else {
        writeln!(out, "  OpenAI SDK:  OpenAI(base_url=\"http://{addr}/v1\", api_key=\"unused\")  (no key is required)")?;
    }
    if let Some(a) = admin {
        writeln!(out, "  Metrics:     curl http://{a}/metrics")?;
        writeln!(
            out,
            "  State:       lifeline status --admin http://{a} --token {token}"
        )?;
        writeln!(out, "  Drain:       curl -X POST -H 'authorization: Bearer {token}' http://{a}/admin/deployments/mock-a/demo-a/drain")?;
    }
    writeln!(out, "  Stop with Ctrl-C. Write your own config with `lifeline check --config FILE` (see README).")?;
    out.flush()
}

/// Installs the signal handlers now (when called, not when the returned
/// future first runs) and returns the task that serves them.
#[cfg(unix)]
fn signals(gw: Gateway, shutdown: CancellationToken) -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    );
    async move {
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = handlers else {
            tracing::error!(message = "Cannot install signal handlers.");
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    // Errors are logged by reload(); the running config stays,
                    // and with it the running TLS certificate. A valid reload
                    // re-reads the certificate and key files: new handshakes
                    // use them (server/tls.rs). Audited like POST /admin/reload.
                    let action = match gw.reload().await {
                        Ok(()) => "config.reload",
                        Err(_) => "config.reload_rejected",
                    };
                    let caller = lifeline_core::extension::AdminCaller::local("signal:SIGHUP");
                    lifeline_core::admin::audit(&gw, &caller, action, "-");
                }
            }
        }
        tracing::info!(message = "Shutting down: no new connections, draining in-flight requests.");
        shutdown.cancel();
    }
}

#[cfg(not(unix))]
async fn signals(_gw: Gateway, shutdown: CancellationToken) {
    let _ = tokio::signal::ctrl_c().await;
    shutdown.cancel();
}
