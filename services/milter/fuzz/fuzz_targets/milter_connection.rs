//! Any bytes as an MTA's side of a milter connection, through the sign
//! milter and the check milter exactly as a connection is served: the
//! connection may end with an error, never with a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use miltr_server::{Milter, Server};
use ricochet_milter::check::{CheckMilter, Checker};
use ricochet_milter::config::{Cli, Mode};
use ricochet_milter::metrics::MilterMetrics;
use ricochet_milter::setup;
use ricochet_milter::sign::{SignMilter, Signer};
use tokio::io::AsyncWriteExt;
use tokio_util::compat::TokioAsyncReadCompatExt;

struct Milters {
    signer: Arc<Signer>,
    checker: Arc<Checker>,
    _dir: tempfile::TempDir,
}

fn milters() -> &'static Milters {
    static M: OnceLock<Milters> = OnceLock::new();
    M.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = |n: &str| dir.path().join(n).display().to_string();
        let key = ricochet_token::SigningKey::generate(ricochet_token::Algorithm::EdDSA, "f-1").unwrap();
        ricochet_token::key_file::write_private(&dir.path().join("esp.jwk"), &key.private_jwk()).unwrap();
        std::fs::write(dir.path().join("registry.toml"), "").unwrap();
        let sign = ["ricochet-milter", "sign", "--esp", "esp.example", "--key", &d("esp.jwk"),
            "--send-log", &d("sent.log"), "--trust-sender-header"];
        let Mode::Sign(s) = Cli::parse_from(sign).mode else { unreachable!() };
        let check = ["ricochet-milter", "check", "--registry", &d("registry.toml"),
            "--counts-file", &d("counts.json")];
        let Mode::Check(c) = Cli::parse_from(check).mode else { unreachable!() };
        let signer = setup::signer(&s, MilterMetrics::new()).unwrap();
        let (checker, _) = setup::checker(&c, MilterMetrics::new()).unwrap();
        Milters { signer, checker, _dir: dir }
    })
}

async fn serve<M: Milter>(mut milter: M, data: &[u8]) {
    let (mut mta, milter_side) = tokio::io::duplex(1 << 20);
    mta.write_all(data).await.unwrap();
    drop(mta);
    let mut server = Server::new(&mut milter, false, ricochet_milter::server::MAX_PACKET);
    let _ = server.handle_connection(&mut milter_side.compat()).await;
}

fuzz_target!(|data: &[u8]| {
    let m = milters();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        serve(SignMilter::new(m.signer.clone()), data).await;
        serve(CheckMilter::new(m.checker.clone()), data).await;
    });
});
