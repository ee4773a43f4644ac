//! Publishing campaign changes to the decision path.
//!
//! Provisional: every change rebuilds the snapshot in full (incremental publishing
//! replaces this).

use super::{CompiledCampaign, SharedSnapshot, Snapshot};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

pub struct Publisher {
    shared: SharedSnapshot,
    write: Mutex<()>,
}

impl Publisher {
    pub fn new(shared: SharedSnapshot) -> Publisher {
        Publisher {
            shared,
            write: Mutex::new(()),
        }
    }

    pub fn shared(&self) -> &SharedSnapshot {
        &self.shared
    }

    /// Adds or replaces `upserts` (by id) and removes the campaigns named in
    /// `removals`, publishing a snapshot that has them before returning.
    pub fn publish(&self, upserts: Vec<Arc<CompiledCampaign>>, removals: Vec<Arc<str>>) {
        let _writer = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.shared.load();
        let gone: HashSet<&str> = removals
            .iter()
            .map(|r| &**r)
            .chain(upserts.iter().map(|c| &*c.id))
            .collect();
        let mut all: Vec<Arc<CompiledCampaign>> = current
            .campaigns()
            .iter()
            .filter(|c| !gone.contains(&*c.id))
            .cloned()
            .collect();
        all.extend(upserts);
        self.shared.store(Arc::new(Snapshot::build(all)));
    }

    /// Replaces the whole set (start-up and folder reload).
    pub fn replace_all(&self, campaigns: Vec<Arc<CompiledCampaign>>) {
        let _writer = self.write.lock().unwrap_or_else(|p| p.into_inner());
        self.shared.store(Arc::new(Snapshot::build(campaigns)));
    }
}
