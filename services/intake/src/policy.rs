//! Who may call which RPC of SubjectService. Deny by default; the tests fail when an RPC of the
//! service has no entry here.
//!
//! On top of this table, every RPC about a subject is limited to the caller's jurisdiction
//! (enforced in the logic and the queries): the subject's current municipality must be in the
//! token's `municipalities`; suite SERVICE tokens are not limited.

use zvv_platform::{
    auth::{OrgType, Role},
    policy::{Grant, Policy, Rule},
};

const REGISTRARS: Grant = Grant {
    roles: &[Role::Professional, Role::Coordinator],
    org_types: Some(&[OrgType::Municipality, OrgType::NeighbourhoodTeam]),
};

/// Family relations are recorded and corrected by coordinators only.
const COORDINATORS: Grant = Grant {
    roles: &[Role::Coordinator],
    org_types: Some(&[OrgType::Municipality, OrgType::NeighbourhoodTeam]),
};

const BASIS_REGISTER: &str = "AVG art. 6(1)(e); Jeugdwet art. 7.1.1.1: identification of persons in the care for safety approach";
const BASIS_RESOLVE: &str =
    "AVG art. 6(1)(e); Wabb art. 10: pseudonymisation of the BSN for suite services";
const BASIS_READ: &str = "AVG art. 6(1)(e); Jeugdwet art. 7.4.0: assessing the family situation";

pub static SUBJECT_SERVICE: Policy = Policy {
    service: "zvv.intake.v1.SubjectService",
    rules: &[
        Rule {
            method: "RegisterSubject",
            grants: &[REGISTRARS],
            legal_basis: BASIS_REGISTER,
        },
        Rule {
            method: "UpdateSubject",
            grants: &[REGISTRARS, Grant::SERVICE],
            legal_basis: BASIS_REGISTER,
        },
        Rule {
            method: "LinkRelation",
            grants: &[COORDINATORS],
            legal_basis: BASIS_REGISTER,
        },
        Rule {
            method: "UnlinkRelation",
            grants: &[COORDINATORS],
            legal_basis: BASIS_REGISTER,
        },
        Rule {
            method: "ResolveSubject",
            grants: &[Grant::SERVICE],
            legal_basis: BASIS_RESOLVE,
        },
        Rule {
            method: "GetSubjectContext",
            grants: &[Grant::SERVICE],
            legal_basis: BASIS_READ,
        },
        Rule {
            method: "GetSubject",
            grants: &[REGISTRARS, Grant::SERVICE],
            legal_basis: BASIS_READ,
        },
        Rule {
            method: "ListRelations",
            grants: &[REGISTRARS, Grant::SERVICE],
            legal_basis: BASIS_READ,
        },
        Rule {
            method: "ListFamily",
            grants: &[REGISTRARS, Grant::SERVICE],
            legal_basis: BASIS_READ,
        },
    ],
};

pub static POLICIES: &[Policy] = &[Policy {
    service: SUBJECT_SERVICE.service,
    rules: SUBJECT_SERVICE.rules,
}];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_has_a_policy_entry() {
        for policy in POLICIES {
            let problems = policy
                .uncovered_methods(zvv_proto::FILE_DESCRIPTOR_SET)
                .expect("service in descriptor set");
            assert!(problems.is_empty(), "{problems:?}");
        }
    }
}
