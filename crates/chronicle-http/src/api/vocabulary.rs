//! The domain's closed vocabularies as OpenAPI string enums, so a client (the dashboard's
//! generated types) knows every spelling the server may send.

use chronicle_domain::accounts::{AuthenticationEventKind, LoginFailure};
use chronicle_domain::alerts::lifecycle::{AlertKind, AlertStatus, Resolution};
use chronicle_domain::alerts::{RuleId, Severity};
use chronicle_domain::sharing::{Access, AccessAction, DataCategory, Purpose, Role};
use chronicle_domain::trends::PanelFlag;
use std::borrow::Cow;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// Declares `$schema` as the OpenAPI schema named `$name`: a string, one of `$domain::ALL`.
macro_rules! vocabulary_schema {
    ($(#[$doc:meta])* $schema:ident, $domain:ty, $name:literal) => {
        $(#[$doc])*
        pub(crate) struct $schema;

        impl utoipa::PartialSchema for $schema {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(<$domain>::ALL.iter().map(|v| v.as_str())))
                    .into()
            }
        }

        impl utoipa::ToSchema for $schema {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

vocabulary_schema!(
    /// A glucose unit, in UCUM spelling.
    GlucoseUnitName,
    chronicle_domain::GlucoseUnit,
    "GlucoseUnit"
);
vocabulary_schema!(
    /// What kind of treatment a record is.
    TreatmentKindName,
    chronicle_domain::TreatmentKind,
    "TreatmentKind"
);
vocabulary_schema!(
    /// What an access-log entry records as attempted.
    AccessActionName,
    AccessAction,
    "AccessAction"
);
vocabulary_schema!(
    /// A kind of patient data a grant can cover.
    DataCategoryName,
    DataCategory,
    "DataCategory"
);
vocabulary_schema!(
    /// What a grant lets the grantee do with the data.
    AccessName,
    Access,
    "Access"
);
vocabulary_schema!(
    /// Why data is shared.
    PurposeName,
    Purpose,
    "Purpose"
);
vocabulary_schema!(
    /// What a user is in Chronicle (a role alone never grants access to a patient's data).
    RoleName,
    Role,
    "Role"
);
vocabulary_schema!(
    /// Why the panel flags a patient.
    PanelFlagName,
    PanelFlag,
    "PanelFlag"
);
vocabulary_schema!(
    /// An alert rule.
    RuleIdName,
    RuleId,
    "RuleId"
);
vocabulary_schema!(
    /// How urgently the care team should look.
    SeverityName,
    Severity,
    "Severity"
);
vocabulary_schema!(
    /// A live alert or a historical record of late data.
    AlertKindName,
    AlertKind,
    "AlertKind"
);
vocabulary_schema!(
    /// Where an alert is in its life.
    AlertStatusName,
    AlertStatus,
    "AlertStatus"
);
vocabulary_schema!(
    /// How a resolved alert was resolved.
    ResolutionName,
    Resolution,
    "Resolution"
);
vocabulary_schema!(
    /// What an authentication event records.
    AuthenticationEventKindName,
    AuthenticationEventKind,
    "AuthenticationEventKind"
);
vocabulary_schema!(
    /// Why a log-in or password change was refused.
    LoginFailureName,
    LoginFailure,
    "LoginFailure"
);

vocabulary_schema!(
    /// Whether a care team's invitation can still be accepted.
    InvitationStateName,
    chronicle_storage::invitations::InvitationState,
    "InvitationState"
);
vocabulary_schema!(
    /// Why a notification was queued: the alarm, a later escalation step, or a reminder.
    DeliveryReasonName,
    chronicle_domain::alerts::escalation::DeliveryReason,
    "DeliveryReason"
);
