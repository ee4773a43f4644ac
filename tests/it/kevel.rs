//! Kevel compatibility: `POST /api/v2` in Kevel's request and response shapes, the
//! stable numbers and their lookup, UserDB read, forget and consent, and bad input.
//! (Kevel's own SDKs drive the real binary in `tests/kevel/`.)

use crate::support::*;
use aftercart::compat::kevel::ids::{Entity, MAX, home};
use serde_json::{Value, json};

/// A campaign for `order_confirmation` shown once a day per profile.
fn capped(id: &str, advertiser: &str, bid: f64) -> Value {
    campaign(
        id,
        advertiser,
        json!({"bid": {"model": "cpm", "amount": bid},
               "frequency_caps": [{"max": 1, "per_seconds": 86400}],
               "targeting": {"placements": ["order_confirmation"]}}),
    )
}

/// Two capped campaigns of two advertisers: a user sees cmp-a, then cmp-b, then nothing.
async fn two_capped() -> TestServer {
    TestServer::builder()
        .writable_campaigns(&[
            capped("cmp-a", "adv-a", 20.0),
            capped("cmp-b", "adv-b", 10.0),
        ])
        .start()
        .await
}

/// One placement for `user`, as Kevel's SDKs would send it.
fn for_user(user: &str) -> Value {
    json!({"placements": [{"divName": "order_confirmation", "adTypes": [5], "networkId": 1, "siteId": 2}],
           "user": {"key": user}})
}

async fn kevel(s: &TestServer, body: &Value) -> (u16, Value) {
    s.post_json("/api/v2", body, false).await
}

/// The aftercart campaign id of a Kevel decision (from its raw content).
fn campaign_of(d: &Value) -> Option<String> {
    Some(
        d["contents"][0]["data"]["campaign_id"]
            .as_str()?
            .to_string(),
    )
}

/// The campaign served for `user` on the single placement, if any.
async fn served(s: &TestServer, user: &str) -> Option<String> {
    let (status, r) = kevel(s, &for_user(user)).await;
    assert_eq!(status, 200, "{r}");
    campaign_of(&r["decisions"]["order_confirmation"])
}

/// Calls a UserDB endpoint with `key` in `X-Adzerk-ApiKey`.
async fn udb(
    s: &TestServer,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = s.client.request(method, s.url(path));
    if let Some(k) = key {
        r = r.header("X-Adzerk-ApiKey", k);
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn is_kevel_id(v: &Value) -> bool {
    v.as_u64()
        .is_some_and(|n| (1..=u64::from(MAX)).contains(&n))
}

#[tokio::test]
async fn placements_are_answered_in_kevels_shape_with_one_decision_each() {
    let s = TestServer::sample().await;
    let placement = |div: &str, count: Option<u8>| {
        json!({"divName": div, "count": count, "adTypes": [5, 16], "zoneIds": [1, 2],
               "networkId": 23, "siteId": 667480, "ecpmPartition": "x", "ecpmPartitions": ["x"],
               "eventIds": [17, 20], "campaignId": null, "flightId": 9, "adId": null, "clickUrl": null,
               "overrides": {}, "contentKeys": {"a": "b"}, "proportionality": false, "eventMultiplier": 2,
               "skipSelection": false, "adQuery": null, "floorPrice": 1.5, "floorCpc": 0.1,
               "skipFilters": {"facet": true},
               "properties": {"placement": "order_confirmation", "some_custom_key": [1, 2],
                   "transaction": {"total": 174.98, "currency": "USD",
                       "items": [{"sku": "SKU-1", "category": "electronics/audio", "price": 174.98}]},
                   "context": {"country": "US"}}})
    };
    let body = json!({
        "placements": [placement("top", None), placement("side", Some(3))],
        "user": {"key": "kevel-user-1", "group": 3},
        "keywords": ["toys"], "url": "https://shop.example/thanks", "referrer": null, "ip": "10.0.0.1",
        "blockedCreatives": [1], "isMobile": false, "includePricingData": true, "notrack": false,
        "enableBotFiltering": false, "enableUserDBIP": false, "consent": {"gdpr": true},
        "deviceID": "dev-kv-1", "parallel": false, "intendedLatitude": 1.0, "intendedLongitude": 2.0,
        "radius": 5, "includeMatchedPoints": false, "searchTerm": "headphones",
        "flightViewTimes": {"1": [1]}, "a_field_kevel_adds_later": {"x": 1}
    });
    let (status, r) = kevel(&s, &body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["user"]["key"], "kevel-user-1");
    let top = &r["decisions"]["top"];
    assert!(top.is_object(), "count 1 is one decision: {r}");
    let side = r["decisions"]["side"]
        .as_array()
        .expect("count 3 is an array");
    assert!(!side.is_empty() && side.len() <= 3);
    let mut decision_ids = std::collections::HashSet::new();
    for d in std::iter::once(top).chain(side) {
        for f in [
            "adId",
            "creativeId",
            "flightId",
            "campaignId",
            "advertiserId",
            "priorityId",
        ] {
            assert!(is_kevel_id(&d[f]), "{f}: {d}");
        }
        assert_eq!(d["adId"], d["creativeId"]);
        assert_eq!(d["flightId"], d["campaignId"]);
        let content = &d["contents"][0];
        assert_eq!(content["type"], "raw");
        let data = &content["data"];
        let body: Value = serde_json::from_str(content["body"].as_str().unwrap()).unwrap();
        assert_eq!(&body, data);
        assert_eq!(d["impressionUrl"], data["tracking"]["impression"]);
        assert_eq!(d["clickUrl"], data["tracking"]["click"]);
        assert!(
            d["clickUrl"]
                .as_str()
                .unwrap()
                .starts_with(&s.url("/v1/events/click?t="))
        );
        assert!(d["pricing"]["price"].as_f64().unwrap() > 0.0);
        assert!(d["pricing"]["eCPM"].as_f64().unwrap() > 0.0);
        assert_eq!(d["events"], json!([]));
        decision_ids.insert(data["decision_id"].as_str().unwrap().to_string());
    }
    // Two placements, two aftercart decisions, each logged as usual.
    assert_eq!(decision_ids.len(), 2);
    let records = s.log_records().await;
    let logged: std::collections::HashSet<String> = of_kind(&records, "decision")
        .iter()
        .map(|r| r["decision_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(logged, decision_ids);
    assert_eq!(of_kind(&records, "decision").len(), 1 + side.len());

    // The impression and click URLs count exactly as aftercart's own.
    let impression = top["impressionUrl"].as_str().unwrap();
    assert_eq!(s.get_raw(impression).await.status(), 204);
    assert_eq!(s.get_raw(impression).await.status(), 204);
    let click = s.get_raw(top["clickUrl"].as_str().unwrap()).await;
    assert_eq!(click.status(), 302);
    let records = s.log_records().await;
    let top_id = &top["contents"][0]["data"]["decision_id"];
    let of = |kind: &str| {
        of_kind(&records, kind)
            .into_iter()
            .filter(|r| &r["decision_id"] == top_id)
            .count()
    };
    assert_eq!((of("impression"), of("click")), (1, 1));
}

#[tokio::test]
async fn no_fill_is_null_and_every_placement_gets_its_own_record() {
    let s = two_capped().await;
    let body = json!({"placements": [
        {"divName": "order_confirmation"},
        {"divName": "nowhere", "count": 2},
        {"divName": "elsewhere", "properties": {"placement": "pos_receipt", "channel": "in_store"}}
    ]});
    let (status, r) = kevel(&s, &body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        campaign_of(&r["decisions"]["order_confirmation"]).as_deref(),
        Some("cmp-a")
    );
    assert_eq!(r["decisions"]["nowhere"], Value::Null);
    assert_eq!(r["decisions"]["elsewhere"], Value::Null);
    // A new user key, as Kevel gives one to a request without.
    assert!(r["user"]["key"].as_str().unwrap().starts_with("ue1-"));
    let records = s.log_records().await;
    let nofill: Vec<_> = of_kind(&records, "nofill");
    let mut placements: Vec<&str> = nofill
        .iter()
        .map(|r| r["placement"].as_str().unwrap())
        .collect();
    placements.sort();
    assert_eq!(placements, ["nowhere", "pos_receipt"]);
    assert_eq!(of_kind(&records, "decision").len(), 1);
}

#[tokio::test]
async fn keywords_match_basket_categories() {
    let s = TestServer::builder()
        .writable_campaigns(&[campaign(
            "cmp-kw",
            "adv-kw",
            json!({"targeting": {"basket": {"any_categories": ["garden"]}}}),
        )])
        .start()
        .await;
    let ask = |keywords: Value| json!({"placements": [{"divName": "order_confirmation"}], "keywords": keywords});
    let (_, r) = kevel(&s, &ask(json!(["Garden/Tools", "toys"]))).await;
    assert_eq!(
        campaign_of(&r["decisions"]["order_confirmation"]).as_deref(),
        Some("cmp-kw")
    );
    let (_, r) = kevel(&s, &ask(json!(["gardening"]))).await;
    assert_eq!(r["decisions"]["order_confirmation"], Value::Null, "{r}");
    let (_, r) = kevel(&s, &ask(json!(null))).await;
    assert_eq!(r["decisions"]["order_confirmation"], Value::Null, "{r}");
}

#[tokio::test]
async fn numbers_stay_with_their_ids_across_restarts_even_when_hashes_collide() {
    // Two campaign ids whose home numbers collide: the first one served keeps the
    // home, the other probes to the next number, and a restart changes nothing.
    let mut seen = std::collections::HashMap::new();
    let (first, second) = (0..)
        .find_map(|i| {
            let id = format!("cmp-{i}");
            seen.insert(home(Entity::Campaign, &id), id.clone())
                .map(|other| (id, other))
        })
        .unwrap();
    let home_number = home(Entity::Campaign, &first);
    let only = |id: &str, placement: &str| {
        campaign(
            id,
            &format!("adv-{id}"),
            json!({"targeting": {"placements": [placement]}}),
        )
    };
    let s = TestServer::builder()
        .writable_campaigns(&[only(&first, "p-first"), only(&second, "p-second")])
        .start()
        .await;
    let number_of = |r: &Value, div: &str| r["decisions"][div]["campaignId"].as_u64().unwrap();
    let ask = |divs: &[&str]| json!({"placements": divs.iter().map(|d| json!({"divName": d})).collect::<Vec<_>>()});
    let (_, r) = kevel(&s, &ask(&["p-first"])).await;
    assert_eq!(number_of(&r, "p-first"), u64::from(home_number));
    let (_, r) = kevel(&s, &ask(&["p-second"])).await;
    let probed = number_of(&r, "p-second");
    assert_eq!(probed, u64::from(home_number) + 1);
    let creative = r["decisions"]["p-second"]["creativeId"].as_u64().unwrap();
    let advertiser = r["decisions"]["p-second"]["advertiserId"].as_u64().unwrap();
    let priority = r["decisions"]["p-second"]["priorityId"].as_u64().unwrap();

    let s = TestServer::builder()
        .writable_campaigns(&[])
        .start_on(s.stop_keeping_data().await)
        .await;
    // The other order after the restart: the numbers do not move.
    let (_, r) = kevel(&s, &ask(&["p-second", "p-first"])).await;
    assert_eq!(number_of(&r, "p-second"), probed);
    assert_eq!(number_of(&r, "p-first"), u64::from(home_number));
    let d = &r["decisions"]["p-second"];
    assert_eq!(
        (
            d["creativeId"].as_u64(),
            d["advertiserId"].as_u64(),
            d["priorityId"].as_u64()
        ),
        (Some(creative), Some(advertiser), Some(priority))
    );

    // And the lookup names each number.
    let lookup = |n: u64| {
        let path = format!("/v1/compat/kevel/ids/{n}");
        let s = &s;
        async move { s.call("GET", &path, Some(ADMIN_KEY), None).await }
    };
    let (status, named) = lookup(probed).await;
    assert_eq!(status, 200, "{named}");
    assert_eq!(named["kind"], "campaign");
    assert_eq!(named["campaign_id"], second.as_str());
    assert_eq!(named["fields"], json!(["campaignId", "flightId"]));
    let (_, named) = lookup(creative).await;
    assert_eq!(named["kind"], "creative");
    assert_eq!(named["campaign_id"], second.as_str());
    assert_eq!(named["creative_id"], format!("{second}-cr"));
    let (_, named) = lookup(advertiser).await;
    assert_eq!(
        (named["kind"].as_str(), named["advertiser_id"].as_str()),
        (Some("advertiser"), Some(format!("adv-{second}").as_str()))
    );
    let (_, named) = lookup(priority).await;
    assert_eq!(
        (named["kind"].as_str(), named["priority"].as_u64()),
        (Some("priority"), Some(10))
    );
}

#[tokio::test]
async fn the_id_lookup_takes_admin_or_measurement_keys_and_checks_the_number() {
    let s = two_capped().await;
    let (_, r) = kevel(&s, &for_user("u-lookup")).await;
    let d = &r["decisions"]["order_confirmation"];
    let n = d["campaignId"].as_u64().unwrap();
    let numbers: Vec<u64> = ["campaignId", "creativeId", "advertiserId", "priorityId"]
        .iter()
        .map(|f| d[f].as_u64().unwrap())
        .collect();
    let path = format!("/v1/compat/kevel/ids/{n}");
    let (_, measurement) = s.key("measurement").await;
    let (_, ingest) = s.key("ingest").await;
    let advertiser = s.advertiser("adv-a").await;
    assert_eq!(s.call("GET", &path, None, None).await.0, 401);
    assert_eq!(s.call("GET", &path, Some("not-a-key"), None).await.0, 401);
    assert_eq!(s.call("GET", &path, Some(&ingest), None).await.0, 403);
    assert_eq!(s.call("GET", &path, Some(&advertiser), None).await.0, 403);
    let (status, named) = s.call("GET", &path, Some(&measurement), None).await;
    assert_eq!(
        (status, named["campaign_id"].as_str()),
        (200, Some("cmp-a"))
    );
    assert_eq!(s.call("POST", &path, Some(ADMIN_KEY), None).await.0, 405);
    for bad in ["0", "abc", "2147483648", "-1", "1.5"] {
        let (status, e) = s
            .call(
                "GET",
                &format!("/v1/compat/kevel/ids/{bad}"),
                Some(ADMIN_KEY),
                None,
            )
            .await;
        assert_eq!(
            (status, error_paths(&e)),
            (400, vec!["n".to_string()]),
            "{bad}"
        );
    }
    // A number no entity has (only these four are given out on this server).
    let free = (1..).find(|m| !numbers.contains(m)).unwrap();
    let (status, _) = s
        .call(
            "GET",
            &format!("/v1/compat/kevel/ids/{free}"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_input_is_a_400_naming_every_field_and_decides_nothing() {
    let s = TestServer::builder()
        .config(|c| c.max_items = 3)
        .start()
        .await;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec!["placements"]),
        (json!({"placements": []}), vec!["placements"]),
        (
            json!({"placements": (0..11).map(|i| json!({"divName": format!("d{i}")})).collect::<Vec<_>>()}),
            vec!["placements"],
        ),
        (
            json!({"placements": [{"divName": "a"}, {"divName": "b", "count": 0}, {"divName": "c", "count": 11}]}),
            vec!["placements[1].count", "placements[2].count"],
        ),
        (
            json!({"placements": [{"divName": "a"}, {"divName": "a"}]}),
            vec!["placements[1].divName"],
        ),
        (
            json!({"placements": [{"divName": "has space"}]}),
            vec!["placements[0].divName"],
        ),
        (
            json!({"placements": [{"divName": "a", "properties": {"channel": "tv",
                "transaction": {"id": "T1", "total": -3, "items": [{"price": "x"}]}}}]}),
            vec!["placements[0].properties.transaction.items[0].price"],
        ),
        (
            json!({"placements": [{"divName": "a", "properties": {"channel": "tv",
                "transaction": {"id": "T1", "total": -3}, "context": {"country": ""}}}]}),
            vec![
                "placements[0].properties.channel",
                "placements[0].properties.transaction.total",
                "placements[0].properties.context.country",
            ],
        ),
        (
            json!({"placements": [{"divName": "a", "properties": {"transaction": {"id": "T", "totl": 1}}}]}),
            vec!["placements[0].properties.transaction.totl"],
        ),
        (
            json!({"placements": [{"divName": "a", "properties": {"transaction": {"id": "T"}}},
                                  {"divName": "b", "properties": {"placement": "a", "transaction": {"id": "T"}}}]}),
            vec!["placements[1].properties.transaction.id"],
        ),
        (
            json!({"placements": [{"divName": "a"}], "user": {"key": ""}, "keywords": ["", "b", "c", "d"]}),
            vec!["keywords", "keywords[0]", "user.key"],
        ),
        (
            json!({"placements": [{"divName": "a", "properties": {"customer": {"ids": {"customer_id": "x"}}}}],
                   "user": {"key": "y"}}),
            vec!["placements[0].properties.customer.ids.customer_id"],
        ),
        (
            json!({"placements": [{"count": "2"}]}),
            vec!["placements[0].count"],
        ),
        (
            json!({"placements": [{"count": 1.5}]}),
            vec!["placements[0].count"],
        ),
        (json!({"placements": {"divName": "a"}}), vec!["placements"]),
        (
            json!({"placements": [{"divName": 7}]}),
            vec!["placements[0].divName"],
        ),
        (
            json!({"placements": [{}], "user": {"key": 12}}),
            vec!["user.key"],
        ),
        (
            json!({"placements": [{}], "keywords": "garden"}),
            vec!["keywords"],
        ),
        (
            json!({"placements": [{}], "consent": {"gdpr": "yes"}}),
            vec!["consent.gdpr"],
        ),
    ];
    for (body, want) in cases {
        let (status, e) = kevel(&s, &body).await;
        assert_eq!(status, 400, "{body} -> {e}");
        let mut got = error_paths(&e);
        got.sort();
        let mut want: Vec<String> = want.into_iter().map(String::from).collect();
        want.sort();
        assert_eq!(got, want, "{body} -> {e}");
    }
    let (status, _) = s
        .post_raw("/api/v2", JSON, b"{\"placements\": [".to_vec())
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        s.post_raw("/api/v2", "text/plain", b"{}".to_vec()).await.0,
        415
    );
    assert_eq!(s.call("GET", "/api/v2", None, None).await.0, 405);
    let records = s.log_records().await;
    assert!(
        of_kind(&records, "decision").is_empty() && of_kind(&records, "nofill").is_empty(),
        "a refused request decides nothing"
    );
}

#[tokio::test]
async fn msgpack_works_as_on_every_endpoint() {
    let s = two_capped().await;
    let bytes = rmp_serde::to_vec_named(&for_user("u-mp")).unwrap();
    let r = s
        .client
        .post(s.url("/api/v2"))
        .header("content-type", MSGPACK)
        .header("accept", MSGPACK)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = rmp_serde::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(
        campaign_of(&body["decisions"]["order_confirmation"]).as_deref(),
        Some("cmp-a")
    );
}

#[tokio::test]
async fn userdb_needs_the_admin_key_in_x_adzerk_apikey() {
    let s = two_capped().await;
    let (_, measurement) = s.key("measurement").await;
    let consent = json!({"userKey": "u-1", "consent": {"gdpr": true}});
    let calls: [(&str, &str, Option<&Value>); 3] = [
        ("GET", "/udb/1/read?userKey=u-1", None),
        ("DELETE", "/udb/1?userKey=u-1", None),
        ("POST", "/udb/1/consent", Some(&consent)),
    ];
    for (method, path, body) in calls {
        assert_eq!(udb(&s, method, path, None, body).await.0, 401, "{path}");
        assert_eq!(
            udb(&s, method, path, Some("nope"), body).await.0,
            401,
            "{path}"
        );
        assert_eq!(
            udb(&s, method, path, Some(&measurement), body).await.0,
            403,
            "{path}"
        );
        let (status, _) = udb(&s, method, path, Some(ADMIN_KEY), body).await;
        assert!(status == 200 || status == 404, "{path}: {status}");
        // aftercart's own header works too.
        let (status, _) = s.call(method, path, Some(ADMIN_KEY), body).await;
        assert!(status == 200 || status == 404, "{path}: {status}");
    }
    let bad: [(&str, &str, Option<Value>, &str); 7] = [
        ("GET", "/udb/abc/read?userKey=u", None, "networkId"),
        ("GET", "/udb/0/read?userKey=u", None, "networkId"),
        ("GET", "/udb/1/read", None, "userKey"),
        ("DELETE", "/udb/1?userKey=", None, "userKey"),
        (
            "POST",
            "/udb/1/consent",
            Some(json!({"consent": {"gdpr": true}})),
            "userKey",
        ),
        (
            "POST",
            "/udb/1/consent",
            Some(json!({"userKey": "u", "consent": {}})),
            "consent",
        ),
        (
            "POST",
            "/udb/1/consent",
            Some(json!({"userKey": "u", "consent": {"gdpr": "no"}})),
            "consent.gdpr",
        ),
    ];
    for (method, path, body, field) in bad {
        let (status, e) = udb(&s, method, path, Some(ADMIN_KEY), body.as_ref()).await;
        assert_eq!(
            (status, error_paths(&e)),
            (400, vec![field.to_string()]),
            "{path} {body:?}"
        );
    }
    assert_eq!(
        udb(
            &s,
            "GET",
            "/udb/1/interest/i.gif?userKey=u",
            Some(ADMIN_KEY),
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        udb(&s, "GET", "/udb/1?userKey=u", Some(ADMIN_KEY), None)
            .await
            .0,
        405
    );
    assert_eq!(
        udb(&s, "DELETE", "/udb/1/read?userKey=u", Some(ADMIN_KEY), None)
            .await
            .0,
        405
    );
}

#[tokio::test]
async fn read_shows_the_profile_and_forget_erases_it() {
    let s = two_capped().await;
    let user = "kevel-forget-me";
    assert_eq!(served(&s, user).await.as_deref(), Some("cmp-a"));
    assert_eq!(served(&s, user).await.as_deref(), Some("cmp-b"));
    assert_eq!(
        served(&s, user).await,
        None,
        "both campaigns are capped for this user"
    );

    let read = format!("/udb/23/read?userKey={user}");
    let (status, p) = udb(&s, "GET", &read, Some(ADMIN_KEY), None).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["key"], user);
    assert_eq!(p["identifiers"][0]["kind"], "customer_id");
    assert_eq!(p["exposures"], 2, "offers shown: {p}");
    // The same person through aftercart's own subject access.
    let (status, same) = s
        .call(
            "GET",
            &format!("/v1/profiles?customer_id={user}"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!((status, &same["profile"]), (200, &p["profile"]));

    let (status, done) = udb(
        &s,
        "DELETE",
        &format!("/udb/23?userKey={user}"),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["erased_identifiers"], 1);
    assert_eq!(udb(&s, "GET", &read, Some(ADMIN_KEY), None).await.0, 404);
    // Nothing remembers the user: the capped campaign is back.
    assert_eq!(served(&s, user).await.as_deref(), Some("cmp-a"));
    let records = s.log_records().await;
    assert_eq!(of_kind(&records, "erasure").len(), 1);
}

#[tokio::test]
async fn recorded_consent_holds_for_later_decisions_until_changed() {
    let s = two_capped().await;
    let user = "kevel-consent";
    assert_eq!(served(&s, user).await.as_deref(), Some("cmp-a"));
    let set = |gdpr: bool| json!({"userKey": user, "consent": {"gdpr": gdpr}});
    let (status, r) = udb(
        &s,
        "POST",
        "/udb/9/consent",
        Some(ADMIN_KEY),
        Some(&set(false)),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r["consent"],
        json!({"personalization": false, "measurement": false})
    );

    // Without personalisation the user is anonymous: caps do not apply, nothing links,
    // and without measurement the records name nobody.
    let before = s.log_records().await.len();
    assert_eq!(served(&s, user).await.as_deref(), Some("cmp-a"));
    // A request cannot grant what the person withheld.
    let mut granting = for_user(user);
    granting["consent"] = json!({"gdpr": true});
    let (_, r) = kevel(&s, &granting).await;
    assert_eq!(
        campaign_of(&r["decisions"]["order_confirmation"]).as_deref(),
        Some("cmp-a")
    );
    // aftercart's own endpoint honours the record too.
    let (_, d) = s
        .decide(&request(
            "T-consent",
            json!({"customer": {"ids": {"customer_id": user}}, "context": {"country": "US"}}),
        ))
        .await;
    assert_eq!(offered(&d).first().map(String::as_str), Some("cmp-a"));
    let records = s.log_records().await;
    for r in &records[before..] {
        assert!(r.get("profile").is_none() && r.get("ids").is_none(), "{r}");
    }
    let (_, p) = udb(
        &s,
        "GET",
        &format!("/udb/9/read?userKey={user}"),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(p["exposures"], 1, "{p}");
    assert_eq!(p["consent"][0]["personalization"], false, "{p}");

    // Consent given again: the profile is back, with its cap.
    udb(
        &s,
        "POST",
        "/udb/9/consent",
        Some(ADMIN_KEY),
        Some(&set(true)),
    )
    .await;
    assert_eq!(served(&s, user).await.as_deref(), Some("cmp-b"));

    // Recorded consent survives a restart and goes with an erasure.
    let s = TestServer::builder()
        .writable_campaigns(&[])
        .start_on(s.stop_keeping_data().await)
        .await;
    udb(
        &s,
        "POST",
        "/udb/9/consent",
        Some(ADMIN_KEY),
        Some(&set(false)),
    )
    .await;
    let s = TestServer::builder()
        .writable_campaigns(&[])
        .start_on(s.stop_keeping_data().await)
        .await;
    assert_eq!(
        served(&s, user).await.as_deref(),
        Some("cmp-a"),
        "still withheld"
    );
    udb(
        &s,
        "DELETE",
        &format!("/udb/9?userKey={user}"),
        Some(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(
        udb(
            &s,
            "GET",
            &format!("/udb/9/read?userKey={user}"),
            Some(ADMIN_KEY),
            None
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn bots_see_nothing_and_gpc_gets_no_new_user_key() {
    let s = two_capped().await;
    let r = s
        .client
        .post(s.url("/api/v2"))
        .header("user-agent", "Mozilla/5.0 (compatible; Googlebot/2.1)")
        .json(&json!({"placements": [{"divName": "order_confirmation"}, {"divName": "b"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["decisions"],
        json!({"order_confirmation": null, "b": null})
    );
    let records = s.log_records().await;
    assert_eq!(of_kind(&records, "invalid").len(), 2);
    assert!(of_kind(&records, "decision").is_empty());

    let r = s
        .client
        .post(s.url("/api/v2"))
        .header("sec-gpc", "1")
        .json(&json!({"placements": [{"divName": "order_confirmation"}]}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"], json!({}), "{body}");
    assert_eq!(
        campaign_of(&body["decisions"]["order_confirmation"]).as_deref(),
        Some("cmp-a")
    );
    // With a key and Sec-GPC the key is answered but nothing is linked to it.
    let r = s
        .client
        .post(s.url("/api/v2"))
        .header("sec-gpc", "1")
        .json(&for_user("u-gpc"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["user"]["key"], "u-gpc");
    assert_eq!(
        udb(
            &s,
            "GET",
            "/udb/1/read?userKey=u-gpc",
            Some(ADMIN_KEY),
            None
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn placements_with_publishable_keys_need_one_here_too() {
    const KEY: &str = "pk_shop_0123456789abcdef";
    let s = TestServer::builder()
        .writable_campaigns(&[capped("cmp-a", "adv-a", 20.0)])
        .config(|c| {
            c.placements.insert(
                "order_confirmation".into(),
                aftercart::config::PlacementRules {
                    publishable_keys: vec![KEY.into()],
                    ..Default::default()
                },
            );
        })
        .start()
        .await;
    let ask = |key: Option<&'static str>| {
        let mut r = s.client.post(s.url("/api/v2")).json(&json!({"placements": [
            {"divName": "free"}, {"divName": "order_confirmation"}
        ]}));
        if let Some(k) = key {
            r = r.header("X-Aftercart-Key", k);
        }
        async move {
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    for key in [None, Some("pk_shop_someone_elses_key")] {
        let (status, body) = ask(key).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(error_paths(&body), ["X-Aftercart-Key"]);
    }
    let records = s.log_records().await;
    assert!(
        of_kind(&records, "nofill").is_empty(),
        "a refused request decides nothing"
    );
    let (status, body) = ask(Some(KEY)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        campaign_of(&body["decisions"]["order_confirmation"]).as_deref(),
        Some("cmp-a")
    );
}
