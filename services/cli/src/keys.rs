//! `ricochet keys`: key generation.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use ricochet_token::{Algorithm, Jwk, JwkSet, SigningKey};

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Generate a key pair: the private JWK goes to --out (mode 0600), the public JWKS to stdout.
    New {
        /// Signature algorithm: eddsa (Ed25519, default) or es256 (P-256).
        #[arg(long, default_value = "eddsa")]
        alg: Algorithm,
        /// Key id to publish; choose a new one at every rotation (e.g. esp-2026-11).
        #[arg(long)]
        kid: String,
        /// Where to write the private JWK; refused if the file exists.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public JWKS of a private JWK file.
    Public {
        /// Private JWK file.
        #[arg(long)]
        key: PathBuf,
    },
}

pub fn run(cmd: KeysCommand) -> Result<ExitCode> {
    match cmd {
        KeysCommand::New { alg, kid, out } => {
            let key = SigningKey::generate(alg, kid)?;
            write_private(&out, &key.private_jwk())?;
            print_jwks(&key)?;
            eprintln!(
                "wrote private key {} ({alg}) to {} (mode 0600); publish the JWKS above",
                key.kid(),
                out.display()
            );
        }
        KeysCommand::Public { key } => print_jwks(&load_private(&key)?)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn print_jwks(key: &SigningKey) -> Result<()> {
    let set = JwkSet {
        keys: vec![key.public_jwk()],
    };
    println!("{}", serde_json::to_string_pretty(&set)?);
    Ok(())
}

/// Writes a private JWK readable by its owner only; never overwrites.
pub fn write_private(path: &Path, jwk: &Jwk) -> Result<()> {
    ricochet_token::key_file::write_private(path, jwk)
        .with_context(|| format!("creating {}", path.display()))
}

/// Reads a private JWK file.
pub fn load_private(path: &Path) -> Result<SigningKey> {
    Ok(SigningKey::from_file(path)?)
}
