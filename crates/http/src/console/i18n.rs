//! The console's two languages: Chinese (zh-CN) by default, English on request. Each text is
//! written at its place of use in both languages (`lang.t("中文", "English")`), so a page reads
//! top to bottom and no key can go missing.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::{LANG_COOKIE, cookie};
use crate::error::{Error, TotpRefusal};
use crate::store::types::CheckoutStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    pub fn t(self, zh: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    pub fn html_lang(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    fn parse(s: &str) -> Option<Lang> {
        match s {
            "zh" | "zh-CN" | "zh-cn" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// `?lang=` first, then the cookie, then Chinese.
    pub fn of(headers: &HeaderMap, query: Option<&str>) -> Lang {
        query_lang(query)
            .or_else(|| cookie(headers, LANG_COOKIE).and_then(Lang::parse))
            .unwrap_or_default()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang::of(&parts.headers, parts.uri.query()))
    }
}

pub fn query_lang(query: Option<&str>) -> Option<Lang> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "lang")
        .and_then(|(_, v)| Lang::parse(v))
}

/// Percent-encodes everything but unreserved characters and `/`.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What went wrong and what to do next, by error.
pub fn error_text(l: Lang, e: &Error) -> (&'static str, &'static str) {
    match e {
        Error::Invalid { .. } => (
            l.t("输入有误，操作未执行", "Some input is not valid; nothing was changed"),
            l.t(
                "请返回上一页，按下方说明修改后重新提交。",
                "Go back, correct the input as described below and submit again.",
            ),
        ),
        Error::Unauthenticated => (
            l.t("请先登录", "Please sign in"),
            l.t("您的会话已结束，请重新登录。", "Your session has ended; sign in again."),
        ),
        // Tools, not people, hold client keys; the console never meets this, but says it plainly.
        Error::ClientCertificate(_) => (
            l.t("缺少绑定的客户端证书", "The bound client certificate is missing"),
            l.t(
                "该发布工具已绑定客户端证书，请使用该证书建立连接。",
                "This publishing tool is bound to a client certificate; connect with that certificate.",
            ),
        ),
        Error::TotpInvalid(TotpRefusal::Replayed) => (
            l.t("该动态验证码已使用过，操作未执行", "That TOTP code was already used; nothing was changed"),
            l.t(
                "每个验证码只能使用一次。请等待验证器显示下一个验证码（最多 30 秒），返回上一页后重试。",
                "Each code works once. Wait for the next code in your authenticator app (at most 30 seconds), go back and try again.",
            ),
        ),
        Error::TotpInvalid(TotpRefusal::Wrong) => (
            l.t("动态验证码不正确，操作未执行", "The TOTP code is wrong; nothing was changed"),
            l.t(
                "请核对验证器中本人账户的当前验证码，返回上一页后重试。多次错误会锁定账户。",
                "Check the current code for your own account in your authenticator app, go back and try again. Repeated failures lock the account.",
            ),
        ),
        Error::NotPermitted(_) => (
            l.t("无权访问", "Not permitted"),
            l.t(
                "您的角色不能查看此页面或执行此操作，本次访问已记入审计日志。如确需权限，请联系系统管理员。",
                "Your role does not allow this page or action; this attempt was recorded in the audit log. Ask an administrator if you need access.",
            ),
        ),
        Error::SelfApproval => (
            l.t("不能审批自己的申请", "You cannot approve your own request"),
            l.t(
                "按照先审后发的规定，申请须由另一位领导审批。请联系其他审批人。",
                "Review before publishing requires another leader to sign. Ask another approver.",
            ),
        ),
        Error::ContentNotApproved => (
            l.t("内容未经审批", "The content was not approved"),
            l.t("请重新提交审批。", "Submit the content for approval again."),
        ),
        Error::NotFound(_) => (
            l.t("未找到", "Not found"),
            l.t(
                "该页面或对象不存在，可能已被删除。请返回首页重新选择。",
                "This page or item does not exist or was removed. Go back to the home page and choose again.",
            ),
        ),
        Error::Conflict { .. } => (
            l.t("与当前状态冲突，操作未执行", "This conflicts with the current state; nothing was changed"),
            l.t(
                "其他人可能刚刚处理过。请返回并刷新页面查看最新状态。",
                "Someone may have just acted on it. Go back and reload the page to see the current state.",
            ),
        ),
        Error::UserLocked { .. } => (
            l.t("账户已被临时锁定", "The account is locked for now"),
            l.t(
                "多次验证失败后账户会被暂时锁定。请在锁定结束后重试，或请管理员协助。",
                "After repeated failures the account is locked for a while. Try again when the lock ends, or ask an administrator.",
            ),
        ),
        Error::AccountFrozen(_) => (
            l.t("该账号已冻结", "The account is frozen"),
            l.t(
                "冻结期间不能签出。如应解除冻结，请联系管理员。",
                "No checkout while it is frozen. Ask an administrator if it should be unfrozen.",
            ),
        ),
        Error::RateLimited { .. } => (
            l.t("请求过于频繁", "Too many requests"),
            l.t("请稍等片刻后重试。", "Wait a moment and try again."),
        ),
        Error::PublishingBudget { .. } => (
            l.t("本账号的发布额度已用完", "This account's publishing budget is spent"),
            l.t(
                "访问策略限定了每小时或每天的发布条数（低于平台限额，以免平台封禁应用）。请在额度恢复后再发布。",
                "Its policy caps posts per hour or per day (under the platform's limit, so the platform does not block the app). Publish again once the budget allows.",
            ),
        ),
        Error::Platform { .. } => (
            l.t("平台返回错误", "The platform answered with an error"),
            l.t(
                "请稍后重试；如持续出现，请检查平台侧的设置。",
                "Try again later; if it persists, check the settings on the platform's side.",
            ),
        ),
        Error::Unavailable(_) | Error::AuditUnavailable | Error::Internal(_) => (
            l.t("系统暂时无法完成请求，操作未执行", "The vault could not complete the request; nothing was changed"),
            l.t(
                "请稍后重试。如持续出现，请将下方的请求编号告知运维人员。",
                "Try again shortly. If it persists, give the request id below to the operators.",
            ),
        ),
    }
}
/// A checkout's status as the console names it.
pub(super) fn checkout_status(l: Lang, s: CheckoutStatus) -> &'static str {
    match s {
        CheckoutStatus::PendingApproval => l.t("待审批", "waiting for approval"),
        CheckoutStatus::Approved => l.t("已批准，待领取令牌", "approved, token to be claimed"),
        CheckoutStatus::Denied => l.t("已驳回", "denied"),
        CheckoutStatus::Active => l.t("令牌有效", "token live"),
        CheckoutStatus::CheckedIn => l.t("已归还", "checked in"),
        CheckoutStatus::Expired => l.t("已过期", "expired"),
        CheckoutStatus::Revoked => l.t("已撤销", "revoked"),
    }
}

/// An approver's decision as the console names it.
pub(super) fn decision(l: Lang, d: &str) -> &'static str {
    match d {
        "approve" => l.t("批准", "approved"),
        "deny" => l.t("驳回", "denied"),
        _ => l.t("（未知）", "(unknown)"),
    }
}

/// The roles as the console names them, in both languages.
pub(super) const ROLES: [(&str, &str, &str); 4] = [
    ("admin", "管理员", "admin"),
    ("publisher", "发布人员", "publisher"),
    ("approver", "审批领导", "approver"),
    ("auditor", "安全审计员", "auditor"),
];

/// A role's name in the reader's language (the role's own name if unknown).
pub(super) fn role_name(l: Lang, r: &str) -> &str {
    ROLES
        .iter()
        .find(|(k, _, _)| *k == r)
        .map(|(_, zh, en)| l.t(zh, en))
        .unwrap_or(r)
}
