//! Decisions: from a checkout's confirmation context to ranked, tracked offers.
//!
//! [`Decider::decide`] validates the request, loads the current campaign snapshot once,
//! selects (see [`select`]), seals one tracking token per offer and remembers the
//! decision for replays of the same transaction.

mod gate;
mod replay;
mod request;
pub(crate) mod response;
pub mod select;

pub use replay::ReplayCache;
pub use request::{
    ConsentDefaults, ConsentIn, Context, Customer, DecisionRequest, Ids, Item, Limits, Transaction,
    ValidRequest,
};
pub use response::DecisionView;
pub use select::{Explain, Winner};

use crate::campaign::Channel;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::consent::{Consent, ConsentStore};
use crate::delivery::Delivery;
use crate::exposure::record::{H128, LoggedId};
use crate::exposure::{Kind, Record};
use crate::identity::IdentityHasher;
use crate::ids::DecisionId;
use crate::index::{CompiledCreative, SharedSnapshot};
use crate::inventory::{Availability, Inventory, ONLINE};
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::token::{TokenPayload, TokenSealer};
use crate::validation::{Detail, Problems};
use select::SelectionInput;
use std::sync::Arc;

/// One offer as served: the winner and its sealed tracking token.
#[derive(Debug)]
pub struct ServedOffer {
    pub winner: Winner,
    pub token: String,
    /// A product with reported stock here: the offer gets a purchase URL.
    pub purchasable: bool,
    /// For such a product, the units left here when the offer was chosen (a page may
    /// say "only 3 left"); a replay shows the same figure, as it shows the same offer.
    pub stock: Option<i64>,
}

/// A decision as made, kept for replays.
#[derive(Debug)]
pub struct Decision {
    pub id: DecisionId,
    pub made_ms: i64,
    pub channel: Channel,
    pub offers: Vec<ServedOffer>,
}

/// The answer to one request.
pub struct Outcome {
    pub decision: Arc<Decision>,
    pub explain: Option<Explain>,
    /// A reload of an earlier decision: nothing was counted again.
    pub replayed: bool,
    /// An admin preview: nothing was logged, charged or remembered.
    pub test: bool,
    /// The records to log for this decision (`decision` per offer, or one `nofill`);
    /// empty for replays and previews.
    pub records: Vec<Record>,
    /// The replay key, to forget the decision if its records cannot be logged.
    pub replay_key: Option<u128>,
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    #[error("invalid decision request")]
    Invalid(Vec<Detail>),
    #[error("{0}")]
    Forbidden(Detail),
    #[error("too many decisions for this profile")]
    RateLimited,
}

/// Who is asking, as the HTTP layer established it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Caller {
    pub admin: bool,
    /// `Sec-GPC: 1` was sent.
    pub gpc: bool,
}

pub struct Decider {
    snapshot: SharedSnapshot,
    config: Arc<Config>,
    sealer: TokenSealer,
    hasher: IdentityHasher,
    replay: ReplayCache,
    clock: SharedClock,
    metrics: Metrics,
    inventory: Arc<Inventory>,
    delivery: Arc<Delivery>,
    ledger: Arc<Ledger>,
    consent: Arc<ConsentStore>,
    /// Decisions per profile (`None`: no limit).
    profile_limiter: Option<crate::traffic::RateLimiter<u128>>,
}

/// What the decision path shares with the rest of the server: stock, delivery state,
/// the ledger's spend and stored consent.
pub struct LiveState {
    pub inventory: Arc<Inventory>,
    pub delivery: Arc<Delivery>,
    pub ledger: Arc<Ledger>,
    pub consent: Arc<ConsentStore>,
}

impl Decider {
    pub fn new(
        snapshot: SharedSnapshot,
        config: Arc<Config>,
        token_key: &[u8; 32],
        identity_key: &[u8; 32],
        clock: SharedClock,
        metrics: Metrics,
        live: LiveState,
    ) -> Decider {
        let now = clock.now_ms();
        Decider {
            replay: ReplayCache::new(
                config.decision_replay_secs as i64 * 1000,
                (config.decision_replay_memory_mb as usize).saturating_mul(1 << 20),
                now,
            ),
            snapshot,
            sealer: TokenSealer::new(token_key),
            hasher: IdentityHasher::new(identity_key),
            clock,
            metrics,
            inventory: live.inventory,
            delivery: live.delivery,
            ledger: live.ledger,
            consent: live.consent,
            profile_limiter: crate::traffic::RateLimiter::new(
                f64::from(config.rate_limit_per_profile) / 60.0,
                config.rate_limit_per_profile,
            ),
            config,
        }
    }

    /// Memory held by the decisions kept for replays.
    pub fn replay_bytes(&self) -> usize {
        self.replay.bytes()
    }

    pub fn sealer(&self) -> &TokenSealer {
        &self.sealer
    }

    /// Checks a request as [`Decider::decide`] would, deciding nothing: for endpoints
    /// that must refuse a whole batch of decisions before making any.
    pub fn check(&self, req: &DecisionRequest, caller: Caller) -> Result<(), DecisionError> {
        self.validated(req.clone(), caller, self.clock.now_ms())
            .map(|_| ())
    }

    /// The request validated (with the consent its people recorded), or why not.
    fn validated(
        &self,
        req: DecisionRequest,
        caller: Caller,
        now: i64,
    ) -> Result<ValidRequest, DecisionError> {
        let limits = Limits {
            max_slots: self.config.max_slots,
            max_items: self.config.max_items,
        };
        let consent = ConsentDefaults {
            personalization: self.config.default_consent.personalization,
            measurement: self.config.default_consent.measurement,
            gpc: caller.gpc,
        };
        let admin_only = [
            ("explain", req.explain.unwrap_or(false)),
            ("test", req.test.unwrap_or(false)),
            ("force_creative", req.force_creative.is_some()),
        ];
        if !caller.admin
            && let Some((field, _)) = admin_only.iter().find(|(_, used)| *used)
        {
            return Err(DecisionError::Forbidden(Detail::new(
                *field,
                "needs the admin key",
            )));
        }
        let stored = |ids: &[crate::identity::IdHash]| -> Consent {
            self.consent.for_request(ids, &self.delivery.graph)
        };
        let req = req
            .validate_with(
                limits,
                &self.config.currency,
                consent,
                &self.hasher,
                now,
                &stored,
            )
            .map_err(|p: Problems| DecisionError::Invalid(p.0))?;
        if req.force_creative.is_some() && !req.test {
            return Err(DecisionError::Invalid(vec![Detail::new(
                "force_creative",
                "is only allowed with \"test\": true",
            )]));
        }
        Ok(req)
    }

    pub fn decide(&self, req: DecisionRequest, caller: Caller) -> Result<Outcome, DecisionError> {
        let now = self.clock.now_ms();
        let req = self.validated(req, caller, now)?;

        let replay_key = (!req.test).then(|| self.replay.key(&req.placement, &req.transaction_id));
        if let Some(key) = replay_key
            && !req.explain
            && let Some(decision) = self.replay.get(key, now)
        {
            self.count(req.channel, "replay", &[]);
            return Ok(Outcome {
                decision,
                explain: None,
                replayed: true,
                test: false,
                records: Vec::new(),
                replay_key: None,
            });
        }

        // The profile: identifiers seen together are linked (not in a preview, which
        // changes nothing), and the request is served as the profile they resolve to.
        let profile = if !req.personalization || req.ids.is_empty() {
            None
        } else if req.test {
            (req.ids.iter()).find_map(|&h| self.delivery.graph.profile_of(h).map(|p| p.0))
        } else {
            self.delivery.link(&req.ids).map(|l| {
                if l.refused {
                    self.metrics.identity_links_refused.inc();
                }
                l.profile.0
            })
        };

        if let (Some(limiter), Some(p), false) = (&self.profile_limiter, profile, req.test)
            && !limiter.allow(&p, now)
        {
            return Err(DecisionError::RateLimited);
        }

        let snap = self.snapshot.load();
        let id = DecisionId::mint(now);
        let location = match (req.channel, &req.query.store_id) {
            (Channel::InStore, Some(store)) => store.clone(),
            _ => ONLINE.to_string(),
        };
        let in_stock = |cr: &CompiledCreative| {
            cr.doc
                .product
                .as_ref()
                .is_none_or(|p| self.inventory.availability(&p.sku, &location).can_offer())
        };
        let gate = gate::LiveGate {
            delivery: &self.delivery,
            ledger: &self.ledger,
            metrics: &self.metrics,
            profile,
            holdout_eligible: req.personalization && req.measurement,
            channel: req.channel,
            now_ms: now,
            seed: id.0 as u64,
            dry_run: req.test,
            controls: Default::default(),
        };
        let input = SelectionInput {
            decision: id,
            slots: req.slots,
            rules: self.config.placement(&req.placement),
            explain: req.explain,
            full_scan: false,
            creative_ok: Some(&in_stock),
            gate: Some(&gate),
        };
        let (mut winners, explain) = select::select(&snap, &req.query, &input);
        if let Some(forced) = &req.force_creative {
            let Some((campaign, creative)) = select::find_creative(&snap, forced) else {
                return Err(DecisionError::Invalid(vec![Detail::new(
                    "force_creative",
                    "no loaded campaign has this creative",
                )]));
            };
            winners.retain(|w| w.campaign.advertiser != campaign.advertiser);
            let ecpm = campaign.ecpm(crate::index::PRIOR_CTR);
            winners.insert(
                0,
                Winner {
                    slot: 0,
                    campaign,
                    creative,
                    ecpm,
                    reserved: 0,
                },
            );
            winners.truncate(req.slots as usize);
            for (i, w) in winners.iter_mut().enumerate() {
                w.slot = i as u8;
            }
        }

        let controls = gate.controls.into_inner();
        // Tokens and records name the profile only with measurement consent.
        let logged_profile = profile.filter(|_| req.measurement);
        let offers = winners
            .into_iter()
            .map(|w| {
                let c = &w.campaign;
                let creative = &c.creatives[w.creative];
                let token = self.sealer.seal(&TokenPayload {
                    decision: id,
                    slot: w.slot,
                    campaign: c.id.to_string(),
                    creative: creative.id.to_string(),
                    profile: logged_profile,
                    channel: req.channel,
                    placement: req.placement.clone(),
                    location: location.clone(),
                    model: c.bid.model,
                    price: c.price().0,
                    product: creative
                        .doc
                        .product
                        .as_ref()
                        .map(|p| (p.sku.clone(), p.price.0)),
                    issued_ms: now,
                    reserved: w.reserved,
                });
                let stock = creative.doc.product.as_ref().and_then(|p| {
                    match self.inventory.availability(&p.sku, &location) {
                        Availability::InStock(n) => Some(n),
                        _ => None,
                    }
                });
                ServedOffer {
                    winner: w,
                    token,
                    purchasable: stock.is_some(),
                    stock,
                }
            })
            .collect();
        let mut decision = Arc::new(Decision {
            id,
            made_ms: now,
            channel: req.channel,
            offers,
        });

        if req.test {
            self.count(req.channel, "test", &[]);
            return Ok(Outcome {
                decision,
                explain,
                replayed: false,
                test: true,
                records: Vec::new(),
                replay_key: None,
            });
        }
        if let Some(key) = replay_key
            && let Err(first) = self.replay.insert_or_get(key, decision.clone(), now)
        {
            // A concurrent request for the same transaction won: answer with its decision,
            // and give back what this one reserved.
            for o in &decision.offers {
                let c = &o.winner.campaign;
                (self.delivery.budgets).settle(&c.live, now, o.winner.reserved);
            }
            decision = first;
            self.count(req.channel, "replay", &[]);
            return Ok(Outcome {
                decision,
                explain,
                replayed: true,
                test: false,
                records: Vec::new(),
                replay_key: None,
            });
        }
        let outcome = if decision.offers.is_empty() {
            "nofill"
        } else {
            "fill"
        };
        self.count(req.channel, outcome, &decision.offers);
        if let Some(p) = profile {
            let offers = decision.offers.len() as u64;
            self.delivery.profiles.saw(p, now, offers, 0);
            // Frequency caps count offers served to the profile.
            for o in &decision.offers {
                let c = &o.winner.campaign;
                if c.cap_window_ms > 0 {
                    (self.delivery.profiles).served(p, c.id_hash, now, c.cap_window_ms);
                }
            }
            // The rest of a fleet links the same identifiers and counts the same offers,
            // so caps hold on every node (queued; never waits).
            if let Some(fleet) = self.delivery.replication.get() {
                let capped: Vec<(u64, i64)> = (decision.offers.iter())
                    .map(|o| &o.winner.campaign)
                    .filter(|c| c.cap_window_ms > 0)
                    .map(|c| (c.id_hash, c.cap_window_ms))
                    .collect();
                if !capped.is_empty() || req.ids.len() > 1 {
                    fleet.decided(&req.ids, &capped, now);
                }
            }
        }
        let logged = Logged {
            req: &req,
            profile: logged_profile,
            location: &location,
            now,
        };
        let records = decision_records(&decision, &controls, &logged);
        Ok(Outcome {
            decision,
            explain,
            replayed: false,
            test: false,
            records,
            replay_key,
        })
    }

    /// Forgets a remembered decision whose records could not be logged, so that a
    /// reload does not serve offers the log never saw.
    pub fn forget(&self, replay_key: u128) {
        self.replay.remove(replay_key);
    }

    fn count(&self, channel: Channel, outcome: &str, offers: &[ServedOffer]) {
        let hot = &self.metrics.hot;
        let ch = channel as usize;
        match outcome {
            "fill" => hot.filled[ch].inc(),
            "nofill" => hot.nofill[ch].inc(),
            _ => self
                .metrics
                .decisions
                .with_label_values(&[channel.as_str(), outcome])
                .inc(),
        }
        for o in offers {
            let kind = o.winner.campaign.creatives[o.winner.creative].kind;
            hot.offers[ch][kind as usize].inc();
        }
    }

    /// Counts a request refused by validation.
    pub fn count_invalid(&self) {
        self.metrics
            .decisions
            .with_label_values(&["unknown", "invalid"])
            .inc();
    }
}

/// What every record of one decision shares.
struct Logged<'a> {
    req: &'a ValidRequest,
    /// The profile, with measurement consent.
    profile: Option<u128>,
    location: &'a str,
    now: i64,
}

/// The log records of a fresh decision: a `decision` per offer (or one `nofill`), then
/// a `control` per held-out campaign. Without measurement consent they keep campaign,
/// creative, channel and price, but no identifier, profile or order id.
fn decision_records(
    decision: &Decision,
    controls: &[(u8, Arc<crate::index::CompiledCampaign>)],
    l: &Logged,
) -> Vec<Record> {
    let req = l.req;
    let base = |kind: Kind| {
        let mut r = Record::new(kind, l.now);
        r.decision_id = Some(H128(decision.id.0));
        r.placement = Some(req.placement.clone());
        r.channel = Some(req.channel);
        r.location = Some(l.location.to_string());
        if req.measurement {
            r.profile = l.profile.map(H128);
            r.transaction_id = Some(req.transaction_id.clone());
        }
        r
    };
    let campaign = |r: &mut Record, c: &crate::index::CompiledCampaign| {
        r.campaign = Some(c.id.to_string());
        r.advertiser = Some(c.advertiser.to_string());
        r.model = Some(c.bid.model);
        r.price = Some(c.price().0);
    };
    let mut records: Vec<Record> = (decision.offers.iter())
        .map(|o| {
            let c = &o.winner.campaign;
            let mut r = base(Kind::Decision);
            r.slot = Some(o.winner.slot);
            campaign(&mut r, c);
            r.creative = Some(c.creatives[o.winner.creative].id.to_string());
            r
        })
        .collect();
    if records.is_empty() {
        records.push(base(Kind::Nofill));
    }
    records.extend(controls.iter().map(|(slot, c)| {
        let mut r = base(Kind::Control);
        r.slot = Some(*slot);
        campaign(&mut r, c);
        r
    }));
    // The identifiers seen together are written once per decision, on its first
    // record: the same for every slot, and what a replay links again.
    if req.measurement {
        records[0].ids = req.ids.iter().map(|&h| LoggedId::from(h)).collect();
    }
    records
}
