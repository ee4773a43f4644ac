//! Reading a campaign document, reporting every mistake with its JSON path.

use super::*;
use crate::validation::{Problems, Reader, check_id};
use serde_json::Value;

/// The largest holdout share: a campaign held out from everyone would never serve.
const MAX_HOLDOUT_PERCENT: f64 = 90.0;
/// The longest frequency-cap window and purchaser exclusion: one year.
const MAX_WINDOW_SECONDS: i64 = 366 * 86_400;

/// Parses a document from JSON or MessagePack bytes (by `msgpack`) and validates it.
pub fn parse_campaign_bytes(
    bytes: &[u8],
    msgpack: bool,
    rules: ValidationRules,
) -> Result<Campaign, Problems> {
    let value: Value = if msgpack {
        rmp_serde::from_slice(bytes).map_err(|e| one("", format!("invalid MessagePack: {e}")))?
    } else {
        serde_json::from_slice(bytes).map_err(|e| one("", format!("invalid JSON: {e}")))?
    };
    parse_campaign(&value, "", rules)
}

fn one(path: &str, message: String) -> Problems {
    let mut p = Problems::default();
    p.push(path, message);
    p
}

/// Validates one campaign document found at `path` (empty for a whole document, or
/// `[3]` inside a batch). Every problem is listed; nothing partial is returned.
pub fn parse_campaign(v: &Value, path: &str, rules: ValidationRules) -> Result<Campaign, Problems> {
    let mut p = Problems::default();
    let campaign = read_campaign(v, path, rules, &mut p);
    match campaign {
        Some(c) if p.is_empty() => Ok(c),
        _ => {
            if p.is_empty() {
                p.push(path, "invalid campaign");
            }
            Err(p)
        }
    }
}

fn read_campaign(
    v: &Value,
    path: &str,
    rules: ValidationRules,
    p: &mut Problems,
) -> Option<Campaign> {
    let mut r = Reader::object(v, path, p)?;
    let id = r
        .required_string("id", p)
        .filter(|id| check_id(id, &r.field_path("id"), p));
    let advertiser = r
        .required_string("advertiser", p)
        .filter(|a| check_id(a, &r.field_path("advertiser"), p));
    let name = r
        .required_string("name", p)
        .filter(|n| non_empty(n, &r.field_path("name"), p));
    let status = r.string("status", p).map_or(Some(Status::Active), |s| {
        parse_enum(
            s,
            Status::parse,
            "active, paused, pending_review, archived",
            &r.field_path("status"),
            p,
        )
    });
    let start = r
        .required_string("start", p)
        .and_then(|s| time(s, &r.field_path("start"), p));
    let end = r
        .required_string("end", p)
        .and_then(|s| time(s, &r.field_path("end"), p));
    if let (Some(s), Some(e)) = (start, end)
        && e <= s
    {
        p.push(r.field_path("end"), "must be after start");
    }
    let timezone = r.string("timezone", p).and_then(|tz| {
        if tz.parse::<chrono_tz::Tz>().is_ok() {
            Some(tz.to_string())
        } else {
            p.push(
                r.field_path("timezone"),
                format!("unknown IANA time zone {tz:?}"),
            );
            None
        }
    });
    let budget = r
        .raw("budget")
        .map(|b| read_budget(b, &r.field_path("budget"), p));
    let pacing = r.string("pacing", p).map_or(Some(Pacing::Even), |s| {
        parse_enum(
            s,
            |s| match s {
                "even" => Some(Pacing::Even),
                "asap" => Some(Pacing::Asap),
                _ => None,
            },
            "even, asap",
            &r.field_path("pacing"),
            p,
        )
    });
    let bid = r
        .required("bid", p)
        .and_then(|b| read_bid(b, &r.field_path("bid"), p));
    let priority = r
        .integer("priority", 0..=1000, p)
        .map_or(DEFAULT_PRIORITY, |n| n as u32);
    let frequency_caps = r.array("frequency_caps", p, read_cap);
    let competitive_category = r
        .string("competitive_category", p)
        .filter(|c| non_empty(c, &r.field_path("competitive_category"), p))
        .map(str::to_lowercase);
    let holdout_percent = r.number("holdout_percent", p).unwrap_or(0.0);
    if holdout_percent > MAX_HOLDOUT_PERCENT {
        p.push(
            r.field_path("holdout_percent"),
            format!("must be at most {MAX_HOLDOUT_PERCENT}"),
        );
    }
    let targeting = match r.raw("targeting") {
        Some(t) => read_targeting(t, &r.field_path("targeting"), p),
        None => Some(Targeting::default()),
    };
    let conversion = match r.raw("conversion") {
        Some(c) => read_conversion(c, &r.field_path("conversion"), p),
        None => Some(ConversionRule::default()),
    };
    let creatives_path = r.field_path("creatives");
    let creatives = match r.required("creatives", p) {
        Some(Value::Array(items)) if items.is_empty() => {
            p.push(&creatives_path, "must list at least one creative");
            Vec::new()
        }
        Some(_) => r.array("creatives", p, |v, path, p| {
            read_creative(v, path, rules, p)
        }),
        None => Vec::new(),
    };
    let mut seen = std::collections::HashSet::new();
    for (i, c) in creatives.iter().enumerate() {
        if !seen.insert(c.id.as_str()) {
            p.push(
                format!("{creatives_path}[{i}].id"),
                format!("duplicate creative id {:?}", c.id),
            );
        }
    }
    r.finish(p);
    Some(Campaign {
        id: id?.to_string(),
        advertiser: advertiser?.to_string(),
        name: name?.to_string(),
        status: status?,
        start: start?,
        end: end?,
        timezone,
        budget: budget.unwrap_or(Some(Budget::default()))?,
        pacing: pacing?,
        bid: bid?,
        priority,
        frequency_caps: frequency_caps.into_iter().collect(),
        competitive_category,
        holdout_percent,
        targeting: targeting?,
        conversion: conversion?,
        creatives,
    })
}

fn non_empty(s: &str, path: &str, p: &mut Problems) -> bool {
    let ok = !s.trim().is_empty();
    if !ok {
        p.push(path, "must not be empty");
    }
    ok
}

fn parse_enum<T>(
    s: &str,
    f: impl Fn(&str) -> Option<T>,
    allowed: &str,
    path: &str,
    p: &mut Problems,
) -> Option<T> {
    let v = f(s);
    if v.is_none() {
        p.push(
            path,
            format!("unknown value {s:?}; expected one of {allowed}"),
        );
    }
    v
}

fn time(s: &str, path: &str, p: &mut Problems) -> Option<DateTime<Utc>> {
    match DateTime::parse_from_rfc3339(s) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(e) => {
            p.push(path, format!("not an RFC 3339 timestamp ({e})"));
            None
        }
    }
}

fn money(r: &mut Reader, key: &'static str, p: &mut Problems) -> Option<Micros> {
    let n = r.number(key, p)?;
    let m = Micros::from_major(n);
    if m.is_none() {
        p.push(r.field_path(key), "amount too large");
    }
    m
}

fn read_budget(v: &Value, path: &str, p: &mut Problems) -> Option<Budget> {
    let mut r = Reader::object(v, path, p)?;
    let budget = Budget {
        daily: money(&mut r, "daily", p),
        total: money(&mut r, "total", p),
    };
    r.finish(p);
    Some(budget)
}

fn read_bid(v: &Value, path: &str, p: &mut Problems) -> Option<Bid> {
    let mut r = Reader::object(v, path, p)?;
    let model = r.required_string("model", p).and_then(|m| {
        parse_enum(
            m,
            |m| match m {
                "cpm" => Some(BidModel::Cpm),
                "cpc" => Some(BidModel::Cpc),
                _ => None,
            },
            "cpm, cpc",
            &r.field_path("model"),
            p,
        )
    });
    let amount = required_money(&mut r, "amount", p);
    r.finish(p);
    Some(Bid {
        model: model?,
        amount: amount?,
    })
}

fn read_cap(v: &Value, path: &str, p: &mut Problems) -> Option<FrequencyCap> {
    let mut r = Reader::object(v, path, p)?;
    let max = required_int(&mut r, "max", 1..=1_000_000, p);
    let per = required_int(&mut r, "per_seconds", 1..=MAX_WINDOW_SECONDS, p);
    r.finish(p);
    Some(FrequencyCap {
        max: max? as u32,
        per_seconds: per? as u64,
    })
}

fn required_int(
    r: &mut Reader,
    key: &'static str,
    range: std::ops::RangeInclusive<i64>,
    p: &mut Problems,
) -> Option<i64> {
    r.required(key, p)?;
    r.integer(key, range, p)
}

fn required_money(r: &mut Reader, key: &'static str, p: &mut Problems) -> Option<Micros> {
    r.required(key, p)?;
    money(r, key, p)
}

/// Non-empty strings, as given (ids, SKUs, store ids).
fn exact_list(r: &mut Reader, key: &'static str, p: &mut Problems) -> Vec<String> {
    let path = r.field_path(key);
    r.strings(key, p)
        .into_iter()
        .enumerate()
        .filter(|(i, s)| non_empty(s, &format!("{path}[{i}]"), p))
        .map(|(_, s)| s.to_string())
        .collect()
}

/// Non-empty strings compared case-insensitively (brands, categories, tiers).
fn folded_list(r: &mut Reader, key: &'static str, p: &mut Problems) -> Vec<String> {
    exact_list(r, key, p)
        .into_iter()
        .map(|s| s.to_lowercase())
        .collect()
}

/// Categories are `/`-separated paths; they are matched by whole segments, so an
/// empty segment (`grocery//snacks`, `grocery/`) could never match and is refused.
fn category_list(r: &mut Reader, key: &'static str, p: &mut Problems) -> Vec<String> {
    let path = r.field_path(key);
    let list = folded_list(r, key, p);
    for (i, c) in list.iter().enumerate() {
        if c.split('/').any(|seg| seg.trim().is_empty()) {
            p.push(
                format!("{path}[{i}]"),
                "category segments must not be empty",
            );
        }
    }
    list
}

fn read_targeting(v: &Value, path: &str, p: &mut Problems) -> Option<Targeting> {
    let mut r = Reader::object(v, path, p)?;
    let channels_path = r.field_path("channels");
    let channels: Vec<Channel> = r
        .strings("channels", p)
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| {
            parse_enum(
                s,
                Channel::parse,
                "online, in_store, app",
                &format!("{channels_path}[{i}]"),
                p,
            )
        })
        .collect();
    let placements = exact_list(&mut r, "placements", p);
    let countries = exact_list(&mut r, "countries", p)
        .into_iter()
        .map(|c| c.to_uppercase())
        .collect();
    let regions = exact_list(&mut r, "regions", p)
        .into_iter()
        .map(|c| c.to_uppercase())
        .collect();
    let store_ids = exact_list(&mut r, "store_ids", p);
    let basket = match r.raw("basket") {
        Some(b) => read_basket(b, &r.field_path("basket"), p),
        None => Some(BasketTargeting::default()),
    };
    let order_value = match r.raw("order_value") {
        Some(o) => read_order_value(o, &r.field_path("order_value"), p),
        None => Some(OrderValue::default()),
    };
    let loyalty_tiers = folded_list(&mut r, "loyalty_tiers", p);
    let customer = r
        .string("customer", p)
        .map_or(Some(CustomerFilter::Any), |s| {
            parse_enum(
                s,
                |s| match s {
                    "any" => Some(CustomerFilter::Any),
                    "new" => Some(CustomerFilter::New),
                    "returning" => Some(CustomerFilter::Returning),
                    _ => None,
                },
                "any, new, returning",
                &r.field_path("customer"),
                p,
            )
        });
    let dayparts = r.array("dayparts", p, read_daypart);
    let exclude_purchasers_days = r
        .integer(
            "exclude_purchasers_days",
            0..=MAX_WINDOW_SECONDS / 86_400,
            p,
        )
        .map(|d| d as u32);
    let require_identity = r.bool("require_identity", p).unwrap_or(false);
    r.finish(p);
    Some(Targeting {
        channels,
        placements,
        countries,
        regions,
        store_ids,
        basket: basket?,
        order_value: order_value?,
        loyalty_tiers,
        customer: customer?,
        dayparts,
        exclude_purchasers_days,
        require_identity,
    })
}

fn read_basket(v: &Value, path: &str, p: &mut Problems) -> Option<BasketTargeting> {
    let mut r = Reader::object(v, path, p)?;
    let basket = BasketTargeting {
        any_categories: category_list(&mut r, "any_categories", p),
        none_categories: category_list(&mut r, "none_categories", p),
        any_skus: exact_list(&mut r, "any_skus", p),
        any_brands: folded_list(&mut r, "any_brands", p),
    };
    r.finish(p);
    Some(basket)
}

fn read_order_value(v: &Value, path: &str, p: &mut Problems) -> Option<OrderValue> {
    let mut r = Reader::object(v, path, p)?;
    let ov = OrderValue {
        min: money(&mut r, "min", p),
        max: money(&mut r, "max", p),
    };
    if let (Some(min), Some(max)) = (ov.min, ov.max)
        && max < min
    {
        p.push(r.field_path("max"), "must not be below min");
    }
    r.finish(p);
    Some(ov)
}

fn read_daypart(v: &Value, path: &str, p: &mut Problems) -> Option<Daypart> {
    let mut r = Reader::object(v, path, p)?;
    let days_path = r.field_path("days");
    let days: Vec<Weekday> = r
        .strings("days", p)
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| {
            parse_enum(
                s,
                Weekday::parse,
                "mon, tue, wed, thu, fri, sat, sun",
                &format!("{days_path}[{i}]"),
                p,
            )
        })
        .collect();
    let from = required_int(&mut r, "from_hour", 0..=23, p);
    let to = required_int(&mut r, "to_hour", 1..=24, p);
    if let (Some(f), Some(t)) = (from, to)
        && t <= f
    {
        p.push(
            r.field_path("to_hour"),
            "must be after from_hour (for a window across midnight, use two dayparts)",
        );
    }
    r.finish(p);
    // No days listed means every day: the hours alone restrict.
    let days = if days.is_empty() {
        vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ]
    } else {
        days
    };
    Some(Daypart {
        days,
        from_hour: from? as u8,
        to_hour: to? as u8,
    })
}

fn read_conversion(v: &Value, path: &str, p: &mut Problems) -> Option<ConversionRule> {
    let mut r = Reader::object(v, path, p)?;
    let rule = ConversionRule {
        skus: exact_list(&mut r, "skus", p),
        categories: category_list(&mut r, "categories", p),
        brands: folded_list(&mut r, "brands", p),
    };
    r.finish(p);
    Some(rule)
}

fn read_creative(
    v: &Value,
    path: &str,
    rules: ValidationRules,
    p: &mut Problems,
) -> Option<Creative> {
    let mut r = Reader::object(v, path, p)?;
    let id = r
        .required_string("id", p)
        .filter(|id| check_id(id, &r.field_path("id"), p));
    let kind = r.required_string("kind", p).and_then(|k| {
        parse_enum(
            k,
            |k| match k {
                "offer" => Some(CreativeKind::Offer),
                "product" => Some(CreativeKind::Product),
                _ => None,
            },
            "offer, product",
            &r.field_path("kind"),
            p,
        )
    });
    let headline = r
        .required_string("headline", p)
        .filter(|h| non_empty(h, &r.field_path("headline"), p));
    let body = r.string("body", p).map(str::to_string);
    let image_url = r
        .string("image_url", p)
        .filter(|u| check_url(u, &r.field_path("image_url"), rules, p))
        .map(str::to_string);
    let cta = r.string("cta", p).map(str::to_string);
    let click_url = r
        .required_string("click_url", p)
        .filter(|u| check_url(u, &r.field_path("click_url"), rules, p));
    let product_path = r.field_path("product");
    let product = match (kind, r.raw("product")) {
        (Some(CreativeKind::Product), Some(v)) => read_product(v, &product_path, p),
        (Some(CreativeKind::Product), None) => {
            p.push(&product_path, "is required for a product creative");
            None
        }
        (Some(CreativeKind::Offer), Some(_)) => {
            p.push(&product_path, "is only allowed on a product creative");
            None
        }
        _ => None,
    };
    r.finish(p);
    Some(Creative {
        id: id?.to_string(),
        kind: kind?,
        headline: headline?.to_string(),
        body,
        image_url,
        cta,
        click_url: click_url?.to_string(),
        product,
    })
}

fn read_product(v: &Value, path: &str, p: &mut Problems) -> Option<Product> {
    let mut r = Reader::object(v, path, p)?;
    let sku = r
        .required_string("sku", p)
        .filter(|s| non_empty(s, &r.field_path("sku"), p));
    let name = r
        .required_string("name", p)
        .filter(|s| non_empty(s, &r.field_path("name"), p));
    let price = required_money(&mut r, "price", p);
    r.finish(p);
    Some(Product {
        sku: sku?.to_string(),
        name: name?.to_string(),
        price: price?,
    })
}

/// Creative URLs end up in shoppers' browsers: only `https` (and `http` when the
/// deployment allows it for development). `javascript:`, `data:` and the like never.
fn check_url(u: &str, path: &str, rules: ValidationRules, p: &mut Problems) -> bool {
    let lower = u.to_ascii_lowercase();
    let rest = if let Some(rest) = lower.strip_prefix("https://") {
        Some(rest)
    } else if rules.allow_http_urls {
        lower.strip_prefix("http://")
    } else {
        None
    };
    let ok = match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty() && !u.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if !ok {
        let allowed = if rules.allow_http_urls {
            "an http or https URL"
        } else {
            "an https URL"
        };
        p.push(path, format!("must be {allowed} with a host"));
    }
    ok
}
