//! Admin pages: accounts (rotate, roll back, freeze), users (create with the enrolment shown
//! once, disable), publishing tools (create with the key shown once, revoke) and the loaded
//! policies in words. Each action checks the form's CSRF token, then calls one service method.

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::home::{age_days, rotation_due_days, token_expiring};
use super::i18n::{ROLES, role_name};
use super::layout::{page, when};
use super::{AppState, ConsoleForm, Fail, Lang, Me, OrFail, done, svg};
use crate::accounts::CredentialInput;
use crate::accounts::service::AccountView;
use crate::crypto::SecretString;
use crate::identity::users::NewUserInput;
use crate::store::types::{AccountStatus, Platform};

fn platform_name(l: Lang, p: Platform) -> &'static str {
    match p {
        Platform::Wechat => l.t("微信公众号", "WeChat official account"),
        Platform::Weibo => l.t("新浪微博", "Sina Weibo"),
        Platform::Generic => l.t("其他", "Other"),
    }
}

fn status_badge(l: Lang, a: &AccountView) -> Markup {
    html! {
        @match a.status {
            AccountStatus::Active => span.badge.ok { (l.t("正常", "active")) },
            AccountStatus::Frozen => span.badge.bad { (l.t("已冻结", "frozen")) },
        }
    }
}

pub async fn accounts(State(s): State<AppState>, me: Me) -> Result<Response, Fail> {
    let l = me.lang;
    let list = s.vault.accounts().list(&me.actor).await.or_fail(&me)?;
    let body = html! {
        table #accounts {
            thead { tr {
                th { (l.t("账号", "Account")) } th { (l.t("平台", "Platform")) } th { (l.t("状态", "Status")) }
                th { (l.t("凭据版本", "Credential version")) } th { (l.t("上次更换", "Last rotation")) }
                th { (l.t("在用签出", "Live checkouts")) }
            } }
            tbody { @for a in &list {
                @let age = age_days(&s, &a.rotated_at);
                tr {
                    td { a href=(format!("/console/admin/accounts/{}", a.id)) { (a.display_name) } br; span.small { (a.id) } }
                    td { (platform_name(l, a.platform)) }
                    td { (status_badge(l, a)) }
                    td { "v" (a.credential_version) }
                    @let due = age >= rotation_due_days(&s) || a.rotation_due_since.is_some();
                    td.warn[due] { (when(&a.rotated_at)) br; span.small { (age) (l.t(" 天前", " days ago")) }
                        @if a.rotation_due_since.is_some() { " " span.badge.bad { (l.t("紧急放行后须更换", "due after break-glass")) } }
                        @else if due { " " span.badge.bad { (l.t("应更换", "due")) } } }
                    td { (a.active_checkouts) }
                }
            } }
        }
    };
    Ok(page(
        &s,
        &me,
        l.t("账号与凭据", "Accounts and credentials"),
        body,
    ))
}

pub async fn account(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<String>,
) -> Result<Response, Fail> {
    let l = me.lang;
    let a = s.vault.accounts().get(&me.actor, &id).await.or_fail(&me)?;
    let versions = s
        .vault
        .accounts()
        .versions(&me.actor, &id)
        .await
        .or_fail(&me)?;
    me.actor.action("account.get", Some(&id));
    let base = format!("/console/admin/accounts/{}", a.id);
    let body = html! {
        section.card {
            dl.facts {
                dt { (l.t("账号编号", "Account id")) } dd #account-id { (a.id) }
                dt { (l.t("平台", "Platform")) } dd { (platform_name(l, a.platform)) }
                dt { (l.t("状态", "Status")) } dd #account-status { (status_badge(l, &a))
                    @if let Some(r) = &a.status_reason { " · " (r) } }
                dt { (l.t("当前凭据版本", "Current credential version")) } dd #account-version { "v" (a.credential_version) }
                dt { (l.t("上次更换", "Last rotation")) } dd { (when(&a.rotated_at)) " (" (age_days(&s, &a.rotated_at)) (l.t(" 天前", " days ago")) ")" }
                @if let Some(b) = &a.wechat_budget {
                    dt { (l.t("今日令牌额度", "Token budget today")) } dd #wechat-budget {
                        span.force-left { (l.t("强制刷新剩余 ", "force_refresh left: ")) b { (b.force_refreshes_left) } " / 20" }
                        @if b.force_refreshes_left == 0 { " " span.badge.bad { (l.t("已用完：应急预案无法再强制作废令牌", "spent: playbooks cannot force-cancel tokens")) } }
                        " · " (l.t("普通令牌获取剩余 ", "classic fetches left: ")) (b.classic_fetches_left) " / 2000"
                        br; span.small { (l.t("北京时间零点重置：", "resets at midnight Beijing time: ")) (when(&b.resets_at)) }
                    }
                }
                @if let Some(exp) = &a.token_expires_at {
                    dt { (l.t("平台令牌到期", "Platform token expires")) } dd #token-expires { (when(exp))
                        @if token_expiring(&s, Some(exp)) { " " span.badge.bad { (l.t("即将过期，请重新授权", "expiring soon: re-authorise")) } } }
                }
                @if let Some(since) = &a.rotation_due_since {
                    dt { (l.t("须更换凭据", "Rotation due")) } dd #rotation-due { span.badge.bad { (l.t("紧急放行后须更换", "due after break-glass")) } " " (l.t("自 ", "since ")) (when(since)) }
                }
                dt { (l.t("在用签出", "Live checkouts")) } dd { (a.active_checkouts) }
            }
        }
        section.card #rotate {
            h2 { (l.t("更换凭据", "Rotate the credential")) }
            p.small { (l.t(
                "新密钥只在此输入一次，保存后不会再显示。已签发的发布令牌继续有效，平台访问令牌会重新获取。",
                "The new secret is typed here once and never shown again. Publishing tokens stay valid; the platform access token is fetched anew."
            )) }
            form method="post" action=(format!("{base}/rotate")) autocomplete="off" {
                input type="hidden" name="csrf" value=(me.csrf);
                @match a.platform {
                    Platform::Wechat => {
                        label { "AppID" input #cred-app_id name="app_id" required; }
                        label { "AppSecret" input #cred-app_secret type="password" name="app_secret" required autocomplete="new-password"; }
                    }
                    Platform::Weibo => {
                        label { "App Key" input #cred-app_key name="app_key" required; }
                        label { "App Secret" input #cred-app_secret type="password" name="app_secret" required autocomplete="new-password"; }
                        label { "Access token" input #cred-access_token type="password" name="access_token" required autocomplete="new-password"; }
                    }
                    Platform::Generic => {
                        label { (l.t("用户名", "Username")) input #cred-username name="username" required; }
                        label { (l.t("密码", "Password")) input #cred-password type="password" name="password" required autocomplete="new-password"; }
                    }
                }
                label { (l.t("原因", "Reason")) input #rotate-reason name="reason" required maxlength="500"; }
                (me.totp_field(&s, "rotate-totp"))
                button #rotate-submit type="submit" { (l.t("更换凭据", "Rotate")) }
            }
        }
        section.card #versions {
            h2 { (l.t("版本历史", "Versions")) }
            table {
                thead { tr { th { (l.t("版本", "Version")) } th { (l.t("时间", "When")) } th { (l.t("操作人", "By")) }
                    th { (l.t("原因", "Reason")) } th { (l.t("回滚", "Roll back")) } } }
                tbody { @for v in &versions {
                    tr {
                        td { "v" (v.version) @if v.current { " " span.badge.ok { (l.t("当前", "current")) } } }
                        td { (when(&v.created_at)) } td { (v.created_by) } td { (v.reason) }
                        td { @if !v.current {
                            form.row method="post" action=(format!("{base}/rollback")) autocomplete="off" {
                                input type="hidden" name="csrf" value=(me.csrf);
                                input type="hidden" name="version" value=(v.version);
                                input name="reason" required placeholder=(l.t("原因", "Reason")) maxlength="500";
                                (me.totp_inline(&s))
                                button type="submit" { (l.t("回滚到此版本", "Roll back to this")) }
                            }
                        } }
                    }
                } }
            }
        }
        section.card #freeze {
            @let freezing = a.status == AccountStatus::Active;
            h2 { @if freezing { (l.t("冻结账号", "Freeze the account")) } @else { (l.t("解除冻结", "Unfreeze the account")) } }
            p.small { @if freezing { (l.t(
                "冻结后不能再签出，所有在用的发布令牌立即吊销。发现账号异常时使用。",
                "A frozen account cannot be checked out and every live publishing token is revoked at once. Use it when something is wrong."
            )) } @else { (l.t("解除冻结后可以再次签出。", "Once active again it can be checked out.")) } }
            form method="post" action=(format!("{base}/status")) autocomplete="off"
                data-confirm=(if freezing { l.t("确定冻结该账号并吊销所有令牌？", "Freeze this account and revoke every token?") } else { l.t("确定解除冻结？", "Make this account active again?") }) {
                input type="hidden" name="csrf" value=(me.csrf);
                input type="hidden" name="to" value=(if freezing { "frozen" } else { "active" });
                label { (l.t("原因", "Reason")) input #freeze-reason name="reason" required maxlength="500"; }
                (me.totp_field(&s, "freeze-totp"))
                button.danger[freezing] #freeze-submit type="submit" { @if freezing { (l.t("冻结", "Freeze")) } @else { (l.t("解除冻结", "Unfreeze")) } }
            }
        }
        @if a.platform == Platform::Weibo {
            section.card #weibo-reauthorize {
                h2 { (l.t("微博重新授权", "Re-authorise on Weibo")) }
                p.small { (l.t(
                    "微博令牌过期前，由管理员在微博授权页面重新授权，新令牌作为一次凭据更换保存。微博应用的授权回调页须设为本保管库的 /console/weibo/callback。",
                    "Before the Weibo token expires, an admin re-authorises the account on Weibo's page; the new token is stored as a credential rotation. The app's callback URL on open.weibo.com must be this vault's /console/weibo/callback."
                )) }
                form method="post" action=(format!("{base}/weibo/authorize")) {
                    input type="hidden" name="csrf" value=(me.csrf);
                    button #weibo-authorize type="submit" { (l.t("前往微博重新授权", "Re-authorise on Weibo")) }
                }
            }
        }
        @if let Some(b) = &a.wechat_budget {
            section.card #clear-quota {
                h2 { (l.t("重置接口调用次数", "Reset the API call quota")) }
                p.small { (l.t(
                    "接口当日调用次数用完（45009）时，可用 AppSecret 请微信清零（clear_quota）。每月最多 10 次，本月剩余：",
                    "When an API's daily quota is spent (45009), WeChat can reset the counts with the AppSecret (clear_quota), at most 10 times a month. Left this month: "
                )) b #quota-resets-left { (b.quota_resets_left) } " / 10" }
                form method="post" action=(format!("{base}/clear-quota")) autocomplete="off"
                    data-confirm=(l.t("确定请微信清零本账号的接口调用次数？（每月最多 10 次）", "Ask WeChat to reset this account's API call counts? (10 times a month at most)")) {
                    input type="hidden" name="csrf" value=(me.csrf);
                    (me.totp_field(&s, "clear-quota-totp"))
                    button #clear-quota-submit type="submit" disabled[b.quota_resets_left == 0] { (l.t("重置调用次数", "Reset the quota")) }
                }
            }
        }
    };
    Ok(page(&s, &me, &a.display_name, body))
}

#[derive(Deserialize)]
pub struct ClearQuotaForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    totp: String,
}

pub async fn clear_quota(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<String>,
    ConsoleForm(f): ConsoleForm<ClearQuotaForm>,
) -> Result<Response, Fail> {
    me.check_csrf(&s, &f.csrf)?;
    s.vault
        .accounts()
        .clear_quota(&me.actor, &id, Some(f.totp.trim()))
        .await
        .or_fail(&me)?;
    Ok(done(
        &format!("/console/admin/accounts/{id}"),
        "quota_cleared",
    ))
}

/// Form fields arrive as empty strings when left blank; blank means absent.
fn text(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

fn secret(v: Option<SecretString>) -> Option<SecretString> {
    v.filter(|s| !s.expose().is_empty())
}

#[derive(Deserialize)]
pub struct RotateForm {
    #[serde(default)]
    csrf: String,
    reason: String,
    #[serde(default)]
    totp: String,
    app_id: Option<String>,
    app_secret: Option<SecretString>,
    app_key: Option<String>,
    access_token: Option<SecretString>,
    username: Option<String>,
    password: Option<SecretString>,
}

pub async fn rotate(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<String>,
    ConsoleForm(f): ConsoleForm<RotateForm>,
) -> Result<Response, Fail> {
    me.check_csrf(&s, &f.csrf)?;
    let input = CredentialInput {
        app_id: text(f.app_id),
        app_secret: secret(f.app_secret),
        app_key: text(f.app_key),
        access_token: secret(f.access_token),
        username: text(f.username),
        password: secret(f.password),
        ..CredentialInput::default()
    };
    s.vault
        .accounts()
        .rotate(&me.actor, &id, input, &f.reason, Some(f.totp.trim()))
        .await
        .or_fail(&me)?;
    Ok(done(&format!("/console/admin/accounts/{id}"), "rotated"))
}

#[derive(Deserialize)]
pub struct RollbackForm {
    #[serde(default)]
    csrf: String,
    version: i64,
    reason: String,
    #[serde(default)]
    totp: String,
}

pub async fn rollback(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<String>,
    ConsoleForm(f): ConsoleForm<RollbackForm>,
) -> Result<Response, Fail> {
    me.check_csrf(&s, &f.csrf)?;
    s.vault
        .accounts()
        .rollback(&me.actor, &id, f.version, &f.reason, Some(f.totp.trim()))
        .await
        .or_fail(&me)?;
    Ok(done(
        &format!("/console/admin/accounts/{id}"),
        "rolled_back",
    ))
}

#[derive(Deserialize)]
pub struct StatusForm {
    #[serde(default)]
    csrf: String,
    to: String,
    reason: String,
    #[serde(default)]
    totp: String,
}

pub async fn set_status(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<String>,
    ConsoleForm(f): ConsoleForm<StatusForm>,
) -> Result<Response, Fail> {
    me.check_csrf(&s, &f.csrf)?;
    let frozen = f.to == "frozen";
    s.vault
        .accounts()
        .set_frozen(&me.actor, &id, frozen, &f.reason, Some(f.totp.trim()))
        .await
        .or_fail(&me)?;
    Ok(done(
        &format!("/console/admin/accounts/{id}"),
        if frozen { "frozen" } else { "unfrozen" },
    ))
}

pub async fn users(State(s): State<AppState>, me: Me) -> Result<Response, Fail> {
    let l = me.lang;
    let list = s.vault.people().list(&me.actor).await.or_fail(&me)?;
    let grants = s
        .vault
        .people()
        .pending_grants(&me.actor)
        .await
        .or_fail(&me)?;
    // The page's own entry reads as the user list it shows.
    me.actor.action("user.list", None);
    let body = html! {
        section.card #pending-grants {
            h2 { (l.t("等待第二位管理员确认的角色", "Roles waiting for a second admin")) span.count { (grants.len()) } }
            p.small { (l.t(
                "审核员、管理员角色须由提出授予的管理员以外的另一位管理员，用本人动态验证码确认后才生效。",
                "The approver and admin roles take effect once an admin other than the one who asked confirms them with their own TOTP code."
            )) }
            @if grants.is_empty() { p.ok #no-grants { (l.t("没有等待确认的角色。", "Nothing is waiting.")) } }
            @else {
                table { thead { tr { th { (l.t("用户", "User")) } th { (l.t("角色", "Role")) } th { (l.t("提出人", "Asked by")) }
                    th { (l.t("提出时间", "Asked")) } th {} } }
                    tbody { @for g in &grants {
                        tr id=(format!("grant-{}-{}", g.username, g.role)) {
                            td { (g.username) } td { span.badge { (role_name(l, &g.role)) } }
                            td { (g.requested_by) } td { (when(&crate::clock::rfc3339_unix(g.requested_at))) }
                            td { @if g.requested_by == me.person.username {
                                span.small.waiting { (l.t("由您提出：须另一位管理员确认", "You asked: another admin must confirm")) }
                            } @else if g.username == me.person.username {
                                span.small.waiting { (l.t("授予您本人的角色：须另一位管理员确认", "A role for you: another admin must confirm")) }
                            } @else {
                                form.row method="post" action=(format!("/console/admin/users/{}/confirm", g.username)) autocomplete="off" {
                                    input type="hidden" name="csrf" value=(me.csrf);
                                    input type="hidden" name="role" value=(g.role);
                                    (me.totp_inline(&s))
                                    button.confirm-grant type="submit" { (l.t("确认授予", "Confirm")) }
                                }
                            } }
                        }
                    } }
                }
            }
        }
        table #users {
            thead { tr { th { (l.t("用户名", "Username")) } th { (l.t("姓名", "Name")) } th { (l.t("角色", "Roles")) }
                th { (l.t("状态", "Status")) } th {} } }
            tbody { @for u in &list {
                tr {
                    td { (u.username) } td { (u.display_name) }
                    td { @for r in &u.roles { span.badge { (role_name(l, r)) } " " }
                         @for r in &u.pending_roles { span.badge.warn title=(l.t("等待第二位管理员确认", "waiting for a second admin")) { (role_name(l, r)) (l.t("（待确认）", " (pending)")) } " " } }
                    td { @if u.disabled { span.badge.bad { (l.t("已停用", "disabled")) } }
                         @else if let Some(t) = &u.locked_until { span.badge.warn { (l.t("锁定至 ", "locked until ")) (when(t)) } }
                         @else { span.badge.ok { (l.t("正常", "active")) } } }
                    td { @if !u.disabled && u.username != me.person.username {
                        form.inline method="post" action=(format!("/console/admin/users/{}/disable", u.username))
                            data-confirm=(l.t("确定停用该用户？其会话和签出将立即结束。", "Disable this user? Their sessions and checkouts end at once.")) {
                            input type="hidden" name="csrf" value=(me.csrf);
                            button.danger type="submit" { (l.t("停用", "Disable")) }
                        }
                    } }
                }
            } }
        }
        section.card #create-user {
            h2 { (l.t("新建用户", "New user")) }
            form method="post" action="/console/admin/users" autocomplete="off" {
                input type="hidden" name="csrf" value=(me.csrf);
                label { (l.t("用户名（小写字母、数字）", "Username (lower-case letters, digits)")) input #new-username name="username" required; }
                label { (l.t("姓名", "Display name")) input #new-display name="display_name" required; }
                label { (l.t("处室（可选，发布存证中记载）", "Department (optional; named in the evidence of each post)"))
                    input #new-department name="department" maxlength="64"; }
                fieldset { legend { (l.t("角色", "Roles")) }
                    @for (k, zh, en) in ROLES {
                        label.check { input type="checkbox" name=(format!("role_{k}")) value="1"; (l.t(zh, en)) }
                    }
                    p.small { (l.t("管理员、安全审计员不能兼任其他角色；审核员可同时是发布员。", "An admin or an auditor holds no other role; an approver may also publish.")) }
                }
                label { (l.t("初始密码（至少 10 位）", "Initial password (10 characters or more)"))
                    input #new-password type="password" name="password" required autocomplete="new-password"; }
                p.small { (l.t("审核员、管理员角色须由另一位管理员确认后生效。", "The approver and admin roles take effect once another admin confirms them.")) }
                (me.totp_field(&s, "create-user-totp"))
                button #create-user-submit type="submit" { (l.t("创建并显示动态验证码二维码", "Create and show the TOTP enrolment")) }
            }
        }
        section.card #import-users {
            h2 { (l.t("批量导入人员", "Add many people at once")) }
            p.small { (l.t(
                "粘贴名单（CSV，首行为表头 username,display_name,department,roles；多个角色用分号分隔）。一次验证即可全部创建，每人生成初始密码，登记信息只显示一次。",
                "Paste a roster (CSV with the header username,display_name,department,roles; several roles separated by semicolons). One code creates them all; each person gets an initial password; each enrolment is shown once."
            )) }
            form method="post" action="/console/admin/users/import" autocomplete="off" {
                input type="hidden" name="csrf" value=(me.csrf);
                label { (l.t("名单", "Roster"))
                    textarea #import-roster name="roster" rows="8" required spellcheck="false"
                        placeholder="username,display_name,department,roles\nzhangsan,张三,宣传处,publisher\nlisi,李四,办公室,approver" {} }
                (me.totp_field(&s, "import-totp"))
                button #import-submit type="submit" { (l.t("导入并显示登记信息", "Add them and show the enrolments")) }
            }
        }
    };
    Ok(page(&s, &me, l.t("用户", "Users"), body))
}

#[derive(Deserialize)]
pub struct UserForm {
    #[serde(default)]
    csrf: String,
    username: String,
    display_name: String,
    password: SecretString,
    #[serde(default)]
    department: String,
    role_admin: Option<String>,
    role_publisher: Option<String>,
    role_approver: Option<String>,
    role_auditor: Option<String>,
    #[serde(default)]
    totp: String,
}

pub async fn create_user(
    State(s): State<AppState>,
    me: Me,
    ConsoleForm(f): ConsoleForm<UserForm>,
) -> Result<Response, Fail> {
    me.check_csrf(&s, &f.csrf)?;
    let l = me.lang;
    let roles: Vec<String> = [
        ("admin", &f.role_admin),
        ("publisher", &f.role_publisher),
        ("approver", &f.role_approver),
        ("auditor", &f.role_auditor),
    ]
    .iter()
    .filter(|(_, on)| on.is_some())
    .map(|(r, _)| (*r).to_owned())
    .collect();
    let e = s
        .vault
        .people()
        .create_in(
            &me.actor,
            NewUserInput {
                username: f.username,
                display_name: f.display_name,
                roles,
                password: f.password,
            },
            Some(f.department).filter(|d| !d.trim().is_empty()),
            Some(f.totp.trim()),
        )
        .await
        .or_fail(&me)?;
    let qr = svg::qr(e.totp_uri.expose());
    let body = html! {
        section.card.once #enrolment {
            p.notice { (l.t("用户已创建。", "The user was created.")) " " b { (e.user.username) } }
            @if !e.user.pending_roles.is_empty() {
                p.warn #pending-roles { (l.t("以下角色须由另一位管理员确认后才生效：", "These roles take effect once another admin confirms them: "))
                    @for r in &e.user.pending_roles { span.badge.warn { (role_name(l, r)) } " " } }
            }
            p { (l.t(
                "请让该用户现在用手机上的验证器应用（支持 TOTP 的任一应用）扫描下方二维码。此二维码只显示这一次，离开本页后无法再次查看。",
                "Have the user scan this code now with an authenticator app. It is shown only this once; it cannot be shown again after you leave this page."
            )) }
            div.qr { (qr) }
            details { summary { (l.t("无法扫码时手动输入密钥", "Enter the key by hand if scanning fails")) }
                code #totp-secret { (e.totp_secret.expose()) } }
            p { a.button href="/console/admin/users" { (l.t("已完成，返回用户列表", "Done, back to users")) } }
        }
    };
    Ok(page(&s, &me, l.t("动态验证码登记", "TOTP enrolment"), body))
}

#[derive(Deserialize)]
pub struct ImportForm {
    #[serde(default)]
    csrf: String,
    roster: String,
    #[serde(default)]
    totp: String,
}

/// A roster pasted as CSV: every person created with one step-up; each enrolment (QR code, key,
/// initial password) on one page, shown once.
pub async fn import_users(
    State(s): State<AppState>,
    me: Me,
    ConsoleForm(f): ConsoleForm<ImportForm>,
) -> Result<Response, Fail> {
    me.check_csrf(&s, &f.csrf)?;
    let l = me.lang;
    let roster = crate::identity::roster::parse_csv(&f.roster).or_fail(&me)?;
    let made = s
        .vault
        .people()
        .import(&me.actor, roster, Some(f.totp.trim()))
        .await
        .or_fail(&me)?;
    let body = html! {
        section.card.once #enrolments {
            p.notice { (l.t("已导入 ", "Added ")) b #imported-count { (made.len()) } (l.t(" 人。", " people.")) }
            p { (l.t(
                "请逐一当面交付：本人用验证器应用扫描二维码，并领取初始密码。本页只显示这一次，离开后无法再次查看。",
                "Hand each over in person: the person scans their code with an authenticator app and takes their initial password. This page is shown only this once."
            )) }
            @for m in &made {
                @let e = &m.enrolment;
                div.enrolment data-username=(e.user.username) {
                    h3 { (e.user.display_name) " (" (e.user.username) ")" }
                    p { @for r in &e.user.roles { span.badge { (role_name(l, r)) } " " }
                        @for r in &e.user.pending_roles { span.badge.warn { (role_name(l, r)) (l.t("（待确认）", " (pending)")) } " " }
                        @if let Some(d) = &e.user.department { span.small { (d) } } }
                    p { (l.t("初始密码：", "Initial password: ")) code.password { (m.password.expose()) } }
                    div.qr { (svg::qr(e.totp_uri.expose())) }
                    details { summary { (l.t("无法扫码时手动输入密钥", "Enter the key by hand if scanning fails")) }
                        code { (e.totp_secret.expose()) } }
                }
            }
            p { a.button href="/console/admin/users" { (l.t("已完成，返回用户列表", "Done, back to users")) } }
        }
    };
    Ok(page(
        &s,
        &me,
        l.t("批量导入：登记信息", "Roster added: enrolments"),
        body,
    ))
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    csrf: String,
    role: String,
    #[serde(default)]
    totp: String,
}

/// A second admin confirms a pending grant; the service refuses the admin who asked for it.
pub async fn confirm_role(
    State(s): State<AppState>,
    me: Me,
    Path(name): Path<String>,
    ConsoleForm(f): ConsoleForm<ConfirmForm>,
) -> Result<Response, Fail> {
    me.check_csrf(&s, &f.csrf)?;
    s.vault
        .people()
        .confirm_role(&me.actor, &name, &f.role, Some(f.totp.trim()))
        .await
        .or_fail(&me)?;
    Ok(done("/console/admin/users", "role_confirmed"))
}

pub async fn disable_user(
    State(s): State<AppState>,
    me: Me,
    Path(name): Path<String>,
    ConsoleForm(f): ConsoleForm<super::auth::CsrfOnly>,
) -> Result<Response, Fail> {
    me.check_csrf(&s, &f.csrf)?;
    s.vault
        .people()
        .disable(&me.actor, &name)
        .await
        .or_fail(&me)?;
    Ok(done("/console/admin/users", "disabled"))
}

pub async fn clients(State(s): State<AppState>, me: Me) -> Result<Response, Fail> {
    let l = me.lang;
    let list = s.vault.clients().list(&me.actor).await.or_fail(&me)?;
    let accounts = s.vault.accounts().list(&me.actor).await.or_fail(&me)?;
    me.actor.action("client.list", None);
    let body = html! {
        table #clients {
            thead { tr { th { (l.t("名称", "Name")) } th { (l.t("编号", "Id")) } th { (l.t("可用账号", "Accounts")) }
                th { (l.t("创建", "Created")) } th { (l.t("客户端证书", "Client certificate")) } th { (l.t("状态", "Status")) } th {} } }
            tbody { @for c in &list {
                tr {
                    td { (c.name) } td { code { (c.client_id) } } td { (c.accounts.join(", ")) }
                    td { (when(&c.created_at)) " · " (c.created_by) }
                    td.client-cert { @if let Some(cert) = &c.certificate {
                        (cert.subject) br; code title=(cert.sha256) { "SHA-256 " (cert.sha256.get(..16).unwrap_or_default()) "…" }
                    } @else { (l.t("未绑定（仅凭密钥）", "none (key alone)")) } }
                    td { @if c.revoked { span.badge.bad { (l.t("已吊销", "revoked")) } } @else { span.badge.ok { (l.t("有效", "live")) } } }
                    td { @if !c.revoked {
                        form.inline method="post" action=(format!("/console/admin/clients/{}/revoke", c.client_id))
                            data-confirm=(l.t("确定吊销该工具的密钥？其所有签出将立即结束。", "Revoke this tool's key? All its checkouts end at once.")) {
                            input type="hidden" name="csrf" value=(me.csrf);
                            button.danger type="submit" { (l.t("吊销", "Revoke")) }
                        }
                    } }
                }
            } }
        }
        section.card #create-client {
            h2 { (l.t("登记发布工具", "Register a publishing tool")) }
            form method="post" action="/console/admin/clients" autocomplete="off" {
                input type="hidden" name="csrf" value=(me.csrf);
                label { (l.t("名称", "Name")) input #client-name name="name" required maxlength="64"; }
                fieldset { legend { (l.t("可使用的账号", "Accounts it may use")) }
                    @for a in &accounts {
                        label.check { input type="checkbox" name="account" value=(a.id); (a.display_name) " (" (a.id) ")" }
                    }
                }
                label { (l.t("客户端证书（可选，PEM；绑定后该工具只能通过此证书的双向 TLS 连接使用）",
                    "Client certificate (optional, PEM; once bound, the tool works only over mutual TLS with this certificate)"))
                    textarea #client-cert name="certificate" rows="4" placeholder="-----BEGIN CERTIFICATE-----" {} }
                (me.totp_field(&s, "create-client-totp"))
                button #create-client-submit type="submit" { (l.t("创建并显示密钥", "Create and show the key")) }
            }
        }
    };
    Ok(page(&s, &me, l.t("发布工具", "Publishing tools"), body))
}

pub async fn create_client(
    State(s): State<AppState>,
    me: Me,
    ConsoleForm(pairs): ConsoleForm<Vec<(String, String)>>,
) -> Result<Response, Fail> {
    let l = me.lang;
    let field = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    me.check_csrf(&s, field("csrf"))?;
    let accounts: Vec<String> = pairs
        .iter()
        .filter(|(n, _)| n == "account")
        .map(|(_, v)| v.clone())
        .collect();
    let (view, key) = s
        .vault
        .clients()
        .create(
            &me.actor,
            field("name"),
            &accounts,
            Some(field("totp").trim()),
            Some(field("certificate")).filter(|c| !c.trim().is_empty()),
        )
        .await
        .or_fail(&me)?;
    let body = html! {
        section.card.once #client-key-card {
            p.notice { (l.t("发布工具已登记：", "The tool is registered: ")) b { (view.name) } " (" code { (view.client_id) } ")" }
            p { (l.t(
                "请立即把下面的密钥配置到发布工具中。密钥只显示这一次，保管库只保存其摘要，无法再次查看。",
                "Put this key into the tool's configuration now. It is shown only this once; the vault keeps only a keyed hash of it."
            )) }
            p { code #client-key { (key.expose()) } " " button type="button" data-copy="client-key" { (l.t("复制", "Copy")) } }
            p { a.button href="/console/admin/clients" { (l.t("已完成，返回列表", "Done, back to the list")) } }
        }
    };
    Ok(page(
        &s,
        &me,
        l.t("发布工具密钥", "Publishing tool key"),
        body,
    ))
}

pub async fn revoke_client(
    State(s): State<AppState>,
    me: Me,
    Path(id): Path<String>,
    ConsoleForm(f): ConsoleForm<super::auth::CsrfOnly>,
) -> Result<Response, Fail> {
    me.check_csrf(&s, &f.csrf)?;
    s.vault
        .clients()
        .revoke(&me.actor, &id)
        .await
        .or_fail(&me)?;
    Ok(done("/console/admin/clients", "revoked"))
}

fn yes_no(l: Lang, b: bool) -> &'static str {
    if b {
        l.t("允许", "allowed")
    } else {
        l.t("不允许", "not allowed")
    }
}

pub async fn policies(State(s): State<AppState>, me: Me) -> Result<Response, Fail> {
    use crate::policy::Level;
    let l = me.lang;
    let set = s.vault.accounts().policies(&me.actor).or_fail(&me)?;
    let body = html! {
        p.small { (l.t(
            "以下是当前加载的访问策略（只读）。修改请编辑服务器上的 policies/*.toml 文件后重新加载。",
            "These are the loaded access policies (read-only). To change one, edit policies/*.toml on the server and reload."
        )) }
        @if set.is_empty() { p.warn { (l.t("没有加载任何策略：所有账号都不能签出。", "No policy is loaded: no account can be checked out.")) } }
        @for p in set.iter() {
            @let (users, roles, clients) = p.who();
            section.card.policy {
                h2 { (p.account()) }
                ul {
                    li { (l.t("谁可以签出：", "Who may check out: "))
                        @if !roles.is_empty() { (l.t("角色 ", "people with the role ")) (roles.iter().map(|r| role_name(l, r)).collect::<Vec<_>>().join(l.t("、", ", "))) }
                        @if !roles.is_empty() && !users.is_empty() { (l.t("，以及 ", ", and ")) }
                        @if !users.is_empty() { (l.t("用户 ", "the users ")) (users.join(l.t("、", ", "))) }
                        @if roles.is_empty() && users.is_empty() { (l.t("没有人", "nobody")) }
                        (l.t("；通过发布工具 ", "; through the tools ")) (if clients.is_empty() { l.t("（无）", "(none)").to_owned() } else { clients.join(l.t("、", ", ")) })
                    }
                    @for (level, zh, en) in [(Level::General, "一般信息", "General items"), (Level::Major, "重大信息", "Major items")] {
                        li { (l.t(zh, en)) (l.t("：", ": "))
                            @match p.level(level) {
                                Ok(rule) => {
                                    @if rule.approvals == 0 { (l.t("无需在保管库审批，立即签发令牌", "no approval in the vault; a token is issued at once")) }
                                    @else { (l.t("需要 ", "needs ")) (rule.approvals) (l.t(" 位审批人（不能是申请人本人）批准", " approver(s), never the requester")) }
                                    @if rule.require_content_binding { (l.t("；只能发布经审批的内容", "; only the approved content can be published")) }
                                }
                                Err(_) => { (l.t("不能申请", "cannot be requested")) }
                            }
                        }
                    }
                    li { (l.t("允许时段：", "Allowed hours: ")) (p.hours_text().unwrap_or_else(|| l.t("任何时间", "any time").to_owned())) }
                    @let nets = p.networks();
                    li { (l.t("允许的来源网络：", "Allowed networks: "))
                        @if nets.iter().any(|n| n == "0.0.0.0/0") && nets.iter().any(|n| n == "::/0") { (l.t("任何地址", "any address")) }
                        @else if nets.is_empty() { (l.t("无（不能签出）", "none (no checkout possible)")) }
                        @else { (nets.join(", ")) } }
                    li { (l.t("令牌有效期：默认 ", "Token lifetime: default ")) (p.default_ttl().as_secs() / 60) (l.t(" 分钟，最长 ", " min, at most ")) (p.max_ttl().as_secs() / 60) (l.t(" 分钟", " min")) }
                    li { @if p.exclusive() { (l.t("同一时间只允许一个签出", "one checkout at a time")) } @else { (l.t("允许多个签出同时进行", "several checkouts may run at once")) } }
                    li { (l.t("允许的平台接口：", "Allowed platform calls: ")) code { (p.allowed_calls().join(" · ")) } }
                    li { (l.t("交出平台访问令牌：", "Handing out the platform token: ")) (yes_no(l, p.allow_platform_token()))
                        (l.t("；显示凭据：", "; revealing the credential: ")) (yes_no(l, p.allow_reveal())) }
                }
            }
        }
    };
    Ok(page(&s, &me, l.t("访问策略", "Access policies"), body))
}
