//! What a platform error means for the office, and the step to take: the vault's explanation that
//! travels beside the platform's own answer (a response header in English, the audit entry and the
//! console in both languages). Only codes whose step the vault can name are explained; any other
//! code passes through with its number alone.

use crate::accounts::Platform;

/// The vault's explanation of one platform error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformHint {
    /// A stable name for the case, for tools and tests (`wechat.ip_not_allowed`).
    pub key: &'static str,
    /// English, ASCII only (it travels in a response header).
    pub en: String,
    /// Chinese, for the console.
    pub zh: String,
}

fn hint(key: &'static str, en: impl Into<String>, zh: impl Into<String>) -> Option<PlatformHint> {
    Some(PlatformHint {
        key,
        en: en.into(),
        zh: zh.into(),
    })
}

/// The address in WeChat's 40164 message (`invalid ip 1.2.3.4 ipv6 ::ffff:1.2.3.4, not in
/// whitelist rid: …`): the one WeChat saw, which is the one to allow.
fn seen_address(errmsg: &str) -> Option<&str> {
    let rest = errmsg.split("invalid ip ").nth(1)?;
    let ip = rest.split([' ', ',']).next()?;
    // Only an address, never anything else the message might hold.
    ip.parse::<std::net::IpAddr>().ok().map(|_| ip)
}

/// The explanation of `code` from `platform`, if the vault has one.
pub fn explain(platform: Platform, code: i64, errmsg: &str) -> Option<PlatformHint> {
    match (platform, code) {
        (Platform::Wechat, 40164) => {
            let ip = seen_address(errmsg).unwrap_or("the vault's address");
            hint(
                "wechat.ip_not_allowed",
                format!(
                    "WeChat refused the call from {ip}: it is not on the account's IP allow-list. An administrator of the official account adds {ip} under mp.weixin.qq.com > Settings and Development > Basic Configuration > IP whitelist, then the call can be retried."
                ),
                format!(
                    "微信拒绝了来自 {ip} 的调用：该地址不在公众号的 IP 白名单中。请公众号管理员登录 mp.weixin.qq.com，在“设置与开发 → 基本配置 → IP白名单”中加入 {ip}，然后重试。"
                ),
            )
        }
        (Platform::Wechat, 40243) => hint(
            "wechat.appsecret_frozen",
            "The AppSecret is frozen in the WeChat console, so WeChat issues no token. An administrator of the official account unfreezes it at mp.weixin.qq.com > Settings and Development > Basic Configuration; if it may have leaked, reset it there and rotate the new one into the vault.",
            "该公众号的 AppSecret 已在微信公众平台被冻结，微信不再签发令牌。请公众号管理员登录 mp.weixin.qq.com，在“设置与开发 → 基本配置”中解冻；如怀疑泄露，请在公众平台重置后在本保管库中更换凭据。",
        ),
        (Platform::Wechat, 40001 | 42001) => hint(
            "wechat.token_rejected",
            format!(
                "WeChat rejected the vault's access token from the stable_token pool ({code}) even after the vault renewed it once. If the AppSecret was just reset in the WeChat console, rotate the new one into the vault; if not, something else is fetching tokens with this AppSecret (a force_refresh stable token or a new classic token cancels the one before it): treat it as a possible leak."
            ),
            format!(
                "微信拒绝了保管库从 stable_token 令牌池取得的 access_token（{code}），保管库已重新获取一次仍被拒绝。如刚在公众平台重置了 AppSecret，请在本保管库中更换为新凭据；如没有，说明有他方在用此 AppSecret 获取令牌（强制刷新的 stable_token 或新的普通 access_token 会使前一个失效），请按疑似泄露处置。"
            ),
        ),
        (Platform::Wechat, 45009) => hint(
            "wechat.daily_quota_spent",
            "This API's daily call quota for the account is spent (45009). It resets at midnight Beijing time; an administrator of the official account can also reset it in the WeChat console (at most 10 resets a month).",
            "该接口今日的调用次数已用完（45009），北京时间零点重置；公众号管理员也可在微信公众平台清零（每月最多 10 次）。",
        ),
        (Platform::Wechat, 48001) => hint(
            "wechat.api_unauthorized",
            "This official account has no permission for this API (48001): check its interface permissions in the WeChat console (the account type and verification decide them).",
            "该公众号没有此接口的权限（48001）：请在微信公众平台“接口权限”中查看（由账号类型和认证情况决定）。",
        ),
        (Platform::Wechat, 40007) => hint(
            "wechat.invalid_media_id",
            "WeChat does not know this media_id for the account (40007): upload the image (material/add_material) with this checkout first and use the media_id it returns, e.g. as thumb_media_id.",
            "微信不认识此 media_id（40007）：请先用本次签出上传图片（material/add_material），再使用返回的 media_id（例如作为 thumb_media_id）。",
        ),
        (Platform::Weibo, 21327 | 21315 | 21332) => hint(
            "weibo.token_expired",
            format!(
                "Weibo no longer accepts the account's access token ({code}): an administrator re-authorises the account and the new token is stored in the vault as a rotation."
            ),
            format!(
                "微博不再接受该账号的 access_token（{code}）：请管理员重新授权该账号，并在本保管库中以更换凭据的方式存入新令牌。"
            ),
        ),
        (Platform::Weibo, 10022..=10024) => hint(
            "weibo.rate_limited",
            format!(
                "Weibo's rate limit for this app or user is reached ({code}): wait for the next hour before posting again, and keep the account's max_posts_per_hour below Weibo's limit."
            ),
            format!(
                "已达到微博对该应用或用户的频次限制（{code}）：请到下一个小时再发布，并将该账号策略中的 max_posts_per_hour 设在微博的限额以下。"
            ),
        ),
        (Platform::Weibo, 20019) => hint(
            "weibo.repeated_content",
            "Weibo refused the status as a repeat of a recent one (20019): change the text before posting again.",
            "微博认为该内容与近期发布的重复（20019）：请修改文字后再发布。",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ip_wechat_saw_is_named_and_nothing_else_from_the_message() {
        let h = explain(
            Platform::Wechat,
            40164,
            "invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist rid: 1-2-3",
        )
        .unwrap();
        assert!(h.en.contains("203.0.113.7") && h.zh.contains("203.0.113.7"));
        assert!(h.zh.contains("IP白名单"));
        let h = explain(Platform::Wechat, 40164, "invalid ip <script> x").unwrap();
        assert!(!h.en.contains("<script>") && h.en.contains("the vault's address"));
    }

    #[test]
    fn every_english_hint_fits_a_header_and_unknown_codes_have_none() {
        for (p, c) in [
            (Platform::Wechat, 40164),
            (Platform::Wechat, 40243),
            (Platform::Wechat, 40001),
            (Platform::Wechat, 42001),
            (Platform::Wechat, 45009),
            (Platform::Wechat, 48001),
            (Platform::Wechat, 40007),
            (Platform::Weibo, 21327),
            (Platform::Weibo, 10023),
            (Platform::Weibo, 20019),
        ] {
            let h = explain(p, c, "").unwrap();
            assert!(h.en.bytes().all(|b| (0x20..0x7f).contains(&b)), "{}", h.en);
            assert!(!h.zh.is_empty());
        }
        assert_eq!(explain(Platform::Wechat, 99999, ""), None);
        assert_eq!(explain(Platform::Weibo, 40164, ""), None);
    }
}
