//! The decision request: its wire shape, its validation, and the [`Query`] it becomes.

use crate::campaign::Channel;
use crate::consent::Consent;
use crate::identity::{IdHash, IdKind, IdentityHasher};
use crate::index::Query;
use crate::money::Micros;
use crate::validation::{Problems, is_valid_id};
use serde::Deserialize;

/// The request as posted. Every field is optional here so that validation can report
/// all missing ones at once; unknown fields are refused so a typo never goes unnoticed.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    pub placement: Option<String>,
    pub channel: Option<String>,
    pub slots: Option<i64>,
    pub transaction: Option<Transaction>,
    pub customer: Option<Customer>,
    pub context: Option<Context>,
    pub consent: Option<ConsentIn>,
    pub explain: Option<bool>,
    pub test: Option<bool>,
    pub force_creative: Option<String>,
    /// Extra basket categories that are not basket lines (Kevel's `keywords`): matched
    /// like item categories. Not part of this endpoint's wire shape.
    #[serde(skip)]
    pub keywords: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transaction {
    pub id: Option<String>,
    pub total: Option<f64>,
    pub currency: Option<String>,
    pub payment_method: Option<String>,
    pub items: Option<Vec<Item>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub sku: Option<String>,
    pub name: Option<String>,
    pub category: Option<String>,
    pub brand: Option<String>,
    pub price: Option<f64>,
    pub quantity: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    pub ids: Option<Ids>,
    pub loyalty_tier: Option<String>,
    pub new_customer: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ids {
    pub email: Option<String>,
    pub email_sha256: Option<String>,
    pub phone_sha256: Option<String>,
    pub device_id: Option<String>,
    pub loyalty_id: Option<String>,
    pub payment_token: Option<String>,
    pub customer_id: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    pub country: Option<String>,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    pub store_id: Option<String>,
    pub locale: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentIn {
    pub personalization: Option<bool>,
    pub measurement: Option<bool>,
}

/// The longest free-text value accepted (ids, SKUs, categories, names).
const MAX_TEXT: usize = 256;
/// The most units of one basket line.
const MAX_QUANTITY: i64 = 100_000;

/// Limits that come from the deployment's configuration.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_slots: u8,
    pub max_items: usize,
}

/// A validated request, ready for selection.
#[derive(Debug)]
pub struct ValidRequest {
    pub placement: String,
    pub channel: Channel,
    pub slots: u8,
    pub transaction_id: String,
    pub query: Query,
    /// Hashed identifiers, strongest first (empty without personalisation consent).
    pub ids: Vec<IdHash>,
    pub personalization: bool,
    pub measurement: bool,
    pub explain: bool,
    pub test: bool,
    pub force_creative: Option<String>,
}

/// Where a field is. It becomes a path string only when the field has a problem, so
/// checking a valid request (a decision's hot path) allocates no paths.
#[derive(Clone, Copy)]
enum At<'a> {
    Field(&'a str),
    Item(usize, &'static str),
    Id(IdKind),
    Keyword(usize),
}

impl At<'_> {
    fn path(self) -> String {
        match self {
            At::Field(f) => f.to_string(),
            At::Item(i, f) => format!("transaction.items[{i}].{f}"),
            At::Id(kind) => format!("customer.ids.{}", kind.as_str()),
            At::Keyword(i) => format!("keywords[{i}]"),
        }
    }
}

impl<'a> From<&'a str> for At<'a> {
    fn from(f: &'a str) -> At<'a> {
        At::Field(f)
    }
}

/// A trimmed, non-empty text field of bounded length, borrowed from the request.
fn text<'v, 'a>(v: &'v Option<String>, at: impl Into<At<'a>>, p: &mut Problems) -> Option<&'v str> {
    text_in(v.as_deref()?, at, p)
}

/// The same check for a value that is always there (a list entry).
fn text_in<'v, 'a>(s: &'v str, at: impl Into<At<'a>>, p: &mut Problems) -> Option<&'v str> {
    let s = s.trim();
    if s.is_empty() {
        p.push(at.into().path(), "must not be empty");
        None
    } else if s.len() > MAX_TEXT {
        p.push(
            at.into().path(),
            format!("must be at most {MAX_TEXT} characters"),
        );
        None
    } else {
        Some(s)
    }
}

fn money<'a>(v: Option<f64>, at: impl Into<At<'a>>, p: &mut Problems) -> Option<Micros> {
    let n = v?;
    let m = Micros::from_major(n);
    if m.is_none() {
        p.push(at.into().path(), "must be a non-negative amount");
    }
    m
}

/// What the request says about consent, before defaults and `Sec-GPC`.
#[derive(Clone, Copy, Debug)]
pub struct ConsentDefaults {
    pub personalization: bool,
    pub measurement: bool,
    /// The request carried `Sec-GPC: 1` (Global Privacy Control): no personalisation.
    pub gpc: bool,
}

impl DecisionRequest {
    /// Checks everything and builds the query. Every problem is listed with its path.
    pub fn validate(
        self,
        limits: Limits,
        currency: &str,
        consent: ConsentDefaults,
        hasher: &IdentityHasher,
        now_ms: i64,
    ) -> Result<ValidRequest, Problems> {
        self.validate_with(limits, currency, consent, hasher, now_ms, &|_| {
            Consent::default()
        })
    }

    /// Like [`DecisionRequest::validate`], with `stored` telling what the people behind
    /// the request's identifiers recorded (see [`crate::consent`]): withholding, in the
    /// request or in a record, wins; then granting; then the deployment's default.
    pub fn validate_with(
        self,
        limits: Limits,
        currency: &str,
        consent: ConsentDefaults,
        hasher: &IdentityHasher,
        now_ms: i64,
        stored: &dyn Fn(&[IdHash]) -> Consent,
    ) -> Result<ValidRequest, Problems> {
        let mut p = Problems::default();
        let mut q = Query {
            now_ms,
            ..Query::default()
        };

        let placement = match self.placement.as_deref() {
            None => {
                p.push("placement", "is required");
                None
            }
            Some(s) if !is_valid_id(s) => {
                p.push(
                    "placement",
                    "must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
                );
                None
            }
            Some(s) => Some(s.to_string()),
        };
        let channel = match self.channel.as_deref() {
            None => {
                p.push("channel", "is required");
                None
            }
            Some(s) => {
                let c = Channel::parse(s);
                if c.is_none() {
                    p.push(
                        "channel",
                        format!("unknown channel {s:?}; expected online, in_store or app"),
                    );
                }
                c
            }
        };
        let slots = match self.slots {
            None => 1,
            Some(n) if (1..=limits.max_slots as i64).contains(&n) => n as u8,
            Some(_) => {
                p.push(
                    "slots",
                    format!("must be between 1 and {}", limits.max_slots),
                );
                1
            }
        };

        let mut transaction_id = None;
        match &self.transaction {
            None => p.push("transaction", "is required"),
            Some(t) => {
                transaction_id = text(&t.id, "transaction.id", &mut p).map(str::to_string);
                if t.id.is_none() {
                    p.push("transaction.id", "is required");
                }
                let total = money(t.total, "transaction.total", &mut p);
                let same_currency = match t.currency.as_deref() {
                    None => true,
                    Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
                        c.eq_ignore_ascii_case(currency)
                    }
                    Some(_) => {
                        p.push("transaction.currency", "must be a 3-letter ISO 4217 code");
                        false
                    }
                };
                // Order-value predicates compare amounts in the deployment currency only.
                q.order_total = total.filter(|_| same_currency);
                text(&t.payment_method, "transaction.payment_method", &mut p);
                let items = t.items.as_deref().unwrap_or_default();
                if items.len() > limits.max_items {
                    p.push(
                        "transaction.items",
                        format!("must list at most {} items", limits.max_items),
                    );
                }
                for (i, item) in items.iter().take(limits.max_items).enumerate() {
                    if let Some(sku) = text(&item.sku, At::Item(i, "sku"), &mut p) {
                        q.add_sku(sku);
                    }
                    if let Some(c) = text(&item.category, At::Item(i, "category"), &mut p) {
                        q.add_category(c);
                    }
                    if let Some(b) = text(&item.brand, At::Item(i, "brand"), &mut p) {
                        q.add_brand(b);
                    }
                    text(&item.name, At::Item(i, "name"), &mut p);
                    money(item.price, At::Item(i, "price"), &mut p);
                    if let Some(n) = item.quantity
                        && !(1..=MAX_QUANTITY).contains(&n)
                    {
                        p.push(
                            At::Item(i, "quantity").path(),
                            format!("must be between 1 and {MAX_QUANTITY}"),
                        );
                    }
                }
            }
        }

        if let Some(ctx) = &self.context {
            q.country = text(&ctx.country, "context.country", &mut p).map(|s| s.to_uppercase());
            q.region = text(&ctx.region, "context.region", &mut p).map(|s| s.to_uppercase());
            q.store_id = text(&ctx.store_id, "context.store_id", &mut p).map(str::to_string);
            text(&ctx.postal_code, "context.postal_code", &mut p);
            text(&ctx.locale, "context.locale", &mut p);
        }

        if self.keywords.len() > limits.max_items {
            p.push(
                "keywords",
                format!("must list at most {} keywords", limits.max_items),
            );
        }
        for (i, kw) in self.keywords.iter().take(limits.max_items).enumerate() {
            if let Some(kw) = text_in(kw, At::Keyword(i), &mut p) {
                q.add_category(kw);
            }
        }

        let mut ids = Vec::new();
        if let Some(cust) = &self.customer {
            q.loyalty_tier =
                text(&cust.loyalty_tier, "customer.loyalty_tier", &mut p).map(|s| s.to_lowercase());
            q.new_customer = cust.new_customer;
            if let Some(raw) = &cust.ids {
                ids = hash_ids(raw, hasher, &mut p);
            }
        }

        let requested = self.consent.unwrap_or_default();
        let said = Consent {
            personalization: requested.personalization,
            measurement: requested.measurement,
        };
        let said = if ids.is_empty() {
            said
        } else {
            said.and(stored(&ids))
        };
        let personalization =
            said.personalization.unwrap_or(consent.personalization) && !consent.gpc;
        let measurement = said.measurement.unwrap_or(consent.measurement);
        if !personalization {
            // Without personalisation consent identifiers are neither linked nor used.
            ids.clear();
        }
        q.identified = !ids.is_empty();
        q.channel = channel;
        q.placement = placement.clone().unwrap_or_default();

        let force_creative =
            text(&self.force_creative, "force_creative", &mut p).map(str::to_string);
        match (placement, channel, transaction_id) {
            (Some(placement), Some(channel), Some(transaction_id)) if p.is_empty() => {
                Ok(ValidRequest {
                    placement,
                    channel,
                    slots,
                    transaction_id,
                    query: q,
                    ids,
                    personalization,
                    measurement,
                    explain: self.explain.unwrap_or(false),
                    test: self.test.unwrap_or(false),
                    force_creative,
                })
            }
            _ => Err(p),
        }
    }
}

/// Hashes every identifier given, strongest first; the raw e-mail is hashed here and
/// dropped.
fn hash_ids(raw: &Ids, hasher: &IdentityHasher, p: &mut Problems) -> Vec<IdHash> {
    let mut out = Vec::new();
    let fields = [
        (IdKind::CustomerId, &raw.customer_id),
        (IdKind::LoyaltyId, &raw.loyalty_id),
        (IdKind::EmailSha256, &raw.email_sha256),
        (IdKind::PhoneSha256, &raw.phone_sha256),
        (IdKind::PaymentToken, &raw.payment_token),
        (IdKind::DeviceId, &raw.device_id),
    ];
    for (kind, value) in fields {
        let Some(v) = text(value, At::Id(kind), p) else {
            continue;
        };
        match hasher.hash_given(kind, v) {
            Ok(h) => out.push(h),
            Err(e) => p.push(At::Id(kind).path(), e),
        }
    }
    if let Some(email) = raw.email.as_deref() {
        match hasher.hash_given_email(email) {
            Ok(h) if !out.contains(&h) => out.push(h),
            Ok(_) => {}
            Err(e) => p.push("customer.ids.email", e),
        }
    }
    out
}
