use std::collections::BTreeSet;

use super::*;
use crate::dto::{Health, Version};
use crate::testing::Fake;

const TOKEN: &str = "s3cret-token";

fn call(auth: &Auth, method: &str, target: &str, token: Option<&str>, body: &str) -> Reply {
    let h = format!("Bearer {}", token.unwrap_or(""));
    respond(
        &Fake::default(),
        auth,
        method,
        target,
        token.map(|_| h.as_str()),
        body.as_bytes(),
    )
}

fn err(r: &Reply) -> ErrorBody {
    serde_json::from_slice(&r.body).unwrap()
}

#[test]
fn the_document_lists_exactly_the_routes() {
    let doc: serde_json::Value = serde_json::from_str(crate::OPENAPI).unwrap();
    let mut in_doc = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            in_doc.insert((method.to_uppercase(), path.clone()));
        }
    }
    let served: BTreeSet<_> = ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        served.difference(&in_doc).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "routes missing from openapi.json"
    );
    assert_eq!(
        in_doc.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "openapi.json has paths no route serves"
    );
    // Every operation outside health and ready needs the bearer token in the document too.
    for (m, p, op) in ROUTES {
        let sec = &doc["paths"][*p][m.to_lowercase()]["security"];
        assert_eq!(sec.is_array(), public(*op), "{m} {p}: security");
    }
}

#[test]
fn the_token_is_needed_for_everything_but_health_and_ready() {
    let auth = Auth::new(Some(TOKEN));
    for (m, p, op) in ROUTES {
        let path = p.replace('{', "x").replace('}', "");
        let r = call(&auth, m, &path, None, "");
        if public(*op) {
            assert_eq!(r.status, 200, "{m} {p}");
        } else {
            assert_eq!(r.status, 401, "{m} {p}");
            assert_eq!(err(&r).field.as_deref(), Some("Authorization"));
            assert_eq!(call(&auth, m, &path, Some("wrong"), "").status, 401);
            assert_eq!(call(&auth, m, &path, Some("s3cret-tokeN"), "").status, 401);
        }
    }
    let ok = call(&auth, "GET", "/api/v1/version", Some(TOKEN), "");
    assert_eq!(ok.status, 200);
    let v: Version = serde_json::from_slice(&ok.body).unwrap();
    assert_eq!(v.uptime_secs, 1);
    let r = respond(
        &Fake::default(),
        &auth,
        "GET",
        "/metrics",
        Some("bearer s3cret-token"),
        b"",
    );
    assert_eq!((r.status, r.content_type), (200, METRICS_TYPE));
}

#[test]
fn without_a_token_only_health_ready_metrics_and_the_document_are_served() {
    let auth = Auth::new(None);
    for (path, want) in [
        ("/health", 200),
        ("/ready", 200),
        ("/metrics", 200),
        ("/openapi.json", 200),
        ("/api/v1/version", 403),
        ("/api/v1/bans", 403),
    ] {
        assert_eq!(call(&auth, "GET", path, None, "").status, want, "{path}");
    }
    let h: Health = serde_json::from_slice(&call(&auth, "GET", "/health", None, "").body).unwrap();
    assert_eq!(h.status, "ok");
}

#[test]
fn bad_requests_name_their_field() {
    let auth = Auth::new(Some(TOKEN));
    let t = Some(TOKEN);
    let r = call(&auth, "GET", "/api/v1/nothing", t, "");
    assert_eq!(r.status, 404);
    let r = call(&auth, "PUT", "/api/v1/bans", t, "");
    assert_eq!(r.status, 405);
    for (body, status, field) in [
        (r#"{"ip":"192.0.2.1","bogus":1}"#, 422, Some("bogus")),
        (r#"{"ip":"not an ip"}"#, 422, Some("ip")),
        (r#"{"ip":"192.0.2.1","secs":"ten"}"#, 422, Some("secs")),
        (r#"{"ip":"192.0.2.1","secs":-1}"#, 422, Some("secs")),
        (r#"{"secs":1}"#, 422, Some("ip")),
        (r#"{"ip":"#, 400, None),
        ("", 400, None),
    ] {
        let r = call(&auth, "POST", "/api/v1/bans", t, body);
        assert_eq!(r.status, status, "{body}");
        assert_eq!(err(&r).field.as_deref(), field, "{body}");
    }
    let f = Fake::default();
    let h = format!("Bearer {TOKEN}");
    let r = respond(
        &f,
        &auth,
        "POST",
        "/api/v1/bans",
        Some(&h),
        br#"{"ip":"2001:db8::1","secs":600}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(f.bans.borrow()[0].secs, Some(600));
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("offset=-3", "offset"),
        ("offset=99999999999", "offset"),
        ("colour=red", "colour"),
    ] {
        let r = call(&auth, "GET", &format!("/api/v1/fraud/events?{q}"), t, "");
        assert_eq!(r.status, 400, "{q}");
        assert_eq!(err(&r).field.as_deref(), Some(field), "{q}");
    }
    let r = call(&auth, "GET", "/api/v1/version?x=1", t, "");
    assert_eq!((r.status, err(&r).field.as_deref()), (400, Some("x")));
    let r = call(&auth, "DELETE", "/api/v1/bans/999.1.1.1", t, "");
    assert_eq!((r.status, err(&r).field.as_deref()), (400, Some("ip")));
    let r = call(&auth, "POST", "/api/v1/trunks/c/explode", t, "");
    assert_eq!((r.status, err(&r).field.as_deref()), (404, Some("action")));
    let r = call(&auth, "GET", "/api/v1/version", t, "{}");
    assert_eq!(r.status, 400, "a body where none is taken");
}

#[test]
fn what_the_sbc_does_not_serve_is_501() {
    let auth = Auth::new(Some(TOKEN));
    let r = call(&auth, "GET", "/api/v1/calls?limit=10", Some(TOKEN), "");
    assert_eq!(r.status, 501);
    let r = call(&auth, "POST", "/api/v1/trunks/c/drain", Some(TOKEN), "");
    assert_eq!(r.status, 501);
}
