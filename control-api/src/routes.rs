//! Every route of the API, listed once ([`ROUTES`]), and [`respond`]: one request's way from
//! method, path, token and body to a status and a body. Pure (no IO), so tests drive it directly;
//! the server in [`crate::server`] only reads the request and writes the answer.

use serde::de::DeserializeOwned;
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::dto::{AdminAction, BanRequest, ErrorBody, RuleList};
use crate::handle::{ApiError, Control};
use crate::query::{decode, Query};

/// What a route does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Op {
    Health,
    Ready,
    Metrics,
    OpenApi,
    Version,
    Config,
    ConfigCheck,
    ConfigReload,
    Calls,
    Call,
    HangUp,
    Registrations,
    RemoveRegistration,
    Targets,
    TargetAction,
    Trunks,
    TrunkAction,
    Bans,
    Ban,
    Unban,
    Allowed,
    Allow,
    Disallow,
    Rules,
    AddRule,
    RemoveRule,
    ListAdd,
    ListRemove,
    FraudRules,
    AddFraudRule,
    RemoveFraudRule,
    FraudEvents,
    MediaSessions,
}

/// Method, path pattern (`{name}` is one path segment), operation.
pub const ROUTES: &[(&str, &str, Op)] = &[
    ("GET", "/health", Op::Health),
    ("GET", "/ready", Op::Ready),
    ("GET", "/metrics", Op::Metrics),
    ("GET", "/openapi.json", Op::OpenApi),
    ("GET", "/api/v1/version", Op::Version),
    ("GET", "/api/v1/config", Op::Config),
    ("POST", "/api/v1/config/check", Op::ConfigCheck),
    ("POST", "/api/v1/config/reload", Op::ConfigReload),
    ("GET", "/api/v1/calls", Op::Calls),
    ("GET", "/api/v1/calls/{id}", Op::Call),
    ("DELETE", "/api/v1/calls/{id}", Op::HangUp),
    ("GET", "/api/v1/registrations", Op::Registrations),
    (
        "DELETE",
        "/api/v1/registrations/{aor}",
        Op::RemoveRegistration,
    ),
    ("GET", "/api/v1/targets", Op::Targets),
    (
        "POST",
        "/api/v1/targets/{group}/{target}/{action}",
        Op::TargetAction,
    ),
    ("GET", "/api/v1/trunks", Op::Trunks),
    ("POST", "/api/v1/trunks/{name}/{action}", Op::TrunkAction),
    ("GET", "/api/v1/bans", Op::Bans),
    ("POST", "/api/v1/bans", Op::Ban),
    ("DELETE", "/api/v1/bans/{ip}", Op::Unban),
    ("GET", "/api/v1/allow", Op::Allowed),
    ("POST", "/api/v1/allow", Op::Allow),
    ("DELETE", "/api/v1/allow/{network}", Op::Disallow),
    ("GET", "/api/v1/rules", Op::Rules),
    ("POST", "/api/v1/rules", Op::AddRule),
    ("DELETE", "/api/v1/rules/{name}", Op::RemoveRule),
    ("POST", "/api/v1/rules/{name}/{list}", Op::ListAdd),
    (
        "DELETE",
        "/api/v1/rules/{name}/{list}/{entry}",
        Op::ListRemove,
    ),
    ("GET", "/api/v1/fraud/rules", Op::FraudRules),
    ("POST", "/api/v1/fraud/rules", Op::AddFraudRule),
    ("DELETE", "/api/v1/fraud/rules/{name}", Op::RemoveFraudRule),
    ("GET", "/api/v1/fraud/events", Op::FraudEvents),
    ("GET", "/api/v1/media/sessions", Op::MediaSessions),
];

/// Served without a token even when one is configured.
fn public(op: Op) -> bool {
    matches!(op, Op::Health | Op::Ready)
}

/// Served when no token is configured (every other route is then refused).
fn open_without_token(op: Op) -> bool {
    public(op) || matches!(op, Op::Metrics | Op::OpenApi)
}

/// An answer: status, content type, body.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The Content-Type.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

/// The content type of `/metrics`.
pub const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const JSON: &str = "application/json";

impl Reply {
    fn json<T: Serialize>(status: u16, v: &T) -> Self {
        match serde_json::to_vec(v) {
            Ok(body) => Self {
                status,
                content_type: JSON,
                body,
            },
            Err(e) => Self::error(500, &format!("cannot encode the answer: {e}"), None),
        }
    }

    /// An error answer `{"error": ..., "field": ...}`.
    pub fn error(status: u16, msg: &str, field: Option<&str>) -> Self {
        let body = ErrorBody {
            error: msg.into(),
            field: field.map(str::to_string),
        };
        Self {
            status,
            content_type: JSON,
            body: serde_json::to_vec(&body).unwrap_or_default(),
        }
    }

    fn from_api(e: ApiError) -> Self {
        match e {
            ApiError::NotImplemented(what) => {
                Self::error(501, &format!("{what}: not served by this SBC yet"), None)
            }
            ApiError::NotFound(what) => Self::error(404, &what, None),
            ApiError::Invalid { field, message } => Self::error(422, &message, Some(&field)),
            ApiError::Unavailable(what) => Self::error(503, &what, None),
        }
    }
}

/// The bearer token the API expects, if any.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    token: Option<Vec<u8>>,
}

impl Auth {
    /// Expect `token` (`None` or empty: no token, only health, readiness, metrics and the
    /// document are served).
    pub fn new(token: Option<&str>) -> Self {
        Self {
            token: token
                .filter(|t| !t.is_empty())
                .map(|t| t.as_bytes().to_vec()),
        }
    }

    /// Whether a token is configured.
    pub fn configured(&self) -> bool {
        self.token.is_some()
    }

    /// Whether the `Authorization` header carries the token (compared in constant time).
    fn accepts(&self, header: Option<&str>) -> bool {
        let Some(want) = &self.token else {
            return false;
        };
        let Some(given) = header.and_then(|h| {
            let (scheme, rest) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        }) else {
            return false;
        };
        bool::from(given.as_bytes().ct_eq(want))
    }
}

/// The route of `method` and `path`: its operation and the decoded `{}` segments; `Err(405)` when
/// the path exists for another method, `Err(404)` when it does not, `Err(400)` for a bad escape.
fn find(method: &str, path: &str) -> Result<(Op, Vec<String>), Reply> {
    let segs: Vec<&str> = path.split('/').collect();
    let mut other_method = false;
    for (m, pattern, op) in ROUTES {
        let pat: Vec<&str> = pattern.split('/').collect();
        if pat.len() != segs.len() {
            continue;
        }
        let mut params = Vec::new();
        let mut ok = true;
        for (p, s) in pat.iter().zip(&segs) {
            if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                match decode(s, false) {
                    Some(v) if !v.is_empty() => params.push(v),
                    Some(_) => ok = false,
                    None => return Err(Reply::error(400, "bad percent-encoding", Some(name))),
                }
            } else if p != s {
                ok = false;
            }
            if !ok {
                break;
            }
        }
        if ok {
            if *m == method {
                return Ok((*op, params));
            }
            other_method = true;
        }
    }
    Err(if other_method {
        Reply::error(405, &format!("{method} is not allowed on {path}"), None)
    } else {
        Reply::error(404, &format!("no such endpoint: {path}"), None)
    })
}

/// The field a serde error is about, from its path or its message (`unknown field `x``).
fn body_error(e: &serde_path_to_error::Error<serde_json::Error>) -> Reply {
    let inner = e.inner();
    if inner.is_syntax() || inner.is_eof() || inner.is_io() {
        return Reply::error(
            400,
            &format!("request body is not valid JSON: {inner}"),
            None,
        );
    }
    let path = e.path().to_string();
    let msg = inner.to_string();
    let field = if path == "." {
        msg.strip_prefix("unknown field `")
            .or_else(|| msg.strip_prefix("missing field `"))
            .and_then(|r| r.split('`').next())
            .map(str::to_string)
    } else {
        Some(path)
    };
    Reply::error(422, &msg, field.as_deref())
}

fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, Reply> {
    if body.is_empty() {
        return Err(Reply::error(400, "a JSON request body is needed", None));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let v = serde_path_to_error::deserialize(de).map_err(|e| body_error(&e))?;
    Ok(v)
}

/// Answer one request. `target` is the path with its query, `authorization` the header's value.
pub fn respond(
    handle: &dyn Control,
    auth: &Auth,
    method: &str,
    target: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Reply {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (op, params) = match find(method, path) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    if !public(op) {
        if !auth.configured() && !open_without_token(op) {
            return Reply::error(
                403,
                "no api.token is configured: only /health, /ready, /metrics and /openapi.json are served",
                None,
            );
        }
        if auth.configured() && !auth.accepts(authorization) {
            return Reply::error(401, "a valid bearer token is needed", Some("Authorization"));
        }
    }
    let query = match Query::parse(query) {
        Ok(q) => q,
        Err(e) => return bad_query(e),
    };
    match serve(handle, op, &params, &query, body) {
        Ok(r) | Err(r) => r,
    }
}

fn bad_query(e: ApiError) -> Reply {
    match e {
        ApiError::Invalid { field, message } => Reply::error(400, &message, Some(&field)),
        other => Reply::from_api(other),
    }
}

fn param(params: &[String], i: usize) -> &str {
    params.get(i).map_or("", String::as_str)
}

fn ok<T: Serialize>(r: Result<T, ApiError>) -> Result<Reply, Reply> {
    r.map(|v| Reply::json(200, &v)).map_err(Reply::from_api)
}

fn no_body(body: &[u8]) -> Result<(), Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(())
    } else {
        Err(Reply::error(
            400,
            "this endpoint takes no request body",
            None,
        ))
    }
}

fn serve(
    h: &dyn Control,
    op: Op,
    params: &[String],
    q: &Query,
    body: &[u8],
) -> Result<Reply, Reply> {
    let only = |allowed: &[&str]| q.only(allowed).map_err(bad_query);
    let paging = || q.paging().map_err(bad_query);
    let paged: &[&str] = &["limit", "offset"];
    match op {
        Op::ListAdd | Op::Ban | Op::Allow | Op::AddRule | Op::AddFraudRule | Op::ConfigCheck => {}
        _ => no_body(body)?,
    }
    match op {
        Op::Calls => only(&["limit", "offset", "caller", "callee", "trunk", "state"])?,
        Op::Registrations => only(&["limit", "offset", "aor"])?,
        Op::FraudEvents | Op::MediaSessions => only(paged)?,
        _ => only(&[])?,
    }
    match op {
        Op::Health => ok(Ok(h.health())),
        Op::Ready => {
            let r = h.ready();
            Ok(Reply::json(if r.ready { 200 } else { 503 }, &r))
        }
        Op::Metrics => Ok(Reply {
            status: 200,
            content_type: METRICS_TYPE,
            body: h.metrics().into_bytes(),
        }),
        Op::OpenApi => Ok(Reply {
            status: 200,
            content_type: JSON,
            body: crate::OPENAPI.as_bytes().to_vec(),
        }),
        Op::Version => ok(Ok(h.version())),
        Op::Config => ok(h.config()),
        Op::ConfigCheck => ok(h.config_check(&parse_body(body)?)),
        Op::ConfigReload => ok(h.config_reload()),
        Op::Calls => ok(h.calls(&q.call_filter(), paging()?)),
        Op::Call => ok(h.call(param(params, 0))),
        Op::HangUp => ok(h.hang_up(param(params, 0))),
        Op::Registrations => ok(h.registrations(q.get("aor"), paging()?)),
        Op::RemoveRegistration => ok(h.remove_registration(param(params, 0))),
        Op::Targets => ok(h.targets()),
        Op::TargetAction => {
            let action = action(param(params, 2))?;
            ok(h.target_action(param(params, 0), param(params, 1), action))
        }
        Op::Trunks => ok(h.trunks()),
        Op::TrunkAction => ok(h.trunk_action(param(params, 0), action(param(params, 1))?)),
        Op::Bans => ok(h.bans()),
        Op::Ban => ok(h.ban(&parse_body::<BanRequest>(body)?)),
        Op::Unban => {
            let ip = param(params, 0)
                .parse()
                .map_err(|_| Reply::error(400, "not an IP address", Some("ip")))?;
            ok(h.unban(ip))
        }
        Op::Allowed => ok(h.allowed()),
        Op::Allow => {
            let r: crate::dto::AllowRequest = parse_body(body)?;
            ok(h.allow(&r.network))
        }
        Op::Disallow => ok(h.disallow(param(params, 0))),
        Op::Rules => ok(h.rules()),
        Op::AddRule => ok(h.add_rule(&parse_body(body)?)),
        Op::RemoveRule => ok(h.remove_rule(param(params, 0))),
        Op::ListAdd => {
            let list = list(param(params, 1))?;
            let e: crate::dto::ListEntry = parse_body(body)?;
            ok(h.list_add(param(params, 0), list, &e.entry))
        }
        Op::ListRemove => {
            let list = list(param(params, 1))?;
            ok(h.list_remove(param(params, 0), list, param(params, 2)))
        }
        Op::FraudRules => ok(h.fraud_rules()),
        Op::AddFraudRule => ok(h.add_fraud_rule(&parse_body(body)?)),
        Op::RemoveFraudRule => ok(h.remove_fraud_rule(param(params, 0))),
        Op::FraudEvents => ok(h.fraud_events(paging()?)),
        Op::MediaSessions => ok(h.media_sessions(paging()?)),
    }
}

fn action(s: &str) -> Result<AdminAction, Reply> {
    AdminAction::from_name(s).ok_or_else(|| {
        Reply::error(
            404,
            "the action is one of enable, disable, drain",
            Some("action"),
        )
    })
}

fn list(s: &str) -> Result<RuleList, Reply> {
    RuleList::from_name(s).ok_or_else(|| {
        Reply::error(
            404,
            "the list is one of caller_blacklist, caller_whitelist, callee_blacklist, callee_whitelist",
            Some("list"),
        )
    })
}

#[cfg(test)]
mod tests;
