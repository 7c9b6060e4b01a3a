//! The post under review, as an approver reads it.
//!
//! The article body is HTML written by whoever fills in the publishing tool: untrusted. The
//! console never puts it into the page as markup. We chose "escaped text with paragraphs" over a
//! sanitiser with an allow-list: a sanitiser is a parser whose every gap is an injection into the
//! page that signs off the post, while reducing the HTML to plain text pieces (the only output of
//! [`reading`]) leaves nothing to get wrong: each piece goes through maud's escaping like any
//! other string. The approver also loses nothing: block tags become paragraphs, `<img
//! src="cid:NAME">` becomes a marked placeholder naming the image, a link shows where it goes,
//! and anything a reading view cannot show (scripts, styles, comments, text hidden with inline
//! styles) is flagged, with the full HTML source one click away, also as escaped text.
//!
//! Images are listed by name, role, type, size and digest: the checkout view carries no image
//! bytes, and showing them as `data:` URIs would need `img-src data:` in the CSP. The CSP stays
//! strict (`img-src 'self'`).

use maud::{Markup, html};

use super::Lang;
use crate::content::{ContentView, ImageRole};

/// One piece of the reading view.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    Para(String),
    Image(String),
    Link { text: String, href: String },
}

/// What the reading view leaves out, for the approver to look at in the source.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub script_or_style: bool,
    pub hidden_style: bool,
    pub comment: bool,
}

fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| {
            let name = &rest[1..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                n if n.starts_with("#x") || n.starts_with("#X") => u32::from_str_radix(&n[2..], 16)
                    .ok()
                    .and_then(char::from_u32),
                n if n.starts_with('#') => n[1..].parse::<u32>().ok().and_then(char::from_u32),
                _ => None,
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                // A control character from an entity is shown as a replacement mark.
                out.push(if c.is_control() && c != '\n' {
                    '\u{FFFD}'
                } else {
                    c
                });
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The value of one attribute in a tag's source (`name="v"`, `name='v'` or `name=v`).
fn attr(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        let before_ok = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let after = lower[from..].trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let start = tag.len() - after.len() + 1;
        let v = tag[start..].trim_start();
        let value = match v.chars().next() {
            Some(q @ ('"' | '\'')) => v[1..].split(q).next().unwrap_or_default(),
            _ => v
                .split(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
                .next()
                .unwrap_or_default(),
        };
        return Some(decode_entities(value));
    }
    None
}

const BLOCKS: &[&str] = &[
    "p",
    "br",
    "div",
    "section",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "ul",
    "ol",
    "blockquote",
    "table",
    "tr",
    "hr",
    "pre",
    "figure",
    "figcaption",
];

/// Reduces untrusted HTML to plain text pieces. Never fails: whatever does not parse is text.
pub fn reading(html: &str) -> (Vec<Piece>, Flags) {
    let mut pieces = Vec::new();
    let mut flags = Flags::default();
    let mut para = String::new();
    let mut link: Option<String> = None;
    let flush = |para: &mut String, pieces: &mut Vec<Piece>| {
        let t = para.split_whitespace().collect::<Vec<_>>().join(" ");
        if !t.is_empty() {
            pieces.push(Piece::Para(t));
        }
        para.clear();
    };
    let mut rest = html;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            para.push_str(&decode_entities(rest));
            break;
        };
        para.push_str(&decode_entities(&rest[..lt]));
        rest = &rest[lt..];
        if let Some(body) = rest.strip_prefix("<!--") {
            flags.comment = true;
            rest = body.find("-->").map(|e| &body[e + 3..]).unwrap_or("");
            continue;
        }
        // The tag runs to the first `>` outside quotes.
        let mut quote = None;
        let mut end = None;
        for (i, c) in rest.char_indices().skip(1) {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (None, '"' | '\'') => quote = Some(c),
                (None, '>') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(end) = end else {
            // An unclosed `<` is text.
            para.push_str(&decode_entities(rest));
            break;
        };
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        if !closing
            && attr(tag, "style").is_some_and(|s| {
                let s = s.to_ascii_lowercase().replace(' ', "");
                s.contains("display:none")
                    || s.contains("visibility:hidden")
                    || s.contains("font-size:0")
                    || s.contains("opacity:0")
            })
        {
            flags.hidden_style = true;
        }
        match name.as_str() {
            "script" | "style" | "iframe" | "object" | "embed" | "template" if !closing => {
                flags.script_or_style = true;
                let close = format!("</{name}");
                let lower = rest.to_ascii_lowercase();
                rest = match lower.find(&close) {
                    Some(i) => rest[i..]
                        .find('>')
                        .map(|e| &rest[i + e + 1..])
                        .unwrap_or(""),
                    None => "",
                };
            }
            "img" => {
                flush(&mut para, &mut pieces);
                let src = attr(tag, "src").unwrap_or_default();
                let name = src.strip_prefix("cid:").unwrap_or(&src).to_owned();
                pieces.push(Piece::Image(name));
            }
            "a" if !closing => {
                flush(&mut para, &mut pieces);
                link = attr(tag, "href");
            }
            "a" => {
                if let Some(href) = link.take() {
                    let text = para.split_whitespace().collect::<Vec<_>>().join(" ");
                    para.clear();
                    pieces.push(Piece::Link { text, href });
                }
            }
            n if BLOCKS.contains(&n) => flush(&mut para, &mut pieces),
            _ => {}
        }
    }
    flush(&mut para, &mut pieces);
    (pieces, flags)
}

fn image_role(l: Lang, r: ImageRole) -> &'static str {
    match r {
        ImageRole::Cover => l.t("封面", "cover"),
        ImageRole::Inline => l.t("正文插图", "inline"),
    }
}

/// The post as it will appear: the WeChat article (title, author, digest, body) and the Weibo
/// status, then the images.
pub fn render(l: Lang, c: &ContentView) -> Markup {
    html! {
        @if let Some(body) = &c.body {
            @let (pieces, flags) = reading(body);
            article.post #post-article {
                p.small { (l.t("微信公众号图文", "WeChat article")) }
                h3.post-title #post-title { (c.title) }
                p.post-byline { (l.t("作者：", "Author: ")) span #post-author { (c.author) } }
                @if !c.digest.is_empty() { p.post-digest #post-digest { (l.t("摘要：", "Digest: ")) (c.digest) } }
                div.post-body #post-body {
                    @for p in &pieces {
                        @match p {
                            Piece::Para(t) => p { (t) },
                            Piece::Image(n) => p.post-image { (l.t("［图片］", "[image] ")) code { (n) } },
                            Piece::Link { text, href } => p { (text) " " span.small { "→ " code { (href) } } },
                        }
                    }
                }
                @if flags.script_or_style || flags.hidden_style || flags.comment {
                    p.warn #post-flags { "⚠ " (l.t(
                        "正文含有阅读视图无法显示的内容（脚本、样式、注释或被隐藏的文字），请查看下方源代码。",
                        "The body holds things a reading view cannot show (scripts, styles, comments or hidden text): read the source below."
                    )) }
                }
                details { summary { (l.t("查看正文 HTML 源代码", "Show the body's HTML source")) }
                    pre.post-source { (body) } }
            }
        }
        @if let Some(text) = &c.text {
            article.post #post-status {
                p.small { (l.t("新浪微博", "Sina Weibo")) }
                @for line in text.lines() { p { (line) } }
            }
        }
        @if !c.images.is_empty() {
            table.images #post-images {
                caption { (l.t("图片（保管库只显示摘要，内容随审批一并绑定）", "Images (shown by digest; their content is bound by the approval)")) }
                thead { tr { th { (l.t("名称", "Name")) } th { (l.t("用途", "Role")) } th { (l.t("类型", "Type")) }
                    th { (l.t("大小", "Size")) } th { "SHA-256" } } }
                tbody { @for i in &c.images {
                    tr { td { code { (i.name) } } td { (image_role(l, i.role)) } td { (i.content_type) }
                        td { (i.bytes) " B" } td { code.small { (i.sha256) } } }
                } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_becomes_text_pieces() {
        let (p, f) = reading(
            "<p>省发改委&amp;发布</p><img src=\"cid:fig1.png\"><p>&lt;script&gt; stays text</p><a href='https://x.cn/a?b=1'>详情</a>",
        );
        assert_eq!(
            p,
            vec![
                Piece::Para("省发改委&发布".into()),
                Piece::Image("fig1.png".into()),
                Piece::Para("<script> stays text".into()),
                Piece::Link {
                    text: "详情".into(),
                    href: "https://x.cn/a?b=1".into()
                },
            ]
        );
        assert_eq!(f, Flags::default());
    }

    #[test]
    fn scripts_hidden_text_and_broken_markup_are_flagged_or_text() {
        let (p, f) = reading(
            "<p style=\"display: none\">秘密</p><script>alert(1)</script><!-- x --><b>a > b</b> <3 <",
        );
        assert!(f.script_or_style && f.hidden_style && f.comment);
        assert_eq!(
            p,
            vec![Piece::Para("秘密".into()), Piece::Para("a > b <3 <".into())]
        );
        let (p, _) = reading("<img src=\"x\" onerror='alert(1)'><p title=\"a>b\">t</p>");
        assert_eq!(p, vec![Piece::Image("x".into()), Piece::Para("t".into())]);
    }
}
