//! A ClickHouse server for the local stack, built from `libchdb.so`.
//!
//! No modern ClickHouse server package is reachable from the machines this
//! project targets, but the chdb library embeds the whole engine. Its
//! command-line entry point (`query_stable_v2`) accepts server settings, so a
//! query that starts the HTTP and native listeners and then runs for a very
//! long time turns the library into a real server for as long as that query
//! runs. Stop it with SIGTERM.

use std::ffi::{c_char, c_int, CStr, CString};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;

/// Serve ClickHouse's HTTP and native protocols from libchdb on loopback.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// Path of libchdb.so (from the npm package @chdb/lib-linux-x64-gnu).
    #[arg(long, env = "CHDB_LIB")]
    lib: PathBuf,
    /// Data directory; MergeTree data persists here across restarts.
    #[arg(long)]
    path: PathBuf,
    /// HTTP port (ClickHouse's HTTP interface).
    #[arg(long, default_value_t = 8123)]
    http_port: u16,
    /// Native protocol port.
    #[arg(long, default_value_t = 9000)]
    tcp_port: u16,
    /// Address to listen on; keep it on loopback.
    #[arg(long, default_value = "127.0.0.1")]
    listen_host: String,
    /// A ClickHouse server configuration file (XML) to read as well, e.g.
    /// the `remote_servers` of a local cluster.
    #[arg(long)]
    config_file: Option<PathBuf>,
}

/// `struct local_result_v2` from chdb.h.
#[repr(C)]
struct LocalResultV2 {
    buf: *mut c_char,
    len: usize,
    vec: *mut std::ffi::c_void,
    elapsed: f64,
    rows_read: u64,
    bytes_read: u64,
    error_message: *mut c_char,
}

type QueryStableV2 = unsafe extern "C" fn(c_int, *mut *mut c_char) -> *mut LocalResultV2;
type FreeResultV2 = unsafe extern "C" fn(*mut LocalResultV2);

/// Starts the listeners, then blocks: one row per second for ~31 years.
const SERVE_QUERY: &str = "SYSTEM START LISTEN HTTP; SYSTEM START LISTEN TCP; \
     SELECT sum(sleepEachRow(1)) FROM numbers(1000000000) SETTINGS max_block_size = 1";

fn main() -> Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.path)
        .with_context(|| format!("creating data directory {}", args.path.display()))?;
    let argv: Vec<CString> = [
        "clickhouse".to_string(),
        "--multiquery".to_string(),
        format!("--path={}", args.path.display()),
        format!("--http_port={}", args.http_port),
        format!("--tcp_port={}", args.tcp_port),
        format!("--listen_host={}", args.listen_host),
    ]
    .into_iter()
    .chain(
        args.config_file
            .iter()
            .map(|f| format!("--config-file={}", f.display())),
    )
    .chain([format!("--query={SERVE_QUERY}")])
    .map(|a| CString::new(a).context("argument contains a NUL byte"))
    .collect::<Result<_>>()?;
    let mut ptrs: Vec<*mut c_char> = argv.iter().map(|a| a.as_ptr() as *mut c_char).collect();

    // SAFETY: the symbols are declared with the signatures of chdb.h; the
    // library stays loaded for the whole call and argv outlives it.
    unsafe {
        let lib = libloading::Library::new(&args.lib)
            .with_context(|| format!("loading {}", args.lib.display()))?;
        let query: libloading::Symbol<QueryStableV2> = lib.get(b"query_stable_v2\0")?;
        let free: libloading::Symbol<FreeResultV2> = lib.get(b"free_result_v2\0")?;
        eprintln!(
            "chdb-server: serving http://{}:{} and tcp {} from {}",
            args.listen_host,
            args.http_port,
            args.tcp_port,
            args.path.display()
        );
        let result = query(ptrs.len() as c_int, ptrs.as_mut_ptr());
        if result.is_null() {
            bail!("query_stable_v2 returned no result");
        }
        let error = (*result).error_message;
        let message =
            (!error.is_null()).then(|| CStr::from_ptr(error).to_string_lossy().into_owned());
        free(result);
        if let Some(message) = message {
            bail!("ClickHouse stopped with an error: {message}");
        }
    }
    Ok(())
}
