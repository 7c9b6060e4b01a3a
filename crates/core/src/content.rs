//! The post a checkout carries for review, in a platform-neutral form: title, author, digest
//! (summary), body (the WeChat article's HTML), text (the Weibo status), images (the cover and
//! the inline images, uploaded with the request), and the accounts it goes to.
//!
//! Inline images are referenced from the body as `src="cid:NAME"`; when the image is uploaded to
//! WeChat the vault learns its URL, and a draft's HTML matches the approved body once each URL
//! this checkout uploaded is put back as `cid:NAME`.
//!
//! It is sealed as one JSON document (AAD: `checkout_content`, the checkout id, `content`); the
//! digest of that canonical JSON names the approved post in every evidence record.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::crypto::{Aad, Keyring};
use crate::error::{Error, Result};

/// Most images one post may carry.
const MAX_IMAGES: usize = 20;
/// Largest decoded image (the request body limit usually bites first).
const MAX_IMAGE_BYTES: usize = 2 * 1024 * 1024;
/// WeChat's limit on article HTML is 20,000 characters and under 1 MB.
const MAX_BODY_CHARS: usize = 20_000;
/// Weibo's limit on a status.
const MAX_TEXT_CHARS: usize = 2_000;

/// What a tool sends with the checkout request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentInput {
    pub title: String,
    pub author: Option<String>,
    pub digest: Option<String>,
    pub body: Option<String>,
    pub text: Option<String>,
    #[serde(default)]
    pub images: Vec<ImageInput>,
    /// Every account the post goes to; the checkout's own account when absent.
    pub targets: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageInput {
    pub name: String,
    pub role: ImageRole,
    pub content_type: Option<String>,
    pub data_base64: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageRole {
    Cover,
    Inline,
}

/// The approved post, as sealed. Field order is the canonical order of its digest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Post {
    pub title: String,
    pub author: String,
    pub digest: String,
    pub body: Option<String>,
    pub text: Option<String>,
    pub images: Vec<Image>,
    pub targets: Vec<String>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Image {
    pub name: String,
    pub role: ImageRole,
    pub content_type: String,
    pub sha256: String,
    /// Base64 in the sealed JSON.
    #[serde(with = "b64")]
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image")
            .field("name", &self.name)
            .field("sha256", &self.sha256)
            .field("bytes", &self.data.len())
            .finish()
    }
}

mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

/// What an approver (and an auditor) is shown: every word, and each image by name, role, size
/// and digest. JSON strings are data: nothing here is rendered as HTML by the vault.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ContentView {
    pub sha256: String,
    pub title: String,
    pub author: String,
    pub digest: String,
    pub body: Option<String>,
    pub text: Option<String>,
    pub images: Vec<ImageView>,
    pub targets: Vec<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImageView {
    pub name: String,
    pub role: ImageRole,
    pub content_type: String,
    pub sha256: String,
    pub bytes: usize,
}

fn text_field(field: &str, v: Option<&str>, max: usize, required: bool) -> Result<String> {
    let v = v.map(str::trim).unwrap_or("");
    if required && v.is_empty() {
        return Err(Error::invalid(
            field,
            format!("content.{field} must not be empty"),
        ));
    }
    if v.chars().count() > max || v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(Error::invalid(
            field,
            format!("content.{field} must be at most {max} characters, without control characters"),
        ));
    }
    Ok(v.to_owned())
}

fn image_name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl ContentInput {
    /// Checks the post and puts it into its canonical form. `account` is the checkout's own
    /// account, always among the targets.
    pub fn check(self, account: &str) -> Result<Post> {
        let title = text_field("title", Some(&self.title), 64, true)?;
        let author = text_field("author", self.author.as_deref(), 16, false)?;
        let digest = text_field("digest", self.digest.as_deref(), 120, false)?;
        let body = match self.body {
            None => None,
            Some(b) if b.trim().is_empty() => None,
            Some(b) if b.chars().count() > MAX_BODY_CHARS => {
                return Err(Error::invalid(
                    "body",
                    format!("content.body must be at most {MAX_BODY_CHARS} characters"),
                ));
            }
            // The body is HTML: kept byte for byte, because the draft must match it exactly.
            Some(b) => Some(b),
        };
        let text = match self.text {
            None => None,
            Some(t) if t.trim().is_empty() => None,
            Some(t) => Some(text_field("text", Some(&t), MAX_TEXT_CHARS, true)?),
        };
        if body.is_none() && text.is_none() {
            return Err(Error::invalid(
                "content",
                "content needs a body (WeChat article) or a text (Weibo status)",
            ));
        }
        if self.images.len() > MAX_IMAGES {
            return Err(Error::invalid(
                "images",
                format!("at most {MAX_IMAGES} images"),
            ));
        }
        let mut images: Vec<Image> = Vec::with_capacity(self.images.len());
        for i in self.images {
            if !image_name_ok(&i.name) || images.iter().any(|o| o.name == i.name) {
                return Err(Error::invalid(
                    "images",
                    "each image needs a unique name of letters, digits, `.`, `_` or `-` (1-64)",
                ));
            }
            let data = STANDARD.decode(i.data_base64.trim()).map_err(|_| {
                Error::invalid("images", format!("image {} is not valid base64", i.name))
            })?;
            if data.is_empty() || data.len() > MAX_IMAGE_BYTES {
                return Err(Error::invalid(
                    "images",
                    format!("image {} must be 1 byte to {MAX_IMAGE_BYTES} bytes", i.name),
                ));
            }
            let content_type = i.content_type.unwrap_or_else(|| "image/jpeg".into());
            if !content_type.starts_with("image/")
                || content_type.len() > 64
                || content_type.chars().any(|c| c.is_control() || c == '"')
            {
                return Err(Error::invalid(
                    "images",
                    format!("image {}: content_type must be image/…", i.name),
                ));
            }
            images.push(Image {
                sha256: crate::crypto::sha256_hex(&data),
                name: i.name,
                role: i.role,
                content_type,
                data,
            });
        }
        if images.iter().filter(|i| i.role == ImageRole::Cover).count() > 1 {
            return Err(Error::invalid("images", "at most one cover image"));
        }
        let mut targets = self.targets.unwrap_or_default();
        if !targets.iter().any(|t| t == account) {
            targets.insert(0, account.to_owned());
        }
        let mut seen = Vec::new();
        for t in &targets {
            if seen.contains(&t) {
                return Err(Error::invalid("targets", "targets must not repeat"));
            }
            seen.push(t);
        }
        if targets.len() > 8 {
            return Err(Error::invalid("targets", "at most 8 target accounts"));
        }
        Ok(Post {
            title,
            author,
            digest,
            body,
            text,
            images,
            targets,
        })
    }
}

/// Where a checkout's sealed post belongs.
pub(crate) fn aad(checkout: &str) -> Aad<'_> {
    Aad {
        table: "checkout_content",
        row: checkout,
        field: "content",
        version: 1,
    }
}

impl Post {
    /// The canonical JSON and its digest.
    pub fn canonical(&self) -> Result<(Vec<u8>, String)> {
        let json = serde_json::to_vec(self).map_err(Error::internal)?;
        let digest = crate::crypto::sha256_hex(&json);
        Ok((json, digest))
    }

    pub fn seal(&self, keys: &Keyring, checkout: &str) -> Result<(Vec<u8>, String)> {
        let (json, digest) = self.canonical()?;
        Ok((keys.seal(&aad(checkout), &json)?, digest))
    }

    pub fn open(keys: &Keyring, checkout: &str, sealed: &[u8]) -> Result<Post> {
        let plain = keys.open(&aad(checkout), sealed)?;
        serde_json::from_slice(plain.expose()).map_err(Error::internal)
    }

    pub fn cover(&self) -> Option<&Image> {
        self.images.iter().find(|i| i.role == ImageRole::Cover)
    }

    pub fn image_by_sha(&self, sha: &str) -> Option<&Image> {
        self.images.iter().find(|i| i.sha256 == sha)
    }

    pub fn view(&self, sha256: &str) -> ContentView {
        ContentView {
            sha256: sha256.to_owned(),
            title: self.title.clone(),
            author: self.author.clone(),
            digest: self.digest.clone(),
            body: self.body.clone(),
            text: self.text.clone(),
            images: self
                .images
                .iter()
                .map(|i| ImageView {
                    name: i.name.clone(),
                    role: i.role,
                    content_type: i.content_type.clone(),
                    sha256: i.sha256.clone(),
                    bytes: i.data.len(),
                })
                .collect(),
            targets: self.targets.clone(),
        }
    }
}
