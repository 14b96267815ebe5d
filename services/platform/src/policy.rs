//! Authorization: one table per gRPC service that maps every RPC to who may call it and on what
//! legal basis. Deny by default: an RPC without an entry cannot be called, and
//! [`Policy::uncovered_methods`] lets each service's tests fail when one is missing.

use prost::Message;
use zvv_proto::prost_types::FileDescriptorSet;

use crate::auth::{OrgType, Principal, Role};

/// Callers with any of `roles`, from an organisation of one of `org_types` (any type if `None`).
#[derive(Debug, Clone, Copy)]
pub struct Grant {
    pub roles: &'static [Role],
    pub org_types: Option<&'static [OrgType]>,
}

impl Grant {
    /// Suite services calling with their SERVICE token.
    pub const SERVICE: Grant = Grant {
        roles: &[Role::Service],
        org_types: Some(&[OrgType::Suite]),
    };

    fn allows(&self, who: &Principal) -> bool {
        self.roles.iter().any(|r| who.has_role(*r))
            && self
                .org_types
                .is_none_or(|types| types.contains(&who.org_type))
    }
}

/// Who may call one RPC.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The method name, e.g. `RegisterSubject`.
    pub method: &'static str,
    pub grants: &'static [Grant],
    /// Recorded in every audit record of this RPC.
    pub legal_basis: &'static str,
}

/// The table of one gRPC service.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// The full service name, e.g. `zvv.intake.v1.SubjectService`.
    pub service: &'static str,
    pub rules: &'static [Rule],
}

impl Policy {
    pub fn rule(&self, method: &str) -> Option<&'static Rule> {
        self.rules.iter().find(|r| r.method == method)
    }

    /// The RPCs of this service in the descriptor set that have no entry, and entries that name
    /// no RPC: both must be empty.
    pub fn uncovered_methods(&self, descriptor_set: &[u8]) -> Result<Vec<String>, String> {
        let fds = FileDescriptorSet::decode(descriptor_set).map_err(|e| e.to_string())?;
        let mut methods = Vec::new();
        let mut found = false;
        for file in &fds.file {
            for svc in &file.service {
                let full = format!("{}.{}", file.package(), svc.name());
                if full == self.service {
                    found = true;
                    methods.extend(svc.method.iter().map(|m| m.name().to_owned()));
                }
            }
        }
        if !found {
            return Err(format!(
                "service {} is not in the descriptor set",
                self.service
            ));
        }
        let mut problems: Vec<String> = methods
            .iter()
            .filter(|m| self.rule(m).is_none())
            .map(|m| format!("{m} has no policy entry"))
            .collect();
        problems.extend(
            self.rules
                .iter()
                .filter(|r| !methods.iter().any(|m| m == r.method))
                .map(|r| format!("{} is not an RPC of {}", r.method, self.service)),
        );
        Ok(problems)
    }
}

/// A set of policies, one per gRPC service a server hosts.
#[derive(Debug, Clone, Copy)]
pub struct PolicySet(pub &'static [Policy]);

/// The outcome of looking up a request path.
#[derive(Debug)]
pub enum Decision {
    Allowed(&'static Rule),
    /// No rule for this path (deny by default).
    Unknown,
    Denied(&'static Rule),
}

impl PolicySet {
    /// Looks up `/package.Service/Method` and checks the caller against it.
    pub fn decide(&self, path: &str, who: &Principal) -> Decision {
        let Some((service, method)) = split_path(path) else {
            return Decision::Unknown;
        };
        let Some(rule) = self
            .0
            .iter()
            .find(|p| p.service == service)
            .and_then(|p| p.rule(method))
        else {
            return Decision::Unknown;
        };
        if rule.grants.iter().any(|g| g.allows(who)) {
            Decision::Allowed(rule)
        } else {
            Decision::Denied(rule)
        }
    }

    /// True when the path belongs to one of the services in this set.
    pub fn covers(&self, path: &str) -> bool {
        split_path(path).is_some_and(|(service, _)| self.0.iter().any(|p| p.service == service))
    }
}

/// `/pkg.Svc/Method` → (`pkg.Svc`, `Method`).
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix('/')?.split_once('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    static RULES: &[Rule] = &[
        Rule {
            method: "Read",
            grants: &[
                Grant {
                    roles: &[Role::Professional],
                    org_types: Some(&[OrgType::Municipality]),
                },
                Grant::SERVICE,
            ],
            legal_basis: "test",
        },
        Rule {
            method: "Admin",
            grants: &[Grant {
                roles: &[Role::Analyst],
                org_types: None,
            }],
            legal_basis: "test",
        },
    ];
    static POLICIES: &[Policy] = &[Policy {
        service: "zvv.test.v1.TestService",
        rules: RULES,
    }];

    fn who(org_type: OrgType, roles: &[Role]) -> Principal {
        Principal {
            sub: "s".into(),
            org: "o".into(),
            org_type,
            roles: roles.to_vec(),
            municipalities: Vec::new(),
        }
    }

    #[test]
    fn deny_by_default_and_grants() {
        let set = PolicySet(POLICIES);
        let muni = who(OrgType::Municipality, &[Role::Professional]);
        let school = who(OrgType::School, &[Role::Professional]);
        let svc = who(OrgType::Suite, &[Role::Service]);
        let fake_svc = who(OrgType::School, &[Role::Service]);
        assert!(matches!(
            set.decide("/zvv.test.v1.TestService/Read", &muni),
            Decision::Allowed(_)
        ));
        assert!(matches!(
            set.decide("/zvv.test.v1.TestService/Read", &svc),
            Decision::Allowed(_)
        ));
        assert!(matches!(
            set.decide("/zvv.test.v1.TestService/Read", &school),
            Decision::Denied(_)
        ));
        assert!(matches!(
            set.decide("/zvv.test.v1.TestService/Read", &fake_svc),
            Decision::Denied(_)
        ));
        assert!(matches!(
            set.decide("/zvv.test.v1.TestService/Nope", &muni),
            Decision::Unknown
        ));
        assert!(matches!(
            set.decide("/other.Svc/Read", &muni),
            Decision::Unknown
        ));
        assert!(matches!(set.decide("garbage", &muni), Decision::Unknown));
        assert!(matches!(
            set.decide(
                "/zvv.test.v1.TestService/Admin",
                &who(OrgType::School, &[Role::Analyst])
            ),
            Decision::Allowed(_)
        ));
    }
}
