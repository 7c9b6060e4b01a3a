//! The shapes of the publishing calls, both ways: reading what a tool sends (multipart uploads,
//! WeChat draft JSON, Weibo forms) so the publishing service can compare it with the approved
//! post, and building the same calls when the vault publishes an approved post itself.
//! Knows nothing of checkouts: plain data in, plain data out.

use reqwest::Url;
use serde::Serialize;

/// One part of a `multipart/form-data` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: &'a [u8],
}

/// The boundary of a `multipart/form-data` content type.
pub fn multipart_boundary(content_type: &str) -> Option<&str> {
    let mut it = content_type.split(';');
    if !it
        .next()?
        .trim()
        .eq_ignore_ascii_case("multipart/form-data")
    {
        return None;
    }
    it.filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"'))
        .filter(|b| !b.is_empty() && b.len() <= 70)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Splits a `multipart/form-data` body into its parts; None if it is not well formed (anything
/// that cannot be read exactly is refused rather than guessed at).
pub fn multipart_parts<'a>(content_type: &str, body: &'a [u8]) -> Option<Vec<Part<'a>>> {
    let boundary = multipart_boundary(content_type)?;
    let delim = format!("--{boundary}");
    let next_delim = format!("\r\n--{boundary}");
    if !body.starts_with(delim.as_bytes()) {
        return None;
    }
    let mut at = delim.len();
    let mut parts = Vec::new();
    loop {
        let rest = body.get(at..at + 2)?;
        if rest == b"--" {
            return Some(parts);
        }
        if rest != b"\r\n" {
            return None;
        }
        at += 2;
        let head_end = find(body, b"\r\n\r\n", at)?;
        let head = std::str::from_utf8(&body[at..head_end]).ok()?;
        let data_start = head_end + 4;
        let data_end = find(body, next_delim.as_bytes(), data_start)?;
        let (mut name, mut filename, mut ctype) = (None, None, None);
        for line in head.split("\r\n") {
            let (k, v) = line.split_once(':')?;
            if k.trim().eq_ignore_ascii_case("content-disposition") {
                let mut fields = v.split(';');
                if !fields.next()?.trim().eq_ignore_ascii_case("form-data") {
                    return None;
                }
                for f in fields {
                    let (fk, fv) = f.trim().split_once('=')?;
                    let fv = fv.trim().trim_matches('"').to_owned();
                    match fk.trim() {
                        "name" => name = Some(fv),
                        "filename" => filename = Some(fv),
                        _ => {}
                    }
                }
            } else if k.trim().eq_ignore_ascii_case("content-type") {
                ctype = Some(v.trim().to_owned());
            }
        }
        parts.push(Part {
            name: name?,
            filename,
            content_type: ctype,
            data: &body[data_start..data_end],
        });
        at = data_end + next_delim.len();
    }
}

/// A `multipart/form-data` body with one file part, and its content type.
pub fn multipart_file(
    field: &str,
    filename: &str,
    content_type: &str,
    data: &[u8],
) -> (String, Vec<u8>) {
    // A boundary that cannot occur in the data: hex of the data's own digest plus a marker.
    let digest = mediavault_base::crypto::sha256_hex(data);
    let boundary = format!("mediavault-{}", &digest[..32]);
    let mut body = Vec::with_capacity(data.len() + 256);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// One WeChat article, as `draft/add` takes it.
#[derive(Debug, Clone, Serialize)]
pub struct WechatArticle<'a> {
    pub title: &'a str,
    pub author: &'a str,
    pub digest: &'a str,
    pub content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumb_media_id: Option<&'a str>,
    pub need_open_comment: u8,
    pub only_fans_can_comment: u8,
}

/// The `draft/add` body for one article.
pub fn wechat_draft(article: &WechatArticle<'_>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "articles": [article] })).unwrap_or_default()
}

/// Decodes an `application/x-www-form-urlencoded` body, dropping any `access_token`.
pub fn form_pairs(body: &[u8]) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(body).ok()?;
    Some(super::pairs_without_token(text))
}

/// The `statuses/share.json` form for a text status.
pub fn weibo_share_form(text: &str) -> String {
    let Ok(mut scratch) = Url::parse("http://form.invalid/") else {
        return String::new();
    };
    scratch.query_pairs_mut().append_pair("status", text);
    scratch.query().unwrap_or("").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_round_trip() {
        let (ct, body) = multipart_file("media", "a.png", "image/png", b"\x89PNG\r\n--x\r\n");
        let parts = multipart_parts(&ct, &body).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].name, "media");
        assert_eq!(parts[0].filename.as_deref(), Some("a.png"));
        assert_eq!(parts[0].data, b"\x89PNG\r\n--x\r\n");
        assert!(multipart_parts("application/json", &body).is_none());
        assert!(multipart_parts(&ct, &body[..body.len() - 4]).is_none());
    }

    #[test]
    fn weibo_form_round_trip() {
        let form = weibo_share_form("政务 & 公开 100%");
        let pairs = form_pairs(form.as_bytes()).unwrap();
        assert_eq!(pairs, vec![("status".into(), "政务 & 公开 100%".into())]);
    }
}
