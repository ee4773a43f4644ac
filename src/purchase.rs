//! In-unit purchases: a shopper buys the product of an offer without leaving the page.
//!
//! The offer's sealed token says which decision, slot, product, price and location the
//! shopper saw. A purchase then, in this order:
//!
//! 1. claims the token (one purchase per decision and slot): a concurrent second
//!    attempt finds the claim and gets `already_purchased`;
//! 2. takes the stock at the token's location under that SKU's entry lock, so
//!    concurrent purchases can never take more than is left;
//! 3. logs a durable `purchase` record (the retailer's order system reads it), and
//!    only then answers `201`.
//!
//! If the log refuses, the stock and the claim are given back, so nothing is sold
//! that the log does not know.
//!
//! In a fleet that shares stock (see [`crate::cluster`]), step 2 takes the stock in
//! the shared store instead, atomically across nodes; if the store does not answer
//! in time the purchase is refused with nothing taken ([`PurchaseError::StockUnavailable`]).

use crate::app::App;
use crate::exposure::record::ConversionType;
use crate::exposure::{Kind, LogUnavailable};
use crate::inventory::TakeError;
use crate::ledger::Event;
use crate::money::Micros;
use crate::token::TokenError;
use serde::Serialize;

/// The `201` body.
#[derive(Debug, Serialize)]
pub struct Order {
    pub order_id: String,
    pub sku: String,
    pub quantity: u32,
    pub total: Micros,
}

#[derive(Debug, thiserror::Error)]
pub enum PurchaseError {
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error("this offer is not a product that can be bought here")]
    NotAProduct,
    #[error("the offer has expired")]
    Expired,
    #[error("this offer was already bought")]
    AlreadyPurchased,
    #[error("out of stock: {left} left")]
    OutOfStock { left: i64 },
    #[error("{0}")]
    Log(#[from] LogUnavailable),
    #[error("the shared stock could not be reached")]
    StockUnavailable,
}

/// The order id of the purchase made from decision `decision`, slot `slot`: stable, so
/// the record and any later conversion the retailer posts for it agree.
pub fn order_id(decision: u128, slot: u8) -> String {
    format!("ac_{decision:032x}{slot:02x}")
}

/// Buys `quantity` of the token's product.
pub async fn buy(app: &App, token: &str, quantity: u32) -> Result<Order, PurchaseError> {
    let t = app.decider.sealer().open(token)?;
    let (sku, unit_price) = t.product.clone().ok_or(PurchaseError::NotAProduct)?;
    let now = app.clock.now_ms();
    if now - t.issued_ms > app.config.click_ttl_secs as i64 * 1000 {
        return Err(PurchaseError::Expired);
    }
    if !app
        .ledger
        .first_event(t.decision.0, t.slot, Event::Purchase, t.issued_ms)
    {
        return Err(PurchaseError::AlreadyPurchased);
    }
    let order = order_id(t.decision.0, t.slot);
    let booked = match take(app, &sku, &t.location, quantity, now, &order).await {
        Ok(at) => at,
        Err(e) => {
            app.ledger
                .unmark_event(t.decision.0, t.slot, Event::Purchase);
            return Err(e);
        }
    };
    let total = unit_price.saturating_mul(i64::from(quantity));
    let mut r = crate::tracking::offer_record(Kind::Purchase, &t, now);
    r.order_id = Some(order.clone());
    r.sku = Some(sku.clone());
    r.quantity = Some(quantity);
    r.price = Some(unit_price);
    r.total = Some(total);
    r.currency = Some(app.config.currency.clone());
    r.occurred = Some(booked);
    if let Err(e) = app.log.append_durable(Kind::Purchase, &[r]).await {
        give_back(app, &sku, &t.location, quantity, booked, &order).await;
        app.ledger
            .unmark_event(t.decision.0, t.slot, Event::Purchase);
        return Err(e.into());
    }
    // The retailer may post this order as a conversion too: it is the same order.
    let key = app
        .ledger
        .conversion_key(t.channel.as_str(), &order, ConversionType::Purchase);
    app.ledger.first_conversion(key, now);
    app.metrics.events.with_label_values(&["purchase"]).inc();
    Ok(Order {
        order_id: order,
        sku,
        quantity,
        total: Micros(total),
    })
}

/// Takes the stock of a purchase: in the fleet's shared store when there is one, else
/// here. Returns the time the sale is booked at.
async fn take(
    app: &App,
    sku: &str,
    location: &str,
    quantity: u32,
    now: i64,
    order: &str,
) -> Result<i64, PurchaseError> {
    #[cfg(feature = "redis")]
    if let Some(fleet) = app.fleet.get() {
        use crate::cluster::redis::stock::Taken;
        return match fleet.stock.take(sku, location, quantity, now, order).await {
            Ok(Taken::Booked(at)) => Ok(at),
            Ok(Taken::OutOfStock { left }) => Err(PurchaseError::OutOfStock { left }),
            Ok(Taken::Unmanaged) => Err(PurchaseError::NotAProduct),
            Err(e) => {
                tracing::warn!(error = %e, "purchase refused: the shared stock did not answer");
                Err(PurchaseError::StockUnavailable)
            }
        };
    }
    let _ = order;
    app.inventory
        .take(sku, location, quantity, now)
        .map_err(|e| match e {
            TakeError::Unmanaged => PurchaseError::NotAProduct,
            TakeError::OutOfStock { left } => PurchaseError::OutOfStock { left },
        })
}

/// Undoes [`take`] for a purchase the log refused.
async fn give_back(app: &App, sku: &str, location: &str, quantity: u32, booked: i64, order: &str) {
    #[cfg(feature = "redis")]
    if let Some(fleet) = app.fleet.get() {
        if let Err(e) = fleet.stock.give_back(sku, location, quantity, order).await {
            // The unit stays counted as sold until the next feed for it: unsold
            // stock held back, never stock sold twice.
            tracing::error!(error = %e, sku, location, "could not give back the stock of a purchase the log refused");
        }
        return;
    }
    let _ = order;
    app.inventory.give_back(sku, location, quantity, booked);
}
