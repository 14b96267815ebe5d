//! Who may call which RPC of DetentionService and ContinuityService. Deny by default; a test
//! fails when an RPC has no entry.
//!
//! Jurisdiction on top of this table (in the logic and the store): the responsible
//! municipality's professionals see and steer the whole plan of its episodes; a partner sees an
//! episode only while its organisation holds a task in it, and of the plan only the conditions
//! of its tasks; statistics are limited to the municipalities in the caller's token.

use zvv_platform::{
    auth::{OrgType, Role},
    policy::{Grant, Policy, Rule},
};

/// The prison's case managers record events by hand (the feed of the prison system uses a
/// SERVICE token).
const PRISON: Grant = Grant {
    roles: &[Role::Professional, Role::Coordinator],
    org_types: Some(&[OrgType::Prison]),
};

/// Partners that may hold a task, and the municipality itself.
const PARTNERS: Grant = Grant {
    roles: &[Role::Professional, Role::Coordinator],
    org_types: Some(crate::domain::PARTNER_ORG_TYPES),
};

/// The responsible municipality's professionals and coordinators.
const MUNICIPALITY: Grant = Grant {
    roles: &[Role::Professional, Role::Coordinator],
    org_types: Some(&[OrgType::Municipality]),
};

const ANALYSTS: Grant = Grant {
    roles: &[Role::Analyst],
    org_types: Some(&[OrgType::Municipality]),
};

const BASIS_DETENTION: &str = "Penitentiaire beginselenwet art. 18a; Besluit Justitiële \
    gegevens: detention data sent to the municipality for re-integration";
const BASIS_PLAN: &str = "Participatiewet art. 7 and 13; Wmo 2015 art. 2.3.1: continuity of \
    the basic conditions around detention (Convenant Re-integratie)";
const BASIS_STATS: &str = "AVG art. 89: aggregated statistics with small numbers suppressed";

pub static DETENTION_SERVICE: Policy = Policy {
    service: "zvv.reintegration.v1.DetentionService",
    rules: &[
        Rule {
            method: "RecordDetentionEvent",
            grants: &[PRISON, Grant::SERVICE],
            legal_basis: BASIS_DETENTION,
        },
        Rule {
            method: "GetDetention",
            grants: &[PARTNERS],
            legal_basis: BASIS_DETENTION,
        },
        Rule {
            method: "ListDetentions",
            grants: &[PARTNERS],
            legal_basis: BASIS_DETENTION,
        },
    ],
};

pub static CONTINUITY_SERVICE: Policy = Policy {
    service: "zvv.reintegration.v1.ContinuityService",
    rules: &[
        Rule {
            method: "GetPlan",
            grants: &[PARTNERS],
            legal_basis: BASIS_PLAN,
        },
        Rule {
            method: "UpdateCondition",
            grants: &[MUNICIPALITY],
            legal_basis: BASIS_PLAN,
        },
        Rule {
            method: "AssignTask",
            grants: &[MUNICIPALITY],
            legal_basis: BASIS_PLAN,
        },
        Rule {
            method: "CompleteTask",
            grants: &[PARTNERS],
            legal_basis: BASIS_PLAN,
        },
        Rule {
            method: "ListTasks",
            grants: &[PARTNERS],
            legal_basis: BASIS_PLAN,
        },
        Rule {
            method: "GetReleaseReadiness",
            grants: &[MUNICIPALITY],
            legal_basis: BASIS_PLAN,
        },
        Rule {
            method: "ReplanDetention",
            grants: &[MUNICIPALITY],
            legal_basis: BASIS_PLAN,
        },
        Rule {
            method: "GetReintegrationStatistics",
            grants: &[ANALYSTS],
            legal_basis: BASIS_STATS,
        },
    ],
};

pub static POLICIES: &[Policy] = &[
    Policy {
        service: DETENTION_SERVICE.service,
        rules: DETENTION_SERVICE.rules,
    },
    Policy {
        service: CONTINUITY_SERVICE.service,
        rules: CONTINUITY_SERVICE.rules,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_has_a_policy_entry() {
        for policy in POLICIES {
            let problems = policy
                .uncovered_methods(zvv_proto::FILE_DESCRIPTOR_SET)
                .expect("service in descriptor set");
            assert!(problems.is_empty(), "{}: {problems:?}", policy.service);
        }
    }
}
