//! The `aftercart` command line: `serve`, `validate`, `log`, `report`, `simulate` and
//! `synth`.

use crate::app::{App, StartError};
use crate::campaign::{ValidationRules, load_folder};
use crate::clock::SystemClock;
use crate::config::{self, Config, LogFormat, Overrides};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Exit code for bad configuration or usage (sysexits EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;
/// Exit code for bad campaign files or a bad inventory seed (sysexits EX_DATAERR).
pub const EXIT_CAMPAIGNS: u8 = 65;
/// Exit code when the server cannot bind or read its data (sysexits EX_UNAVAILABLE).
pub const EXIT_UNAVAILABLE: u8 = 69;

#[derive(Parser, Debug)]
#[command(
    name = "aftercart",
    version,
    about = "An ad server for the moment right after a purchase."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the decision server.
    Serve {
        /// TOML configuration file (also AFTERCART_CONFIG).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
        /// Campaigns folder (default ./campaigns).
        #[arg(long)]
        campaigns: Option<PathBuf>,
        /// Data folder: secrets, and later the exposure log (default ./data).
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Check every campaign file of a folder and list every problem with file and path.
    Validate {
        dir: PathBuf,
        /// Accept plain http:// creative URLs (as with config allow_http_urls).
        #[arg(long)]
        allow_http_urls: bool,
    },
    /// Print the exposure log: one JSON object per line (it may run while the server
    /// runs, and shows what has been written).
    Log {
        /// Data folder (default ./data).
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        /// Start at this offset (0: the oldest record kept).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Keep waiting for new records.
        #[arg(long)]
        follow: bool,
        #[arg(long, value_enum, default_value_t = LogFormatArg::Json)]
        format: LogFormatArg,
        /// Read a fleet's log from NATS JetStream at this URL instead of the data folder:
        /// every node's records in stream order, each with its `node` and stream `seq`
        /// (builds with the `nats` feature).
        #[arg(long, value_name = "URL", conflicts_with_all = ["data", "from"])]
        nats: Option<String>,
        /// The JetStream stream (with --nats).
        #[arg(long, default_value = crate::cluster::DEFAULT_NATS_STREAM, requires = "nats")]
        stream: String,
    },
    /// Closed-loop attribution from the exposure log alone: per campaign delivery, spend,
    /// conversions, revenue by channel, connected and online-only ROAS, holdout lift.
    Report {
        /// Data folder (default ./data); the log is its `log/`.
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        /// Only this campaign's row.
        #[arg(long)]
        campaign: Option<String>,
        /// Start of the period, inclusive: RFC 3339 or YYYY-MM-DD (midnight UTC).
        #[arg(long, value_parser = parse_from)]
        from: Option<i64>,
        /// End of the period, exclusive: RFC 3339, or YYYY-MM-DD for the end of that day.
        #[arg(long, value_parser = parse_to)]
        to: Option<i64>,
        /// Credit purchases this long after a click (s, m, h, d or w).
        #[arg(long, default_value = "14d", value_parser = crate::measure::parse_window)]
        click_window: i64,
        /// Credit purchases this long after an impression that was not clicked.
        #[arg(long, default_value = "1d", value_parser = crate::measure::parse_window)]
        view_window: i64,
        #[arg(long, value_enum, default_value_t = ReportFormatArg::Table)]
        format: ReportFormatArg,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Measure a fleet's log from NATS JetStream at this URL instead of the data
        /// folder (builds with the `nats` feature).
        #[arg(long, value_name = "URL", conflicts_with = "data")]
        nats: Option<String>,
        /// The JetStream stream (with --nats).
        #[arg(long, default_value = crate::cluster::DEFAULT_NATS_STREAM, requires = "nats")]
        stream: String,
    },
    /// Drive a running server with a simulated population of shoppers (web, app and
    /// stores; decisions, impressions, clicks, purchases) with a known true lift per
    /// campaign, then print the ground truth.
    Simulate {
        /// The server's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        /// An admin key (also AFTERCART_ADMIN_KEY); by default the one the server
        /// generated into DATA/admin.key.
        #[arg(long, env = "AFTERCART_ADMIN_KEY", hide_env_values = true)]
        key: Option<String>,
        /// The server's data folder, to read its generated admin key from.
        #[arg(long, default_value = "./data")]
        data: PathBuf,
        #[arg(long, default_value_t = 2_000)]
        shoppers: usize,
        /// Mean visits with a decision per shopper before the last purchase.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
        visits: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Chance that a shopper never offered a campaign buys its product anyway.
        #[arg(long, default_value_t = 0.10)]
        base_rate: f64,
        /// The true lift of every campaign: offered shoppers buy with base × (1 + lift).
        #[arg(long, default_value_t = 0.30, allow_negative_numbers = true)]
        lift: f64,
        /// One campaign's true lift, as ID=LIFT (repeatable).
        #[arg(long = "lift-for", value_parser = parse_lift_for)]
        lift_for: Vec<(String, f64)>,
        /// Milliseconds between a decision and its impressions (a page rendering).
        #[arg(long, default_value_t = 150)]
        render_ms: u64,
        /// Shoppers simulated at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value = "USD")]
        currency: String,
        /// Also write the ground truth as JSON to this file.
        #[arg(long)]
        truth: Option<PathBuf>,
    },
    /// Generate synthetic campaigns or requests for benchmarks and load tests.
    Synth {
        #[command(subcommand)]
        what: Synth,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormatArg {
    Json,
    Msgpack,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormatArg {
    Table,
    Json,
    Csv,
    Html,
}

fn parse_lift_for(s: &str) -> Result<(String, f64), String> {
    let (id, lift) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected CAMPAIGN_ID=LIFT, e.g. cmp-flicktv-annual=0.4"))?;
    let lift: f64 = lift
        .parse()
        .map_err(|_| format!("{lift:?} is not a number"))?;
    Ok((id.to_string(), lift))
}

fn parse_from(s: &str) -> Result<i64, String> {
    crate::measure::parse_time(s, false)
}

fn parse_to(s: &str) -> Result<i64, String> {
    crate::measure::parse_time(s, true)
}

#[derive(Subcommand, Debug)]
pub enum Synth {
    /// Write N campaign files into DIR.
    Campaigns {
        #[arg(long)]
        count: usize,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Write N decision request bodies, one JSON per line, for a set of CAMPAIGNS.
    Requests {
        #[arg(long)]
        count: usize,
        #[arg(long)]
        campaigns: usize,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve {
            config,
            listen,
            campaigns,
            data,
        } => serve(Overrides {
            config,
            listen,
            campaigns,
            data,
        }),
        Command::Validate {
            dir,
            allow_http_urls,
        } => validate(&dir, allow_http_urls),
        Command::Log {
            data,
            from,
            follow,
            format,
            nats,
            stream,
        } => match nats {
            Some(url) => print_stream_log(&url, &stream, follow, format),
            None => print_log(&data, from, follow, format),
        },
        Command::Report {
            data,
            campaign,
            from,
            to,
            click_window,
            view_window,
            format,
            out,
            nats,
            stream,
        } => {
            let options = crate::measure::Options {
                campaign,
                from_ms: from,
                to_ms: to,
                click_window_ms: click_window,
                view_window_ms: view_window,
            };
            match nats {
                Some(url) => report_from_stream(&url, &stream, &options, format, out.as_deref()),
                None => report(&data, &options, format, out.as_deref()),
            }
        }
        Command::Simulate {
            server,
            key,
            data,
            shoppers,
            visits,
            seed,
            base_rate,
            lift,
            lift_for,
            render_ms,
            concurrency,
            currency,
            truth,
        } => {
            let key = match key {
                Some(k) => k,
                None => match std::fs::read_to_string(data.join("admin.key")) {
                    Ok(k) => k.trim().to_string(),
                    Err(e) => {
                        eprintln!(
                            "aftercart simulate: no --key given and {} is unreadable ({e})",
                            data.join("admin.key").display()
                        );
                        return ExitCode::from(EXIT_CONFIG);
                    }
                },
            };
            let options = crate::simulate::Options {
                server,
                key,
                shoppers,
                visits,
                seed,
                base_rate,
                lift,
                lifts: lift_for.into_iter().collect(),
                render_ms,
                concurrency,
                currency,
            };
            simulate(&options, truth.as_deref())
        }
        Command::Synth { what } => synth(what),
    }
}

fn simulate(options: &crate::simulate::Options, truth_file: Option<&std::path::Path>) -> ExitCode {
    use crate::simulate::{SimulateError, run};
    use std::io::IsTerminal;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("aftercart simulate: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let total = options.shoppers;
    let terminal = std::io::stderr().is_terminal();
    let progress = move |done: usize| {
        if terminal {
            eprint!("\r  {done} / {total} shoppers");
        }
    };
    let result = runtime.block_on(run(options, &progress));
    if terminal {
        eprintln!();
    }
    let truth = match result {
        Ok(t) => t,
        Err(e @ SimulateError::Options(_)) => {
            eprintln!("aftercart simulate: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(e) => {
            eprintln!("aftercart simulate: {e}");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    print!("{}", crate::simulate::summary(&truth));
    if let Some(path) = truth_file {
        let written = serde_json::to_vec_pretty(&truth)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(path, bytes));
        if let Err(e) = written {
            eprintln!("aftercart simulate: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if truth.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "aftercart simulate: some requests were refused: {:?}",
            truth.failures
        );
        for example in &truth.failure_examples {
            eprintln!("  {example}");
        }
        ExitCode::FAILURE
    }
}

fn serve(overrides: Overrides) -> ExitCode {
    let env: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let config = match config::load(&overrides, &env) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("aftercart: invalid configuration:\n{errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_tracing(&config);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.workers {
        runtime.worker_threads(n);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("aftercart: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    runtime.block_on(serve_async(config))
}

async fn serve_async(config: Config) -> ExitCode {
    let listen = config.listen;
    let app = match App::start(config, Arc::new(SystemClock)).await {
        Ok(app) => app,
        Err(StartError::Campaigns(errors)) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!(
                "aftercart: refusing to start: {} problem(s) in the campaigns folder",
                errors.len()
            );
            return ExitCode::from(EXIT_CAMPAIGNS);
        }
        Err(StartError::InventorySeed(errors)) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!(
                "aftercart: refusing to start: {} problem(s) in the inventory seed",
                errors.len()
            );
            return ExitCode::from(EXIT_CAMPAIGNS);
        }
        Err(e) => {
            eprintln!("aftercart: {e}");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    if let Some(path) = &app.admin_key_file {
        tracing::info!(path = %path.display(), "admin key (generated on first start) is in this file");
    }
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("aftercart: cannot listen on {listen}: {e}");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    let local = listener
        .local_addr()
        .map_or_else(|_| listen.to_string(), |a| a.to_string());
    tracing::info!(
        address = %local,
        campaigns = app.snapshot.load().len(),
        public_url = %app.config.public_url,
        "aftercart is serving"
    );
    if let Err(e) = start_cluster(&app) {
        eprintln!("aftercart: {e}");
        return ExitCode::from(EXIT_UNAVAILABLE);
    }
    crate::shutdown::reload_on_hangup(app.clone());
    crate::shutdown::checkpoint_periodically(app.clone());
    match crate::http::run(listener, app.clone(), crate::shutdown::signal()).await {
        Ok(()) => {
            app.shut_down().await;
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("aftercart: server error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Joins the fleet configured in `[nats]`, if any (the configuration refuses `[nats]` in
/// a build without the feature).
fn start_cluster(app: &Arc<App>) -> Result<(), String> {
    #[cfg(feature = "nats")]
    if let Some(nats) = &app.config.nats {
        crate::cluster::nats::start(app, nats).map_err(|e| e.to_string())?;
    }
    #[cfg(not(feature = "nats"))]
    let _ = app;
    Ok(())
}

/// `aftercart log --nats`: the fleet's records from JetStream.
#[cfg(feature = "nats")]
fn print_stream_log(url: &str, stream: &str, follow: bool, format: LogFormatArg) -> ExitCode {
    use crate::exposure::view::RecordView;
    use std::io::Write;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("aftercart log: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut closed = false;
    let result = runtime.block_on(crate::cluster::nats::read::each_record(
        url,
        stream,
        follow,
        &mut |r| {
            let view = RecordView {
                offset: r.offset,
                record: &r.record,
            };
            // The node and stream sequence first, then the record as `aftercart log` shows it.
            let mut value = serde_json::json!({"node": r.node, "seq": r.seq});
            if let (Some(map), Ok(serde_json::Value::Object(fields))) =
                (value.as_object_mut(), serde_json::to_value(&view))
            {
                map.extend(fields);
            }
            let written = match format {
                LogFormatArg::Json => serde_json::to_writer(&mut out, &value)
                    .map_err(std::io::Error::other)
                    .and_then(|()| out.write_all(b"\n")),
                LogFormatArg::Msgpack => {
                    rmp_serde::encode::write_named(&mut out, &value).map_err(std::io::Error::other)
                }
            };
            if follow {
                let _ = out.flush();
            }
            closed = written.is_err();
            !closed
        },
    ));
    let _ = out.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aftercart log: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "nats"))]
fn print_stream_log(_: &str, _: &str, _: bool, _: LogFormatArg) -> ExitCode {
    eprintln!("aftercart log: this build has no NATS support (build with `--features nats`)");
    ExitCode::from(EXIT_CONFIG)
}

/// `aftercart report --nats`: the fleet's records are copied from JetStream into a
/// temporary log, which the report then reads like a node's own.
#[cfg(feature = "nats")]
fn report_from_stream(
    url: &str,
    stream: &str,
    options: &crate::measure::Options,
    format: ReportFormatArg,
    out: Option<&std::path::Path>,
) -> ExitCode {
    let copied = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| {
            let tmp = std::env::temp_dir().join(format!(
                "aftercart-report-{}-{:x}",
                std::process::id(),
                rand::random::<u64>()
            ));
            let copied = runtime
                .block_on(crate::cluster::nats::read::copy_to_log(url, stream, &tmp))
                .map_err(|e| e.to_string());
            if copied.is_err() {
                let _ = std::fs::remove_dir_all(&tmp);
            }
            copied.map(|_| tmp)
        });
    let tmp = match copied {
        Ok(tmp) => tmp,
        Err(e) => {
            eprintln!("aftercart report: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = report(&tmp, options, format, out);
    let _ = std::fs::remove_dir_all(&tmp);
    code
}

#[cfg(not(feature = "nats"))]
fn report_from_stream(
    _: &str,
    _: &str,
    _: &crate::measure::Options,
    _: ReportFormatArg,
    _: Option<&std::path::Path>,
) -> ExitCode {
    eprintln!("aftercart report: this build has no NATS support (build with `--features nats`)");
    ExitCode::from(EXIT_CONFIG)
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, never in files or pipes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn validate(dir: &std::path::Path, allow_http_urls: bool) -> ExitCode {
    match load_folder(dir, ValidationRules { allow_http_urls }) {
        Ok(folder) => {
            println!(
                "{}: {} campaign(s), no problems",
                dir.display(),
                folder.campaigns.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                println!("{e}");
            }
            eprintln!("{} problem(s)", errors.len());
            ExitCode::from(EXIT_CAMPAIGNS)
        }
    }
}

fn print_log(data: &std::path::Path, from: u64, follow: bool, format: LogFormatArg) -> ExitCode {
    use crate::exposure::read::Records;
    use crate::exposure::view::RecordView;
    use std::io::Write;
    let dir = data.join("log");
    let mut records = match Records::open(&dir, from) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("aftercart log: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    loop {
        match records.next_record() {
            Ok(Some((offset, record))) => {
                let view = RecordView {
                    offset,
                    record: &record,
                };
                let written = match format {
                    LogFormatArg::Json => serde_json::to_writer(&mut out, &view)
                        .map_err(std::io::Error::other)
                        .and_then(|()| out.write_all(b"\n")),
                    LogFormatArg::Msgpack => rmp_serde::encode::write_named(&mut out, &view)
                        .map_err(std::io::Error::other),
                };
                if written.is_err() {
                    // The reader went away (a closed pipe): stop quietly.
                    return ExitCode::SUCCESS;
                }
            }
            Ok(None) if follow => {
                let _ = out.flush();
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Ok(None) => {
                let _ = out.flush();
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                let _ = out.flush();
                eprintln!("aftercart log: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
}

fn report(
    data: &std::path::Path,
    options: &crate::measure::Options,
    format: ReportFormatArg,
    out: Option<&std::path::Path>,
) -> ExitCode {
    use crate::measure::format::{Format, write};
    use crate::measure::{ReportError, progress::Bar, report_with_progress};
    use std::io::Write;
    let mut bar = Bar::stderr();
    let result = report_with_progress(data, options, &mut |p| bar.update(p));
    bar.finish();
    let report = match result {
        Ok(r) => r,
        Err(e @ ReportError::Options(_)) => {
            eprintln!("aftercart report: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(e) => {
            eprintln!("aftercart report: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(id) = &options.campaign
        && report.campaign(id).is_none()
    {
        eprintln!("aftercart report: campaign {id} does not appear in the log");
    }
    let format = match format {
        ReportFormatArg::Table => Format::Table,
        ReportFormatArg::Json => Format::Json,
        ReportFormatArg::Csv => Format::Csv,
        ReportFormatArg::Html => Format::Html,
    };
    let written = match out {
        Some(path) => std::fs::File::create(path).and_then(|f| {
            let mut w = std::io::BufWriter::new(f);
            write(&report, format, &mut w)?;
            w.into_inner().map_err(|e| e.into_error())?.sync_all()
        }),
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            write(&report, format, &mut w).and_then(|()| w.flush())
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aftercart report: cannot write the report: {e}");
            ExitCode::FAILURE
        }
    }
}

fn synth(what: Synth) -> ExitCode {
    let result = match what {
        Synth::Campaigns { count, out, seed } => write_campaigns(count, &out, seed),
        Synth::Requests {
            count,
            campaigns,
            out,
            seed,
        } => {
            let lines: Vec<String> = crate::synth::requests(count, campaigns, seed)
                .iter()
                .map(|v| v.to_string())
                .collect();
            std::fs::write(&out, lines.join("\n") + "\n")
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aftercart synth: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_campaigns(count: usize, out: &std::path::Path, seed: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    for c in crate::synth::campaigns(count, seed) {
        let json = serde_json::to_vec_pretty(&c).map_err(std::io::Error::other)?;
        std::fs::write(out.join(format!("{}.json", c.id)), json)?;
    }
    Ok(())
}
