//! The report as text: an aligned terminal table, JSON, and CSV (one row per campaign).

use super::model::{CampaignRow, Report};
use super::stats::Interval;
use std::io::{self, Write};

/// Output formats of `aftercart report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
    Html,
}

/// Writes `report` in `format`.
pub fn write(report: &Report, format: Format, out: &mut dyn Write) -> io::Result<()> {
    match format {
        Format::Table => table(report, out),
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, report).map_err(io::Error::other)?;
            writeln!(out)
        }
        Format::Csv => csv(report, out),
        Format::Html => out.write_all(super::html::page(report).as_bytes()),
    }
}

/// `1234567` as `1,234,567`.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Money in major units with two decimals and thousands separators.
pub fn money(x: f64) -> String {
    let cents = (x * 100.0).round();
    let sign = if cents < 0.0 { "-" } else { "" };
    let cents = cents.abs() as u64;
    format!("{sign}{}.{:02}", count(cents / 100), cents % 100)
}

/// A fraction as a percentage with one decimal; `-` when undefined.
pub fn percent(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{:.1}%", x * 100.0))
}

/// A signed percentage (lift).
pub fn signed_percent(x: f64) -> String {
    format!("{:+.1}%", x * 100.0)
}

/// A ratio such as ROAS: `16.40x`; `-` when undefined.
pub fn times(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{x:.2}x"))
}

/// `estimate [low, high]` with `f` for each number; `-` when undefined.
pub fn interval(i: Option<Interval>, f: impl Fn(f64) -> String) -> String {
    i.map_or_else(
        || "-".into(),
        |i| format!("{} [{}, {}]", f(i.estimate), f(i.low), f(i.high)),
    )
}

/// Left-aligned columns are text; the others are numbers, right-aligned.
struct Table {
    head: Vec<&'static str>,
    left: usize,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: Vec<&'static str>, left: usize) -> Table {
        Table {
            head,
            left,
            rows: Vec::new(),
        }
    }

    fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut widths: Vec<usize> = self.head.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String], out: &mut dyn Write| -> io::Result<()> {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                if i > 0 {
                    s.push_str("  ");
                }
                let pad = w - cell.chars().count();
                if i < self.left {
                    s.push_str(cell);
                    s.extend(std::iter::repeat_n(' ', pad));
                } else {
                    s.extend(std::iter::repeat_n(' ', pad));
                    s.push_str(cell);
                }
            }
            writeln!(out, "{}", s.trim_end())
        };
        let head: Vec<String> = self.head.iter().map(|h| h.to_string()).collect();
        line(&head, out)?;
        for row in &self.rows {
            line(row, out)?;
        }
        Ok(())
    }
}

fn window(secs: u64) -> String {
    match secs {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s => format!("{s}s"),
    }
}

fn table(r: &Report, out: &mut dyn Write) -> io::Result<()> {
    let period = match (&r.period.from, &r.period.to) {
        (None, None) => "the whole log".to_string(),
        (f, t) => format!(
            "{} .. {}",
            f.as_deref().unwrap_or("start"),
            t.as_deref().unwrap_or("end")
        ),
    };
    writeln!(
        out,
        "aftercart report: {period}; click window {}, view window {}{}",
        window(r.period.click_window_secs),
        window(r.period.view_window_secs),
        r.currency
            .as_deref()
            .map(|c| format!("; money in {c}"))
            .unwrap_or_default()
    )?;
    writeln!(
        out,
        "log: {} records, {} .. {}\n",
        count(r.log.records),
        r.log.first_ts.as_deref().unwrap_or("-"),
        r.log.last_ts.as_deref().unwrap_or("-"),
    )?;
    let mut t = Table::new(
        vec![
            "CAMPAIGN",
            "DECISIONS",
            "IMPR",
            "CLICKS",
            "CTR",
            "SPEND",
            "CONV",
            "ONLINE",
            "APP",
            "IN-STORE",
            "ROAS",
            "ROAS ONLINE",
            "X-CHANNEL",
        ],
        1,
    );
    let cells = |id: String, c: &CampaignRow| {
        vec![
            id,
            count(c.decisions),
            count(c.impressions),
            count(c.clicks),
            percent(c.ctr),
            money(c.spend),
            count(c.conversions),
            money(c.revenue.online),
            money(c.revenue.app),
            money(c.revenue.in_store),
            times(c.roas),
            times(c.roas_online_only),
            percent(c.cross_channel_rate),
        ]
    };
    let mut rows: Vec<Vec<String>> = r
        .campaigns
        .iter()
        .map(|c| cells(c.campaign_id.clone(), c))
        .collect();
    let tot = &r.totals;
    let total_row = CampaignRow {
        campaign_id: String::new(),
        name: None,
        advertiser_id: None,
        deleted: false,
        decisions: tot.decisions,
        impressions: tot.impressions,
        clicks: tot.clicks,
        ctr: tot.ctr,
        spend: tot.spend,
        conversions: tot.conversions,
        cross_channel_conversions: tot.cross_channel_conversions,
        cross_channel_rate: tot.cross_channel_rate,
        revenue: tot.revenue,
        roas: tot.roas,
        roas_online_only: tot.roas_online_only,
        holdout: None,
    };
    rows.push(cells(format!("TOTAL ({})", tot.campaigns), &total_row));
    t.rows = rows;
    t.write(out)?;

    let holdouts: Vec<&CampaignRow> = r.campaigns.iter().filter(|c| c.holdout.is_some()).collect();
    if !holdouts.is_empty() {
        writeln!(out, "\nHoldout tests (95% intervals)")?;
        let mut t = Table::new(
            vec![
                "CAMPAIGN",
                "EXPOSED",
                "CONV",
                "CONTROL",
                "CONV",
                "LIFT",
                "INCR. CONVERSIONS",
                "INCR. REVENUE",
                "INCR. ROAS",
            ],
            1,
        );
        for c in holdouts {
            let Some(h) = &c.holdout else { continue };
            t.rows.push(vec![
                c.campaign_id.clone(),
                count(h.exposed.profiles),
                percent(h.exposed.conversion_rate),
                count(h.control.profiles),
                percent(h.control.conversion_rate),
                interval(h.lift, signed_percent),
                interval(h.incremental_conversions, |x| format!("{x:.1}")),
                interval(h.incremental_revenue, money),
                interval(h.incremental_roas, |x| format!("{x:.2}x")),
            ]);
        }
        t.write(out)?;
    }

    let o = &r.overall;
    writeln!(out, "\nOverall")?;
    writeln!(
        out,
        "  purchases {}, resolved to a known profile {} (identity resolution {})",
        count(o.purchases),
        count(o.resolved_purchases),
        percent(o.identity_resolution_rate)
    )?;
    writeln!(
        out,
        "  attributed orders {}, cross-channel conversions {}, refunds {}",
        count(o.attributed_orders),
        percent(o.cross_channel_rate),
        count(o.refunds)
    )?;
    writeln!(
        out,
        "  profiles with decisions {}, identifiers {}",
        count(o.profiles),
        count(o.identifiers)
    )?;

    if !r.placements.is_empty() {
        writeln!(out)?;
        let mut t = Table::new(
            vec![
                "PLACEMENT",
                "CHANNEL",
                "REQUESTS",
                "FILLED",
                "FILL RATE",
                "OFFERS",
                "IMPR",
                "CLICKS",
                "REVENUE",
            ],
            2,
        );
        for p in &r.placements {
            t.rows.push(vec![
                p.placement.clone(),
                p.channel.clone(),
                count(p.requests),
                count(p.filled),
                percent(p.fill_rate),
                count(p.offers),
                count(p.impressions),
                count(p.clicks),
                money(p.revenue),
            ]);
        }
        t.write(out)?;
    }
    Ok(())
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "campaign_id",
    "name",
    "advertiser_id",
    "deleted",
    "decisions",
    "impressions",
    "clicks",
    "ctr",
    "spend",
    "conversions",
    "cross_channel_conversions",
    "cross_channel_rate",
    "revenue_online",
    "revenue_app",
    "revenue_in_store",
    "revenue_total",
    "roas",
    "roas_online_only",
    "holdout_percent",
    "exposed_profiles",
    "exposed_converted",
    "exposed_conversion_rate",
    "control_profiles",
    "control_converted",
    "control_conversion_rate",
    "lift",
    "lift_low",
    "lift_high",
    "incremental_conversions",
    "incremental_conversions_low",
    "incremental_conversions_high",
    "incremental_revenue",
    "incremental_revenue_low",
    "incremental_revenue_high",
    "incremental_roas",
    "incremental_roas_low",
    "incremental_roas_high",
];

/// RFC 4180 quoting when needed.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(x: Option<f64>) -> String {
    x.map(|x| x.to_string()).unwrap_or_default()
}

fn csv(r: &Report, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{}", CSV_COLUMNS.join(","))?;
    for c in &r.campaigns {
        let mut f: Vec<String> = vec![
            field(&c.campaign_id),
            field(c.name.as_deref().unwrap_or("")),
            field(c.advertiser_id.as_deref().unwrap_or("")),
            c.deleted.to_string(),
            c.decisions.to_string(),
            c.impressions.to_string(),
            c.clicks.to_string(),
            num(c.ctr),
            c.spend.to_string(),
            c.conversions.to_string(),
            c.cross_channel_conversions.to_string(),
            num(c.cross_channel_rate),
            c.revenue.online.to_string(),
            c.revenue.app.to_string(),
            c.revenue.in_store.to_string(),
            c.revenue.total.to_string(),
            num(c.roas),
            num(c.roas_online_only),
        ];
        match &c.holdout {
            Some(h) => {
                f.push(h.holdout_percent.to_string());
                for g in [&h.exposed, &h.control] {
                    f.push(g.profiles.to_string());
                    f.push(g.converted.to_string());
                    f.push(num(g.conversion_rate));
                }
                for i in [
                    h.lift,
                    h.incremental_conversions,
                    h.incremental_revenue,
                    h.incremental_roas,
                ] {
                    f.push(num(i.map(|i| i.estimate)));
                    f.push(num(i.map(|i| i.low)));
                    f.push(num(i.map(|i| i.high)));
                }
            }
            None => f.extend(std::iter::repeat_n(String::new(), 19)),
        }
        writeln!(out, "{}", f.join(","))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(100), "100");
        assert_eq!(money(50_000.0), "50,000.00");
        assert_eq!(money(-1234.567), "-1,234.57");
        assert_eq!(money(0.004), "0.00");
        assert_eq!(percent(Some(0.025)), "2.5%");
        assert_eq!(percent(None), "-");
        assert_eq!(times(Some(16.4)), "16.40x");
        assert_eq!(signed_percent(0.3), "+30.0%");
        assert_eq!(field("a,\"b\""), "\"a,\"\"b\"\"\"");
        assert_eq!(window(14 * 86_400), "14d");
        assert_eq!(window(5_400), "5400s");
    }
}
