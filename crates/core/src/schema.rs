//! OpenAPI schemas for the store's enums that the views carry (`AccountView::status`, ...). The
//! enums are the store's, which knows nothing of OpenAPI, so a view names one of these with
//! `#[schema(schema_with = ...)]`. Each lists every variant (an exhaustive `match` refuses to
//! compile when one is added) as the string serde writes for it, so the document says exactly
//! what the API sends.

use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};

use crate::store::types::{
    AccountStatus, CheckoutStatus, IncidentStatus, Level, Platform, PostStatus, StepStatus,
};

/// A string schema whose values are what serde writes for `all`.
fn strings<T: Serialize>(all: &[T], description: &str) -> RefOr<Schema> {
    let values = all
        .iter()
        .filter_map(|v| serde_json::to_value(v).ok())
        .collect::<Vec<_>>();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .description(Some(description))
        .into()
}

pub fn account_status() -> RefOr<Schema> {
    use AccountStatus::*;
    let _every = |s: AccountStatus| match s {
        Active | Frozen => (),
    };
    strings(
        &[Active, Frozen],
        "`frozen`: checkouts are refused (423) and every token was revoked",
    )
}

pub fn checkout_status() -> RefOr<Schema> {
    use CheckoutStatus::*;
    let _every = |s: CheckoutStatus| match s {
        PendingApproval | Approved | Denied | Active | CheckedIn | Expired | Revoked => (),
    };
    strings(&CheckoutStatus::ALL, "where the checkout stands")
}

pub fn post_status() -> RefOr<Schema> {
    use PostStatus::*;
    let _every = |s: PostStatus| match s {
        Sending | Submitted | Published | Failed | Deleted | Blocked | Hidden => (),
    };
    strings(
        &[
            Sending, Submitted, Published, Failed, Deleted, Blocked, Hidden,
        ],
        "where the evidence record stands",
    )
}

pub fn platform() -> RefOr<Schema> {
    use Platform::*;
    let _every = |s: Platform| match s {
        Wechat | Weibo | Generic => (),
    };
    strings(&[Wechat, Weibo, Generic], "the account's platform")
}

pub fn level() -> RefOr<Schema> {
    use Level::*;
    let _every = |s: Level| match s {
        General | Major => (),
    };
    strings(&[General, Major], "the review tier")
}

pub fn incident_status() -> RefOr<Schema> {
    use IncidentStatus::*;
    let _every = |s: IncidentStatus| match s {
        Open | Closed => (),
    };
    strings(&[Open, Closed], "`closed` once two different people signed")
}

pub fn step_status() -> RefOr<Schema> {
    use StepStatus::*;
    let _every = |s: StepStatus| match s {
        Pending | Done | Failed | Skipped => (),
    };
    strings(&[Pending, Done, Failed, Skipped], "where the step stands")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schemas_list_what_serde_writes() {
        let values = |s: RefOr<Schema>| {
            serde_json::to_value(s).unwrap()["enum"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(values(account_status()), ["active", "frozen"]);
        assert_eq!(
            values(checkout_status()),
            [
                "pending_approval",
                "approved",
                "denied",
                "active",
                "checked_in",
                "expired",
                "revoked"
            ]
        );
        assert_eq!(values(platform()), ["wechat", "weibo", "generic"]);
        assert_eq!(values(level()), ["general", "major"]);
        assert_eq!(
            values(step_status()),
            ["pending", "done", "failed", "skipped"]
        );
    }
}
