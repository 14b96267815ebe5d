//! Who may call which RPC of SignalService and ReferralService. Deny by default; a test fails
//! when an RPC has no entry.
//!
//! Jurisdiction on top of this table: the signalling index is national (any organisation that
//! may signal may signal any child, and sees its own signals and the matches it is in);
//! referrals and statistics are limited to the municipalities in the caller's token.

use zvv_platform::{
    auth::{OrgType, Role},
    policy::{Grant, Policy, Rule},
};

/// Organisation types whose professionals may signal. Not PRISON and not HOUSING: neither takes
/// part in the youth signalling index (Jeugdwet §7.1 names youth-related professionals).
pub const SIGNALLING_ORG_TYPES: &[OrgType] = &[
    OrgType::School,
    OrgType::YouthCare,
    OrgType::YouthHealth,
    OrgType::VeiligThuis,
    OrgType::NeighbourhoodTeam,
    OrgType::Police,
    OrgType::Probation,
    OrgType::CareProvider,
    OrgType::Municipality,
    OrgType::GeneralPractice,
    OrgType::DebtCounselling,
];

const SIGNALLERS: Grant = Grant {
    roles: &[Role::Professional, Role::Coordinator],
    org_types: Some(SIGNALLING_ORG_TYPES),
};

const ANALYSTS: Grant = Grant {
    roles: &[Role::Analyst],
    org_types: Some(&[OrgType::Municipality]),
};

const REFERRERS: Grant = Grant {
    roles: &[Role::Professional, Role::Coordinator],
    org_types: Some(&[OrgType::Police]),
};

/// Triage desks work for a municipality: the municipality itself, Veilig Thuis and the
/// neighbourhood teams. Each sees only the referrals routed to its jurisdiction.
const TRIAGE: Grant = Grant {
    roles: &[Role::TriageOfficer],
    org_types: Some(&[
        OrgType::Municipality,
        OrgType::VeiligThuis,
        OrgType::NeighbourhoodTeam,
    ]),
};

const BASIS_SIGNAL: &str = "Jeugdwet art. 7.1.2.1-7.1.4.3: registration in the signalling index";
const BASIS_MATCH: &str = "Jeugdwet art. 7.1.3.1: informing the professionals in a match";
const BASIS_STATS: &str = "AVG art. 89: aggregated statistics with small cells suppressed";
const BASIS_REFERRAL: &str =
    "Jeugdwet art. 7.4.0; Wmo 2015 art. 5.2.6: triage of referrals about young children";

pub static SIGNAL_SERVICE: Policy = Policy {
    service: "zvv.signalling.v1.SignalService",
    rules: &[
        Rule {
            method: "RegisterSignal",
            grants: &[SIGNALLERS],
            legal_basis: BASIS_SIGNAL,
        },
        Rule {
            method: "CloseSignal",
            grants: &[SIGNALLERS],
            legal_basis: BASIS_SIGNAL,
        },
        Rule {
            method: "GetSignal",
            grants: &[SIGNALLERS],
            legal_basis: BASIS_SIGNAL,
        },
        Rule {
            method: "ListSignals",
            grants: &[SIGNALLERS],
            legal_basis: BASIS_SIGNAL,
        },
        Rule {
            method: "RecordInformationDuty",
            grants: &[SIGNALLERS],
            legal_basis: BASIS_SIGNAL,
        },
        Rule {
            method: "ListMatches",
            grants: &[SIGNALLERS],
            legal_basis: BASIS_MATCH,
        },
        Rule {
            method: "GetMatch",
            grants: &[SIGNALLERS],
            legal_basis: BASIS_MATCH,
        },
        Rule {
            method: "AssignCoordinator",
            grants: &[SIGNALLERS],
            legal_basis: BASIS_MATCH,
        },
        Rule {
            method: "MarkCoordinated",
            grants: &[SIGNALLERS],
            legal_basis: BASIS_MATCH,
        },
        Rule {
            method: "GetSignalStatistics",
            grants: &[ANALYSTS],
            legal_basis: BASIS_STATS,
        },
    ],
};

pub static REFERRAL_SERVICE: Policy = Policy {
    service: "zvv.signalling.v1.ReferralService",
    rules: &[
        Rule {
            method: "SubmitReferral",
            grants: &[REFERRERS, Grant::SERVICE],
            legal_basis: BASIS_REFERRAL,
        },
        Rule {
            method: "ListReferrals",
            grants: &[TRIAGE],
            legal_basis: BASIS_REFERRAL,
        },
        Rule {
            method: "DecideReferral",
            grants: &[TRIAGE],
            legal_basis: BASIS_REFERRAL,
        },
    ],
};

pub static POLICIES: &[Policy] = &[
    Policy {
        service: SIGNAL_SERVICE.service,
        rules: SIGNAL_SERVICE.rules,
    },
    Policy {
        service: REFERRAL_SERVICE.service,
        rules: REFERRAL_SERVICE.rules,
    },
    // deliveries of intake's events (a death, a changed family): suite services only
    Policy {
        service: zvv_platform::sink::POLICY.service,
        rules: zvv_platform::sink::POLICY.rules,
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
