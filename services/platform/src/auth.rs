//! Authentication: bearer JWTs with an asymmetric signature (EdDSA or ES256) checked against keys
//! pinned from configuration, plus the claims the suite relies on.
//!
//! `alg: none` and symmetric algorithms are refused because no pinned key can have them; `exp`,
//! `nbf`, `iss` and `aud` are always checked, with a leeway of at most 30 seconds.
//!
//! The `municipalities` claim is the caller's jurisdiction: the CBS codes of the municipalities
//! its organisation works for. A MUNICIPALITY token whose `org` is itself a CBS code has that code
//! when the claim is absent. Suite SERVICE tokens are not limited by jurisdiction; when they call
//! on behalf of an end user, that user travels in the [`END_USER_METADATA`] entry.
//!
//! Suite SERVICE tokens are narrow: their `aud` names the one service they are for
//! ([`service_audience`], e.g. `zvv/intake`), and a service accepts a SERVICE token only when
//! it names that service, so that signalling's token to intake is useless against any other
//! service. Other tokens carry the suite audience (e.g. `zvv`).

use std::{
    collections::{HashMap, HashSet},
    fmt,
    path::Path,
    str::FromStr,
};

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
    errors::ErrorKind,
    jwk::{AlgorithmParameters, EllipticCurve, JwkSet},
};
use serde::{Deserialize, Serialize};

use crate::codes::MunicipalityCode;

/// The largest clock skew accepted on `exp` and `nbf`.
pub const MAX_LEEWAY_SECS: u64 = 30;

/// The most municipalities one token may name (the Netherlands has about 340).
pub const MAX_MUNICIPALITIES: usize = 400;

/// Request metadata in which a suite service names the end user it calls on behalf of
/// (base64url of a JSON object with `sub`, `org`, `org_type`, `roles`, `municipalities`). Trusted
/// only on a suite SERVICE token.
pub const END_USER_METADATA: &str = "zvv-end-user";

macro_rules! claim_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} {}",
                        stringify!($name),
                        crate::error::quote(other)
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

claim_enum! {
    /// The kind of organisation a professional works for (`org_type` claim).
    OrgType {
        Police = "POLICE",
        School = "SCHOOL",
        YouthCare = "YOUTH_CARE",
        YouthHealth = "YOUTH_HEALTH",
        VeiligThuis = "VEILIG_THUIS",
        NeighbourhoodTeam = "NEIGHBOURHOOD_TEAM",
        Prison = "PRISON",
        Probation = "PROBATION",
        Housing = "HOUSING",
        CareProvider = "CARE_PROVIDER",
        Municipality = "MUNICIPALITY",
        GeneralPractice = "GENERAL_PRACTICE",
        DebtCounselling = "DEBT_COUNSELLING",
        Suite = "SUITE",
    }
}

claim_enum! {
    /// What a caller may do (`roles` claim).
    Role {
        Professional = "PROFESSIONAL",
        Coordinator = "COORDINATOR",
        TriageOfficer = "TRIAGE_OFFICER",
        Analyst = "ANALYST",
        Service = "SERVICE",
        Auditor = "AUDITOR",
    }
}

/// The `aud` claim: one audience or several (RFC 7519 allows both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn values(&self) -> &[String] {
        match self {
            Self::One(one) => std::slice::from_ref(one),
            Self::Many(many) => many,
        }
    }
}

/// The `aud` of a SERVICE token for `service` (e.g. `intake`) of the suite `audience`.
pub fn service_audience(audience: &str, service: &str) -> String {
    format!("{audience}/{service}")
}

impl From<&str> for Audience {
    fn from(s: &str) -> Self {
        Self::One(s.to_owned())
    }
}

/// The claims of a suite token as they travel in the JWT.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: Audience,
    /// The professional (or, for SERVICE tokens, the calling service).
    pub sub: String,
    /// The organisation's identifier.
    pub org: String,
    pub org_type: String,
    pub roles: Vec<String>,
    pub exp: i64,
    pub nbf: i64,
    #[serde(default)]
    pub iat: i64,
    /// The CBS codes (`GM` + 4 digits) of the municipalities the organisation works for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub municipalities: Option<Vec<String>>,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub sub: String,
    pub org: String,
    pub org_type: OrgType,
    pub roles: Vec<Role>,
    /// The caller's jurisdiction: sorted, without duplicates.
    pub municipalities: Vec<MunicipalityCode>,
}

/// Which municipalities' people a caller may see (need-to-know).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jurisdiction {
    /// Suite services: they enforce the rules of their own callers.
    Unlimited,
    /// These municipalities only (possibly none).
    Municipalities(Vec<MunicipalityCode>),
}

impl Jurisdiction {
    /// True when the municipality with this code is in the jurisdiction.
    pub fn covers(&self, code: &str) -> bool {
        match self {
            Self::Unlimited => true,
            Self::Municipalities(codes) => codes.iter().any(|c| c.as_str() == code),
        }
    }

    /// Like [`Jurisdiction::covers`] for a possibly unknown municipality: a record without one is
    /// in no municipality's jurisdiction.
    pub fn covers_opt(&self, code: Option<&str>) -> bool {
        match (self, code) {
            (Self::Unlimited, _) => true,
            (_, Some(code)) => self.covers(code),
            (_, None) => false,
        }
    }

    /// The codes for a SQL filter (`municipality_code = ANY($n)`), or `None` for no filter.
    pub fn sql_filter(&self) -> Option<Vec<String>> {
        match self {
            Self::Unlimited => None,
            Self::Municipalities(codes) => {
                Some(codes.iter().map(|c| c.as_str().to_owned()).collect())
            }
        }
    }
}

impl Principal {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// A suite service calling with its SERVICE token.
    pub fn is_suite_service(&self) -> bool {
        self.org_type == OrgType::Suite && self.has_role(Role::Service)
    }

    /// What this caller may see: everything for a suite service, else its municipalities.
    pub fn jurisdiction(&self) -> Jurisdiction {
        if self.is_suite_service() {
            Jurisdiction::Unlimited
        } else {
            Jurisdiction::Municipalities(self.municipalities.clone())
        }
    }

    /// The municipalities as one comma-separated string, for logs and audit records.
    pub fn municipalities_text(&self) -> String {
        self.municipalities
            .iter()
            .map(MunicipalityCode::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// This caller as the [`END_USER_METADATA`] value a suite service forwards.
    pub fn to_end_user_metadata(&self) -> String {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let wire = EndUserWire {
            sub: self.sub.clone(),
            org: self.org.clone(),
            org_type: self.org_type.as_str().to_owned(),
            roles: self.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            municipalities: self
                .municipalities
                .iter()
                .map(|m| m.as_str().to_owned())
                .collect(),
        };
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Reads an [`END_USER_METADATA`] value; any flaw is refused, never guessed around.
    pub fn from_end_user_metadata(value: &str) -> Result<Self, AuthError> {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let bad = || AuthError::EndUser;
        if value.len() > 16 * 1024 {
            return Err(bad());
        }
        let json = URL_SAFE_NO_PAD.decode(value.trim()).map_err(|_| bad())?;
        let wire: EndUserWire = serde_json::from_slice(&json).map_err(|_| bad())?;
        if wire.sub.is_empty() || !is_organisation_id(&wire.org) {
            return Err(bad());
        }
        let org_type: OrgType = wire.org_type.parse().map_err(|_| bad())?;
        let mut roles: Vec<Role> = wire.roles.iter().filter_map(|r| r.parse().ok()).collect();
        roles.sort();
        roles.dedup();
        let municipalities =
            jurisdiction_of(Some(wire.municipalities), &wire.org, org_type).map_err(|_| bad())?;
        Ok(Self {
            sub: wire.sub,
            org: wire.org,
            org_type,
            roles,
            municipalities,
        })
    }

    /// The roles as one comma-separated string, for audit records.
    pub fn roles_text(&self) -> String {
        self.roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The end user as a suite service forwards it.
#[derive(Serialize, Deserialize)]
struct EndUserWire {
    sub: String,
    org: String,
    org_type: String,
    roles: Vec<String>,
    municipalities: Vec<String>,
}

/// The jurisdiction named by a `municipalities` claim, or (when the claim is absent) the
/// municipality that a MUNICIPALITY organisation whose `org` is a CBS code is itself.
fn jurisdiction_of(
    claim: Option<Vec<String>>,
    org: &str,
    org_type: OrgType,
) -> Result<Vec<MunicipalityCode>, AuthError> {
    let mut codes = match claim {
        Some(list) => {
            if list.len() > MAX_MUNICIPALITIES {
                return Err(AuthError::Claims(format!(
                    "municipalities names more than {MAX_MUNICIPALITIES} municipalities"
                )));
            }
            list.iter()
                .map(|c| MunicipalityCode::parse(c))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    AuthError::Claims(
                        "municipalities must be CBS codes: GM followed by 4 digits".to_owned(),
                    )
                })?
        }
        None if org_type == OrgType::Municipality => {
            MunicipalityCode::parse(&org.to_ascii_uppercase())
                .map(|c| vec![c])
                .unwrap_or_default()
        }
        None => Vec::new(),
    };
    codes.sort();
    codes.dedup();
    Ok(codes)
}

/// Why a token was refused. Messages are safe to return to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token in the authorization metadata")]
    Missing,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
    #[error("token has the wrong audience")]
    Audience,
    /// A suite SERVICE token whose `aud` does not name exactly this service.
    #[error("a SERVICE token is accepted only by the service its aud names; this is {0}")]
    ServiceAudience(String),
    #[error("token has the wrong issuer")]
    Issuer,
    #[error("token signature or algorithm not accepted")]
    Signature,
    #[error("token claims are not valid: {0}")]
    Claims(String),
    #[error("malformed token")]
    Malformed,
    #[error("the end-user metadata ({END_USER_METADATA}) is malformed")]
    EndUser,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {path} holds no EdDSA (Ed25519) or ES256 (P-256) public key")]
    Unsupported { path: String },
    #[error("no token verification key configured: set ZVV_JWT_PUBLIC_KEY_FILE or ZVV_JWKS_FILE")]
    NoKeys,
    #[error("leeway must be at most {MAX_LEEWAY_SECS} seconds")]
    Leeway,
    #[error("cannot create signing key: {0}")]
    Signing(String),
}

struct PinnedKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// Checks bearer tokens against pinned public keys. Verified tokens are cached (bounded, keyed by
/// a hash of the token), so a caller's repeated calls cost one signature check; `exp` and `nbf`
/// are still checked on every hit.
pub struct TokenVerifier {
    keys: Vec<PinnedKey>,
    issuer: String,
    audience: String,
    /// The service this verifier guards; SERVICE tokens must name it.
    service: Option<String>,
    leeway: u64,
    cache: std::sync::Mutex<HashMap<[u8; 32], Verified>>,
}

/// A cached verification.
#[derive(Clone)]
struct Verified {
    principal: Principal,
    nbf: i64,
    exp: i64,
}

/// Tokens kept verified at most; beyond it the expired ones go, then all.
pub const TOKEN_CACHE_SIZE: usize = 10_000;

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("keys", &self.keys.len())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("service", &self.service)
            .field("leeway", &self.leeway)
            .finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })
}

impl TokenVerifier {
    /// Pins the keys in PEM files (Ed25519 or P-256 public keys) and a JWKS file.
    pub fn from_files(
        pem_files: &[impl AsRef<Path>],
        jwks_file: Option<&Path>,
        issuer: &str,
        audience: &str,
        leeway_secs: u64,
    ) -> Result<Self, KeyError> {
        if leeway_secs > MAX_LEEWAY_SECS {
            return Err(KeyError::Leeway);
        }
        let mut keys = Vec::new();
        for path in pem_files {
            let path = path.as_ref();
            let pem = read(path)?;
            let unsupported = || KeyError::Unsupported {
                path: path.display().to_string(),
            };
            let text = String::from_utf8_lossy(&pem);
            if !text.contains("PUBLIC KEY") {
                return Err(unsupported());
            }
            let (alg, key) = match DecodingKey::from_ed_pem(&pem) {
                Ok(key) => (Algorithm::EdDSA, key),
                Err(_) => (
                    Algorithm::ES256,
                    DecodingKey::from_ec_pem(&pem).map_err(|_| unsupported())?,
                ),
            };
            keys.push(PinnedKey {
                kid: None,
                alg,
                key,
            });
        }
        if let Some(path) = jwks_file {
            let unsupported = || KeyError::Unsupported {
                path: path.display().to_string(),
            };
            let set: JwkSet = serde_json::from_slice(&read(path)?).map_err(|_| unsupported())?;
            for jwk in &set.keys {
                let alg = match &jwk.algorithm {
                    AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                        Algorithm::EdDSA
                    }
                    AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                        Algorithm::ES256
                    }
                    _ => continue,
                };
                let key = DecodingKey::from_jwk(jwk).map_err(|_| unsupported())?;
                keys.push(PinnedKey {
                    kid: jwk.common.key_id.clone(),
                    alg,
                    key,
                });
            }
        }
        if keys.is_empty() {
            return Err(KeyError::NoKeys);
        }
        Ok(Self {
            keys,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            service: None,
            leeway: leeway_secs,
            cache: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Guards `service` (e.g. `intake`): SERVICE tokens are accepted only when their `aud` is
    /// exactly [`service_audience`] of it. A verifier without a service accepts no SERVICE token.
    pub fn for_service(mut self, service: &str) -> Self {
        self.service = Some(service_audience(&self.audience, service));
        self
    }

    /// Verifies a compact JWT and returns the caller it names.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        use sha2::{Digest, Sha256};
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = chrono::Utc::now().timestamp();
        let leeway = i64::try_from(self.leeway).unwrap_or(0);
        {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(hit) = cache.get(&key) {
                if now >= hit.exp + leeway {
                    cache.remove(&key);
                    return Err(AuthError::Expired);
                }
                if now < hit.nbf - leeway {
                    return Err(AuthError::NotYetValid);
                }
                return Ok(hit.principal.clone());
            }
        }
        let (principal, nbf, exp) = self.verify_uncached(token)?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= TOKEN_CACHE_SIZE {
            cache.retain(|_, v| now < v.exp + leeway);
            if cache.len() >= TOKEN_CACHE_SIZE {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Verified {
                principal: principal.clone(),
                nbf,
                exp,
            },
        );
        Ok(principal)
    }

    fn verify_uncached(&self, token: &str) -> Result<(Principal, i64, i64), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let mut last = AuthError::Signature;
        let candidates = self.keys.iter().filter(|k| {
            k.alg == header.alg && (header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
        });
        for pinned in candidates {
            let mut validation = Validation::new(pinned.alg);
            validation.leeway = self.leeway;
            validation.validate_nbf = true;
            validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
            validation.set_issuer(&[&self.issuer]);
            match &self.service {
                Some(service) => validation.set_audience(&[&self.audience, service]),
                None => validation.set_audience(&[&self.audience]),
            }
            match jsonwebtoken::decode::<Claims>(token, &pinned.key, &validation) {
                Ok(data) => {
                    let (nbf, exp) = (data.claims.nbf, data.claims.exp);
                    let aud = data.claims.aud.clone();
                    let principal = principal(data.claims)?;
                    if principal.is_suite_service() {
                        let named = self
                            .service
                            .as_ref()
                            .is_some_and(|service| aud.values() == std::slice::from_ref(service));
                        if !named {
                            let this = self
                                .service
                                .clone()
                                .unwrap_or_else(|| self.audience.clone());
                            return Err(AuthError::ServiceAudience(this));
                        }
                    }
                    return Ok((principal, nbf, exp));
                }
                Err(err) => {
                    last = match err.kind() {
                        ErrorKind::InvalidSignature => AuthError::Signature,
                        ErrorKind::ExpiredSignature => return Err(AuthError::Expired),
                        ErrorKind::ImmatureSignature => return Err(AuthError::NotYetValid),
                        ErrorKind::InvalidAudience => return Err(AuthError::Audience),
                        ErrorKind::InvalidIssuer => return Err(AuthError::Issuer),
                        ErrorKind::MissingRequiredClaim(c) => {
                            return Err(AuthError::Claims(format!("missing {c}")));
                        }
                        ErrorKind::Json(e) => {
                            // serde names the claim, never its value, for missing/typed fields
                            let what = if e.is_data() {
                                "org, org_type (string) and roles (list of strings) are required; \
                                 municipalities, when present, is a list of strings"
                            } else {
                                "the claims are not a JSON object"
                            };
                            return Err(AuthError::Claims(what.to_owned()));
                        }
                        _ => AuthError::Malformed,
                    }
                }
            }
        }
        Err(last)
    }
}

/// The longest organisation id a token may carry.
pub const MAX_ORGANISATION_ID: usize = 128;

/// The shape of an organisation id (the `org` claim): 1-128 ASCII letters, digits, `-`, `_`,
/// `.` and `:` (e.g. `school-1`, `gm0363`, an OIN), and not a valid BSN. Events name their
/// audience by it, so an organisation that could not be named there cannot authenticate
/// either.
pub fn is_organisation_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_ORGANISATION_ID
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        && crate::bsn::Bsn::parse(value).is_err()
}

fn principal(claims: Claims) -> Result<Principal, AuthError> {
    if claims.sub.is_empty() || claims.org.is_empty() {
        return Err(AuthError::Claims(
            "sub and org must not be empty".to_owned(),
        ));
    }
    if !is_organisation_id(&claims.org) {
        return Err(AuthError::Claims(format!(
            "org must be an organisation id: 1-{MAX_ORGANISATION_ID} letters, digits, '-', '_', \
             '.' or ':', and no BSN"
        )));
    }
    let org_type = claims.org_type.parse().map_err(AuthError::Claims)?;
    // Unknown roles are ignored rather than refused, so that new roles can be introduced
    // without breaking older services; a token with no known role can do nothing.
    let roles: HashSet<Role> = claims.roles.iter().filter_map(|r| r.parse().ok()).collect();
    let mut roles: Vec<Role> = roles.into_iter().collect();
    roles.sort();
    let municipalities = jurisdiction_of(claims.municipalities, &claims.org, org_type)?;
    Ok(Principal {
        sub: claims.sub,
        org: claims.org,
        org_type,
        roles,
        municipalities,
    })
}

/// Mints tokens with an Ed25519 private key (development and service identities).
pub struct TokenSigner {
    key: EncodingKey,
    issuer: String,
    audience: String,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigner")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// What a new token should say.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub sub: String,
    pub org: String,
    pub org_type: OrgType,
    pub roles: Vec<Role>,
    /// The `municipalities` claim; empty leaves it out (see [`Claims::municipalities`]).
    pub municipalities: Vec<String>,
    pub ttl: chrono::Duration,
    /// The one suite service the token is for: `aud` is then [`service_audience`] of it
    /// instead of the suite audience. SERVICE tokens need it.
    pub for_service: Option<String>,
}

impl TokenSigner {
    pub fn from_pem(pem: &[u8], issuer: &str, audience: &str) -> Result<Self, KeyError> {
        let key = EncodingKey::from_ed_pem(pem).map_err(|e| KeyError::Signing(e.to_string()))?;
        Ok(Self {
            key,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        })
    }

    pub fn from_pem_file(path: &Path, issuer: &str, audience: &str) -> Result<Self, KeyError> {
        Self::from_pem(&read(path)?, issuer, audience)
    }

    pub fn mint(&self, req: &TokenRequest) -> Result<String, KeyError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: Audience::One(match &req.for_service {
                Some(service) => service_audience(&self.audience, service),
                None => self.audience.clone(),
            }),
            sub: req.sub.clone(),
            org: req.org.clone(),
            org_type: req.org_type.as_str().to_owned(),
            roles: req.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            exp: now + req.ttl.num_seconds(),
            nbf: now,
            iat: now,
            municipalities: (!req.municipalities.is_empty()).then(|| req.municipalities.clone()),
        };
        self.mint_claims(&claims)
    }

    /// Signs a claims object of any shape; tests use it for claims of the wrong type.
    pub fn mint_json(&self, claims: &serde_json::Value) -> Result<String, KeyError> {
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &self.key)
            .map_err(|e| KeyError::Signing(e.to_string()))
    }

    /// Signs arbitrary claims; tests use it to make expired or wrong-audience tokens.
    pub fn mint_claims(&self, claims: &Claims) -> Result<String, KeyError> {
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &self.key)
            .map_err(|e| KeyError::Signing(e.to_string()))
    }
}

/// A new Ed25519 key pair as (PKCS#8 private key PEM, SPKI public key PEM).
pub fn generate_ed25519_pem() -> Result<(String, String), KeyError> {
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
    let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let private = signing
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Signing(e.to_string()))?;
    let public = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Signing(e.to_string()))?;
    Ok((private.to_string(), public))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

    struct Keys {
        _dir: tempfile::TempDir,
        signer: TokenSigner,
        verifier: TokenVerifier,
    }

    fn keys() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = generate_ed25519_pem().unwrap();
        let public_path = dir.path().join("public.pem");
        std::fs::write(&public_path, public).unwrap();
        Keys {
            signer: TokenSigner::from_pem(private.as_bytes(), "zvv-test", "zvv").unwrap(),
            verifier: TokenVerifier::from_files(&[&public_path], None, "zvv-test", "zvv", 5)
                .unwrap(),
            _dir: dir,
        }
    }

    fn request() -> TokenRequest {
        TokenRequest {
            sub: "p1".into(),
            org: "gm0363".into(),
            org_type: OrgType::Municipality,
            roles: vec![Role::Professional, Role::Coordinator],
            municipalities: Vec::new(),
            ttl: chrono::Duration::hours(1),
            for_service: None,
        }
    }

    fn claims() -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            iss: "zvv-test".into(),
            aud: "zvv".into(),
            sub: "p1".into(),
            org: "gm0363".into(),
            org_type: "MUNICIPALITY".into(),
            roles: vec!["PROFESSIONAL".into()],
            exp: now + 60,
            nbf: now,
            iat: now,
            municipalities: None,
        }
    }

    #[test]
    fn accepts_a_good_token() {
        let k = keys();
        let token = k.signer.mint(&request()).unwrap();
        let p = k.verifier.verify(&token).unwrap();
        assert_eq!(p.org, "gm0363");
        assert_eq!(p.org_type, OrgType::Municipality);
        assert!(p.has_role(Role::Coordinator));
    }

    #[test]
    fn refuses_bad_tokens() {
        let k = keys();
        let mut c = claims();
        c.exp = chrono::Utc::now().timestamp() - 120;
        assert_eq!(
            k.verifier.verify(&k.signer.mint_claims(&c).unwrap()),
            Err(AuthError::Expired)
        );

        let mut c = claims();
        c.nbf = chrono::Utc::now().timestamp() + 600;
        assert_eq!(
            k.verifier.verify(&k.signer.mint_claims(&c).unwrap()),
            Err(AuthError::NotYetValid)
        );

        let mut c = claims();
        c.aud = "other".into();
        assert_eq!(
            k.verifier.verify(&k.signer.mint_claims(&c).unwrap()),
            Err(AuthError::Audience)
        );

        let mut c = claims();
        c.aud = Audience::Many(vec!["other".into(), "zvv".into()]);
        assert!(
            k.verifier
                .verify(&k.signer.mint_claims(&c).unwrap())
                .is_ok(),
            "aud as a list"
        );

        let mut c = claims();
        c.iss = "evil".into();
        assert_eq!(
            k.verifier.verify(&k.signer.mint_claims(&c).unwrap()),
            Err(AuthError::Issuer)
        );

        let mut c = claims();
        c.org_type = "ALIENS".into();
        assert!(matches!(
            k.verifier.verify(&k.signer.mint_claims(&c).unwrap()),
            Err(AuthError::Claims(_))
        ));

        // signed with another key
        let other = keys();
        let token = other.signer.mint(&request()).unwrap();
        assert_eq!(k.verifier.verify(&token), Err(AuthError::Signature));

        // alg: none
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
        assert!(k.verifier.verify(&format!("{header}.{body}.")).is_err());

        // HS256 with the public key as secret (algorithm confusion)
        let hs = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert_eq!(k.verifier.verify(&hs), Err(AuthError::Signature));
        assert_eq!(k.verifier.verify("garbage"), Err(AuthError::Malformed));
    }

    #[test]
    fn pins_es256_pem_keys() {
        use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let dir = tempfile::tempdir().unwrap();
        let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let public = dir.path().join("es256.pem");
        std::fs::write(
            &public,
            key.verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
        )
        .unwrap();
        let verifier = TokenVerifier::from_files(&[&public], None, "zvv-test", "zvv", 5).unwrap();
        let private = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::ES256),
            &claims(),
            &EncodingKey::from_ec_pem(private.as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(verifier.verify(&token).unwrap().org, "gm0363");
        // an EdDSA token is not accepted by an ES256 pin
        assert_eq!(
            verifier.verify(&keys().signer.mint(&request()).unwrap()),
            Err(AuthError::Signature)
        );
    }

    #[test]
    fn pins_jwks_keys_by_kid() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
        use ed25519_dalek::pkcs8::{EncodePrivateKey, spki::der::pem::LineEnding};
        let dir = tempfile::tempdir().unwrap();
        let a = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let b = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let jwk = |kid: &str, k: &ed25519_dalek::SigningKey| {
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid,
                "x": B64.encode(k.verifying_key().to_bytes())})
        };
        let jwks = dir.path().join("jwks.json");
        std::fs::write(
            &jwks,
            serde_json::json!({"keys": [jwk("a", &a), jwk("b", &b),
                {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"}]})
            .to_string(),
        )
        .unwrap();
        let verifier =
            TokenVerifier::from_files(&[] as &[&Path], Some(&jwks), "zvv-test", "zvv", 5).unwrap();
        let sign = |k: &ed25519_dalek::SigningKey, kid: Option<&str>| {
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = kid.map(str::to_owned);
            let pem = k.to_pkcs8_pem(LineEnding::LF).unwrap();
            jsonwebtoken::encode(
                &header,
                &claims(),
                &EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
            )
            .unwrap()
        };
        assert!(verifier.verify(&sign(&b, Some("b"))).is_ok());
        assert!(
            verifier.verify(&sign(&a, None)).is_ok(),
            "without kid every pinned key is tried"
        );
        assert_eq!(
            verifier.verify(&sign(&a, Some("b"))),
            Err(AuthError::Signature)
        );
        let stranger = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        assert_eq!(
            verifier.verify(&sign(&stranger, Some("a"))),
            Err(AuthError::Signature)
        );
        // the symmetric key in the set is never pinned
        let hs = jsonwebtoken::encode(
            &{
                let mut h = Header::new(Algorithm::HS256);
                h.kid = Some("sym".into());
                h
            },
            &claims(),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert_eq!(verifier.verify(&hs), Err(AuthError::Signature));
    }

    #[test]
    fn the_org_claim_is_an_organisation_id() {
        let k = keys();
        let verify = |c: &Claims| k.verifier.verify(&k.signer.mint_claims(c).unwrap());
        for good in [
            "school-1",
            "gm0363",
            "GM0363",
            "00000001234567890000",
            "a.b_c:d",
        ] {
            let mut c = claims();
            c.org = good.into();
            assert!(verify(&c).is_ok(), "{good}");
        }
        for bad in [
            "Gemeente Utrecht",
            "a/b",
            "é",
            "123456782",
            &"x".repeat(129),
        ] {
            let mut c = claims();
            c.org = bad.to_owned();
            assert!(
                matches!(verify(&c), Err(AuthError::Claims(_))),
                "{bad} must be refused"
            );
        }
    }

    #[test]
    fn jurisdiction_comes_from_the_municipalities_claim() {
        let k = keys();
        let verify = |c: &Claims| k.verifier.verify(&k.signer.mint_claims(c).unwrap());
        let codes = |p: &Principal| p.municipalities_text();

        // a municipality whose org is a CBS code has that code when the claim is absent
        let p = verify(&claims()).unwrap();
        assert_eq!(codes(&p), "GM0363");
        assert!(p.jurisdiction().covers("GM0363"));
        assert!(!p.jurisdiction().covers("GM0034"));

        let mut c = claims();
        c.municipalities = Some(vec!["GM0758".into(), "GM0034".into(), "GM0758".into()]);
        let p = verify(&c).unwrap();
        assert_eq!(codes(&p), "GM0034,GM0758", "sorted, without duplicates");
        assert!(
            !p.jurisdiction().covers("GM0363"),
            "the claim replaces the default"
        );

        // an explicit empty list is no jurisdiction, even for a municipality
        c.municipalities = Some(vec![]);
        assert_eq!(codes(&verify(&c).unwrap()), "");

        // other organisation types have none without the claim
        let mut c = claims();
        c.org = "school-1".into();
        c.org_type = "SCHOOL".into();
        assert!(verify(&c).unwrap().municipalities.is_empty());
        c.org_type = "MUNICIPALITY".into();
        assert!(
            verify(&c).unwrap().municipalities.is_empty(),
            "org is no CBS code"
        );

        // malformed claims are refused
        for bad in [
            vec!["gm0363"],
            vec!["GM363"],
            vec!["GM0363", "Breda"],
            vec![""],
        ] {
            let mut c = claims();
            c.municipalities = Some(bad.iter().map(|s| (*s).to_owned()).collect());
            assert!(
                matches!(verify(&c), Err(AuthError::Claims(_))),
                "{bad:?} must be refused"
            );
        }
        let mut c = claims();
        c.municipalities = Some(vec!["GM0363".into(); MAX_MUNICIPALITIES + 1]);
        assert!(matches!(verify(&c), Err(AuthError::Claims(_))));
        // not a list of strings
        let mut body = serde_json::to_value(claims()).unwrap();
        body["municipalities"] = serde_json::json!("GM0363");
        let token = k.signer.mint_json(&body).unwrap();
        assert!(matches!(
            k.verifier.verify(&token),
            Err(AuthError::Claims(_))
        ));
    }

    #[test]
    fn suite_services_are_not_limited() {
        let k = keys();
        let verifier = k.verifier.for_service("intake");
        let mut c = claims();
        c.org = "zvv-signalling".into();
        c.org_type = "SUITE".into();
        c.roles = vec!["SERVICE".into()];
        c.aud = "zvv/intake".into();
        let p = verifier.verify(&k.signer.mint_claims(&c).unwrap()).unwrap();
        assert_eq!(p.jurisdiction(), Jurisdiction::Unlimited);
        assert!(p.jurisdiction().covers_opt(None));
        // a SERVICE role of another organisation type is an ordinary caller
        c.org_type = "SCHOOL".into();
        let p = verifier.verify(&k.signer.mint_claims(&c).unwrap()).unwrap();
        assert_eq!(p.jurisdiction(), Jurisdiction::Municipalities(vec![]));
        assert!(!p.jurisdiction().covers_opt(None));
    }

    #[test]
    fn an_unknown_claim_value_is_quoted_short() {
        let err = "x".repeat(10_000).parse::<OrgType>().unwrap_err();
        assert!(err.len() < 100, "{err}");
        assert!(err.contains("10000 characters"), "{err}");
        assert_eq!(
            "POLIZEI".parse::<OrgType>().unwrap_err(),
            "unknown OrgType \"POLIZEI\""
        );
    }

    #[test]
    fn service_tokens_are_accepted_only_by_the_service_they_name() {
        let dir = tempfile::tempdir().unwrap();
        let public = dir.path().join("p.pem");
        // the same pinned key for two services
        let (private, public_pem) = generate_ed25519_pem().unwrap();
        std::fs::write(&public, public_pem).unwrap();
        let signer = TokenSigner::from_pem(private.as_bytes(), "zvv-test", "zvv").unwrap();
        let verifier = |service: &str| {
            TokenVerifier::from_files(&[&public], None, "zvv-test", "zvv", 5)
                .unwrap()
                .for_service(service)
        };
        let (intake, signalling) = (verifier("intake"), verifier("signalling"));
        let no_service = TokenVerifier::from_files(&[&public], None, "zvv-test", "zvv", 5).unwrap();
        let service = |for_service: Option<&str>| {
            let mut r = request();
            r.org = "zvv-signalling".into();
            r.org_type = OrgType::Suite;
            r.roles = vec![Role::Service];
            r.for_service = for_service.map(str::to_owned);
            signer.mint(&r).unwrap()
        };

        let to_intake = service(Some("intake"));
        assert!(intake.verify(&to_intake).unwrap().is_suite_service());
        assert_eq!(
            signalling.verify(&to_intake),
            Err(AuthError::Audience),
            "a token for intake is refused by signalling"
        );
        // a SERVICE token with the suite audience names no service: nobody takes it
        let broad = service(None);
        for v in [&intake, &signalling, &no_service] {
            assert!(matches!(
                v.verify(&broad),
                Err(AuthError::ServiceAudience(_))
            ));
        }
        // nor one naming several services
        let mut c = claims();
        c.org_type = "SUITE".into();
        c.roles = vec!["SERVICE".into()];
        c.aud = Audience::Many(vec!["zvv/intake".into(), "zvv/signalling".into()]);
        let many = signer.mint_claims(&c).unwrap();
        assert_eq!(
            intake.verify(&many),
            Err(AuthError::ServiceAudience("zvv/intake".into()))
        );
        // professionals' tokens keep the suite audience and work everywhere
        let professional = signer.mint(&request()).unwrap();
        assert!(intake.verify(&professional).is_ok());
        assert!(signalling.verify(&professional).is_ok());
        // a verifier without a service takes no SERVICE token, even one naming a service
        assert_eq!(
            no_service.verify(&to_intake).map(|_| ()),
            Err(AuthError::Audience)
        );
    }

    #[test]
    fn end_users_round_trip_and_flaws_are_refused() {
        let user = Principal {
            sub: "p-1 \"é\"".into(),
            org: "school-1".into(),
            org_type: OrgType::School,
            roles: vec![Role::Professional],
            municipalities: vec![MunicipalityCode::parse("GM0034").unwrap()],
        };
        let text = user.to_end_user_metadata();
        assert!(
            text.bytes().all(|b| b.is_ascii_graphic()),
            "a valid header value"
        );
        assert_eq!(Principal::from_end_user_metadata(&text), Ok(user));
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
        for bad in [
            "not base64 !".to_owned(),
            B64.encode("{}"),
            B64.encode(
                r#"{"sub":"a","org":"b","org_type":"ALIENS","roles":[],"municipalities":[]}"#,
            ),
            B64.encode(
                r#"{"sub":"a","org":"b","org_type":"SCHOOL","roles":[],"municipalities":["x"]}"#,
            ),
            B64.encode(
                r#"{"sub":"","org":"b","org_type":"SCHOOL","roles":[],"municipalities":[]}"#,
            ),
            "A".repeat(20_000),
        ] {
            assert_eq!(
                Principal::from_end_user_metadata(&bad),
                Err(AuthError::EndUser),
                "{bad:.40}"
            );
        }
    }

    #[test]
    fn cached_tokens_still_expire() {
        let k = keys();
        let token = k.signer.mint(&request()).unwrap();
        assert!(k.verifier.verify(&token).is_ok());
        assert!(k.verifier.verify(&token).is_ok(), "a cache hit");
        // a token that expires within the leeway window: verified once, then refused from cache
        let mut c = claims();
        let now = chrono::Utc::now().timestamp();
        c.exp = now - 4; // leeway 5 s: still valid now
        let short = k.signer.mint_claims(&c).unwrap();
        assert!(k.verifier.verify(&short).is_ok());
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let mut expired_later = Err(AuthError::Expired);
        for _ in 0..2 {
            expired_later = k.verifier.verify(&short).map(|_| ());
            if expired_later.is_err() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1000));
        }
        assert_eq!(expired_later, Err(AuthError::Expired));
        // a refused token is never cached as valid
        assert_eq!(k.verifier.verify("garbage"), Err(AuthError::Malformed));
        assert_eq!(k.verifier.verify("garbage"), Err(AuthError::Malformed));
    }

    #[test]
    fn leeway_is_capped() {
        let err = TokenVerifier::from_files(&[] as &[&Path], None, "i", "a", 31).unwrap_err();
        assert!(matches!(err, KeyError::Leeway));
        let err = TokenVerifier::from_files(&[] as &[&Path], None, "i", "a", 5).unwrap_err();
        assert!(matches!(err, KeyError::NoKeys));
    }
}
