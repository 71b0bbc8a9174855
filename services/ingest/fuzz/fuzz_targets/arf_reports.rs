//! Any bytes as an ARF report: parsing and turning it into a complaint must
//! give a report, a per-item rejection or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ricochet_ingest::arf::{parse, to_complaint};

/// mail-parser 0.11.9 panics on some inputs, which `arf::parse` catches and
/// refuses; libFuzzer's panic hook would abort on it anyway. Let only those
/// through: any other panic still aborts and is reported.
fn tolerate_known_parser_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_parser = info
                .location()
                .is_some_and(|l| l.file().contains("mail-parser"));
            if !in_parser {
                abort(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    tolerate_known_parser_panics();
    if let Ok(report) = parse(data) {
        let _ = to_complaint(&report, 1_790_000_000_000);
    }
});
