//! Prometheus exposition shared by every service's `/metrics`.

use prometheus::{Encoder, Registry, TextEncoder};

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Every metric in `registry`, in the text exposition format.
pub fn render(registry: &Registry) -> String {
    let mut out = vec![];
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .expect("text encoding of gathered metrics");
    String::from_utf8(out).expect("metrics are UTF-8")
}
