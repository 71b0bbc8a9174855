//! Request bodies as ingest reads them: any bytes, as a complaint batch and
//! as a delivery batch, then every item through the checks. Malformed input
//! must give an error or a rejection, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ricochet_ingest::complaints::{check_batch, Checking, ComplaintBatch};
use ricochet_ingest::deliveries::{check_delivery, DeliveryBatch};
use ricochet_registry::Registry;
use ricochet_token::VerifyOptions;

/// A registry with one ESP and one provider, as the seed bodies expect.
fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| {
        Registry::parse(
            std::path::Path::new("seed-registry.toml"),
            include_str!("../seed-registry.toml"),
        )
        .expect("the fuzz registry parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let opts = VerifyOptions {
        now: 1_790_000_000,
        clock_skew_secs: 60,
    };
    if let Ok(mut batch) = serde_json::from_slice::<ComplaintBatch>(data) {
        let how = Checking { pool: None, chunk: Some(256) };
        let _ = check_batch(&mut batch.complaints, "mail.example", registry(), &opts, 1_790_000_000_000, how);
    }
    if let Ok(batch) = serde_json::from_slice::<DeliveryBatch>(data) {
        for item in &batch.deliveries {
            let _ = check_delivery(item, "mail.example", registry(), 1_790_000_000_000);
        }
    }
});
