//! The running server's shared state, built once from the configuration.
//!
//! [`App`] is the cheap-to-share handle every request gets: the configuration, the
//! published campaign snapshot, the decider and the metrics. Building it loads the
//! campaigns folder (refusing it whole if any file is wrong) and the deployment's
//! secrets, creating those on first start.

use crate::campaign::{FolderError, ValidationRules, load_folder};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::decision::Decider;
use crate::index::{CompiledCampaign, SharedSnapshot, Snapshot};
use crate::metrics::Metrics;
use crate::secrets;
use arc_swap::ArcSwap;
use http::HeaderMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use subtle::ConstantTimeEq;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the campaigns folder has {} problem(s)", .0.len())]
    Campaigns(Vec<FolderError>),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct App {
    pub config: Arc<Config>,
    pub snapshot: SharedSnapshot,
    pub decider: Decider,
    pub metrics: Metrics,
    pub clock: SharedClock,
    admin_key: String,
    /// Where a generated admin key was written, to tell the operator.
    pub admin_key_file: Option<PathBuf>,
    ready: AtomicBool,
}

impl App {
    pub fn start(config: Config, clock: SharedClock) -> Result<Arc<App>, StartError> {
        let io = |what, path: &PathBuf| {
            let path = path.clone();
            move |source| StartError::Io { what, path, source }
        };
        let data = config.data.clone();
        std::fs::create_dir_all(&data).map_err(io("cannot create the data folder", &data))?;

        let token_path = data.join("token.secret");
        let token_key = match config.token_secret {
            Some(k) => k,
            None => secrets::load_or_create_key(&token_path)
                .map_err(io("cannot read or create", &token_path))?,
        };
        let identity_path = data.join("identity.secret");
        let identity_key = match config.identity_secret {
            Some(k) => k,
            None => secrets::load_or_create_key(&identity_path)
                .map_err(io("cannot read or create", &identity_path))?,
        };
        let admin_path = data.join("admin.key");
        let (admin_key, admin_key_file) = match &config.admin_key {
            Some(k) => (k.clone(), None),
            None => {
                let (key, _) = secrets::load_or_create_admin_key(&admin_path)
                    .map_err(io("cannot read or create", &admin_path))?;
                (key, Some(admin_path))
            }
        };

        let metrics = Metrics::new();
        let snapshot: SharedSnapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
        let config = Arc::new(config);
        let decider = Decider::new(
            snapshot.clone(),
            config.clone(),
            &token_key,
            &identity_key,
            clock.clone(),
            metrics.clone(),
        );
        let app = App {
            config,
            snapshot,
            decider,
            metrics,
            clock,
            admin_key,
            admin_key_file,
            ready: AtomicBool::new(false),
        };
        app.reload_campaigns().map_err(StartError::Campaigns)?;
        app.ready.store(true, Ordering::SeqCst);
        Ok(Arc::new(app))
    }

    /// Loads the campaigns folder and publishes it. On any problem the running set
    /// is kept and every problem is returned.
    pub fn reload_campaigns(&self) -> Result<usize, Vec<FolderError>> {
        let rules = ValidationRules {
            allow_http_urls: self.config.allow_http_urls,
        };
        let folder = load_folder(&self.config.campaigns, rules)?;
        let compiled: Vec<Arc<CompiledCampaign>> = folder
            .campaigns
            .into_iter()
            .map(|c| {
                Arc::new(CompiledCampaign::compile(
                    Arc::new(c),
                    self.config.timezone,
                    None,
                ))
            })
            .collect();
        let n = compiled.len();
        self.snapshot.store(Arc::new(Snapshot::build(compiled)));
        self.metrics.campaigns_loaded.set(n as i64);
        Ok(n)
    }

    /// The request carries the admin key (`Authorization: Bearer KEY`), compared in
    /// constant time so response timing reveals nothing about the key.
    pub fn is_admin(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        given
            .trim()
            .as_bytes()
            .ct_eq(self.admin_key.as_bytes())
            .into()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}
