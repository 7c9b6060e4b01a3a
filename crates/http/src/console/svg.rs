//! Pictures drawn on the server as inline SVG (no script, no style attribute, no external
//! file): the TOTP enrolment QR code and the activity charts.

use maud::{Markup, PreEscaped, html};

use crate::review::Activity;

/// The QR code of `text` as SVG: one path of dark modules with a quiet zone of four.
pub fn qr(text: &str) -> Markup {
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else {
        return html! {};
    };
    let width = code.width();
    let colors = code.to_colors();
    let mut d = String::new();
    for (i, c) in colors.iter().enumerate() {
        if *c == qrcode::Color::Dark {
            let (x, y) = (i % width + 4, i / width + 4);
            d.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    let size = width + 8;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {size} {size}")) width="264" height="264"
            shape-rendering="crispEdges" role="img" aria-label="QR" {
            rect width=(size) height=(size) fill="#fff" {}
            path d=(d) fill="#000" {}
        }
    }
}

/// A bar chart of activity (all entries) with failures drawn over them in red.
pub fn chart(id: &str, buckets: &[Activity], label: impl Fn(usize, &Activity) -> String) -> Markup {
    let (w, h, pad_l, pad_b) = (720.0_f64, 180.0_f64, 40.0_f64, 22.0_f64);
    let max = buckets.iter().map(|b| b.total).max().unwrap_or(0).max(1) as f64;
    let n = buckets.len().max(1) as f64;
    let bw = (w - pad_l) / n;
    let plot_h = h - pad_b - 8.0;
    let y = |v: i64| 8.0 + plot_h - (v as f64 / max) * plot_h;
    let mut s = String::new();
    // Axis and the top value.
    s.push_str(&format!(
        "<line x1=\"{pad_l}\" y1=\"{}\" x2=\"{w}\" y2=\"{}\" stroke=\"#8a94a6\"/>",
        8.0 + plot_h,
        8.0 + plot_h
    ));
    s.push_str(&format!(
        "<text x=\"{}\" y=\"16\" text-anchor=\"end\" font-size=\"11\" fill=\"#4a5568\">{}</text>",
        pad_l - 4.0,
        max as i64
    ));
    let every = (buckets.len() / 8).max(1);
    for (i, b) in buckets.iter().enumerate() {
        let x = pad_l + i as f64 * bw;
        if b.total > 0 {
            s.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#3b6fd8\"><title>{}: {}</title></rect>",
                x + 1.0,
                y(b.total),
                (bw - 2.0).max(1.0),
                8.0 + plot_h - y(b.total),
                esc(&label(i, b)),
                b.total
            ));
        }
        if b.failures > 0 {
            s.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#d64545\"><title>{}: {}</title></rect>",
                x + 1.0,
                y(b.failures),
                (bw - 2.0).max(1.0),
                8.0 + plot_h - y(b.failures),
                esc(&label(i, b)),
                b.failures
            ));
        }
        if i % every == 0 {
            s.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\" fill=\"#4a5568\">{}</text>",
                x,
                h - 6.0,
                esc(&label(i, b))
            ));
        }
    }
    html! {
        svg.chart id=(id) xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {w} {h}")) role="img" {
            (PreEscaped(s))
        }
    }
}

fn esc(s: &str) -> String {
    html! { (s) }.into_string()
}
