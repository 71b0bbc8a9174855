//! The scoring policy as an operator's file (TOML, `RICOCHET_SCORING_POLICY`):
//! windows, tier thresholds (per level if wanted), minimum volume, weights,
//! caps, cool-down and the burst rule. Every value is optional; what is left out
//! keeps its default. `deploy/scoring-policy.toml` lists every setting with
//! its default and why. Errors name the file, line and field.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ricochet_kafka::ComplaintCode;
use serde::Deserialize;
use toml::Spanned;

use crate::policy::{Policy, Thresholds};
use crate::windows::Windows;
use ricochet_kafka::Level;

/// Why a policy file could not be used (the error every reloaded settings
/// file shares).
pub use ricochet_reload::FileError as PolicyError;

type V<T> = Option<Spanned<T>>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    windows: WindowsDoc,
    #[serde(default)]
    tiers: TiersDoc,
    #[serde(default)]
    volume: VolumeDoc,
    #[serde(default)]
    weights: BTreeMap<String, Spanned<f64>>,
    #[serde(default)]
    caps: CapsDoc,
    #[serde(default)]
    hysteresis: HysteresisDoc,
    #[serde(default)]
    bursts: BurstsDoc,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct ThresholdsDoc {
    warning: V<f64>,
    throttle: V<f64>,
    suspend: V<f64>,
    exclude: V<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TiersDoc {
    warning: V<f64>,
    throttle: V<f64>,
    suspend: V<f64>,
    exclude: V<f64>,
    #[serde(default)]
    sender: ThresholdsDoc,
    #[serde(default)]
    esp: ThresholdsDoc,
    #[serde(default)]
    campaign: ThresholdsDoc,
    #[serde(default)]
    domain: ThresholdsDoc,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WindowsDoc {
    lengths: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct VolumeDoc {
    min_delivered: V<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CapsDoc {
    max_per_reporter: V<u64>,
    max_provider_share: V<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HysteresisDoc {
    cool_down_days: V<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BurstsDoc {
    min_complaints: V<u64>,
    share: V<f64>,
}

/// Turns spans into the file's lines for errors.
struct Checker<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Checker<'_> {
    fn invalid(&self, span: Range<usize>, field: &str, message: impl Into<String>) -> PolicyError {
        PolicyError::invalid((self.path, self.text), span.start, field, message)
    }

    /// Sets `target` from `value` if present, after `ok` accepts it.
    fn set<T: Copy>(
        &self,
        target: &mut T,
        value: &V<T>,
        field: &str,
        ok: impl Fn(T) -> Result<(), String>,
    ) -> Result<(), PolicyError> {
        if let Some(v) = value {
            ok(*v.get_ref()).map_err(|m| self.invalid(v.span(), field, m))?;
            *target = *v.get_ref();
        }
        Ok(())
    }

    fn thresholds(
        &self,
        base: Thresholds,
        doc: &ThresholdsDoc,
        section: &str,
    ) -> Result<Thresholds, PolicyError> {
        let mut t = base;
        let share = |v: f64| {
            (v.is_finite() && v > 0.0 && v <= 1.0)
                .then_some(())
                .ok_or_else(|| format!("{v} is not a rate in (0, 1] (0.001 is 0.1 %)"))
        };
        for (target, value, name) in [
            (&mut t.warning, &doc.warning, "warning"),
            (&mut t.throttle, &doc.throttle, "throttle"),
            (&mut t.suspend, &doc.suspend, "suspend"),
            (&mut t.exclude, &doc.exclude, "exclude"),
        ] {
            self.set(target, value, &format!("{section}.{name}"), share)?;
        }
        let ordered = t.warning < t.throttle && t.throttle < t.suspend && t.suspend < t.exclude;
        if !ordered {
            let span = [&doc.exclude, &doc.suspend, &doc.throttle, &doc.warning]
                .into_iter()
                .flatten()
                .map(|v| v.span())
                .next()
                .unwrap_or(self.text.len()..self.text.len());
            return Err(self.invalid(
                span,
                section,
                format!(
                    "thresholds must rise with the tier: warning {} < throttle {} < suspend {} < exclude {}",
                    t.warning, t.throttle, t.suspend, t.exclude
                ),
            ));
        }
        Ok(t)
    }

    fn weights(&self, policy: &mut Policy, doc: &FileDoc) -> Result<(), PolicyError> {
        for (code, w) in &doc.weights {
            let field = format!("weights.{code}");
            let Ok(known) = code.parse::<ComplaintCode>() else {
                return Err(self.invalid(
                    w.span(),
                    &field,
                    format!("unknown complaint code (codes: {})", ComplaintCode::list()),
                ));
            };
            let v = *w.get_ref();
            let fits = if known.is_positive() {
                v.is_finite() && v <= 0.0
            } else {
                v.is_finite() && v >= 0.0
            };
            if !fits {
                let rule = if known.is_positive() {
                    "not-spam offsets complaints: its weight is 0 or negative"
                } else {
                    "a complaint's weight is 0 or positive"
                };
                return Err(self.invalid(w.span(), &field, format!("{v}: {rule}")));
            }
            policy.weights.insert(known, v);
        }
        Ok(())
    }

    fn policy(&self, doc: &FileDoc) -> Result<Policy, PolicyError> {
        let mut p = Policy::default();
        if let Some(lengths) = &doc.windows.lengths {
            p.windows = Windows::parse(lengths.get_ref())
                .map_err(|e| self.invalid(lengths.span(), "windows.lengths", e.to_string()))?;
        }
        let t = &doc.tiers;
        let all = ThresholdsDoc {
            warning: t.warning.clone(),
            throttle: t.throttle.clone(),
            suspend: t.suspend.clone(),
            exclude: t.exclude.clone(),
        };
        p.thresholds = self.thresholds(p.thresholds, &all, "tiers")?;
        for (level, section) in [
            (Level::Sender, &doc.tiers.sender),
            (Level::Esp, &doc.tiers.esp),
            (Level::Campaign, &doc.tiers.campaign),
            (Level::Domain, &doc.tiers.domain),
        ] {
            let name = format!("tiers.{level}");
            let t = self.thresholds(p.thresholds, section, &name)?;
            if t != p.thresholds {
                p.levels.insert(level, t);
            }
        }
        let at_least = |min: u64| {
            move |v: u64| {
                (v >= min)
                    .then_some(())
                    .ok_or_else(|| format!("{v}: must be at least {min}"))
            }
        };
        let share = |v: f64| {
            (v.is_finite() && v > 0.0 && v <= 1.0)
                .then_some(())
                .ok_or_else(|| format!("{v}: must be a share in (0, 1]"))
        };
        self.set(
            &mut p.min_delivered,
            &doc.volume.min_delivered,
            "volume.min_delivered",
            at_least(1),
        )?;
        self.weights(&mut p, doc)?;
        self.set(
            &mut p.max_per_reporter,
            &doc.caps.max_per_reporter,
            "caps.max_per_reporter",
            at_least(1),
        )?;
        self.set(
            &mut p.max_provider_share,
            &doc.caps.max_provider_share,
            "caps.max_provider_share",
            share,
        )?;
        self.set(
            &mut p.cool_down_days,
            &doc.hysteresis.cool_down_days,
            "hysteresis.cool_down_days",
            |v| {
                (0..=365)
                    .contains(&v)
                    .then_some(())
                    .ok_or_else(|| format!("{v}: must be 0-365 days"))
            },
        )?;
        self.set(
            &mut p.burst_min_complaints,
            &doc.bursts.min_complaints,
            "bursts.min_complaints",
            at_least(1),
        )?;
        self.set(&mut p.burst_share, &doc.bursts.share, "bursts.share", share)?;
        Ok(p)
    }
}

impl Policy {
    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = ricochet_reload::read(path)?;
        Policy::parse(path, &text)
    }

    /// Validates policy text; `path` is used in error messages only.
    pub fn parse(path: &Path, text: &str) -> Result<Policy, PolicyError> {
        let doc: FileDoc = toml::from_str(text).map_err(|e| PolicyError::syntax(path, e))?;
        Checker { path, text }.policy(&doc)
    }
}

/// A policy file followed across edits: the scorer checks it before each
/// run and takes a new version only if it is valid.
#[derive(Debug)]
pub struct PolicyFile {
    path: PathBuf,
    stamp: Option<(SystemTime, u64)>,
}

/// Modification time and length: cheap change detection.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl PolicyFile {
    /// Loads the file; fails if it is missing or invalid (scoring must not
    /// start on a policy the operator did not mean).
    pub fn open(path: impl Into<PathBuf>) -> Result<(PolicyFile, Policy), PolicyError> {
        let path = path.into();
        let stamp = stamp(&path);
        let policy = Policy::load(&path)?;
        Ok((PolicyFile { path, stamp }, policy))
    }

    /// The new policy if the file changed since it was last read. An
    /// invalid new version is an error and is not read again until the
    /// file changes once more; the caller keeps the policy in force.
    pub fn changed(&mut self) -> Option<Result<Policy, PolicyError>> {
        let now = stamp(&self.path);
        if now == self.stamp {
            return None;
        }
        self.stamp = now;
        Some(Policy::load(&self.path))
    }

    /// The file followed.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(Path::new("policy.toml"), text)
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn an_empty_file_is_the_default_policy() {
        assert_eq!(parse("").unwrap(), Policy::default());
    }

    #[test]
    fn the_shipped_file_states_the_defaults() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/scoring-policy.toml"
        );
        assert_eq!(Policy::load(Path::new(path)).unwrap(), Policy::default());
    }

    #[test]
    fn values_and_level_overrides_apply() {
        let p = parse(
            "[tiers]\nwarning = 0.002\n[tiers.esp]\nwarning = 0.0015\n[weights]\nphishing = 8\n[hysteresis]\ncool_down_days = 3\n",
        )
        .unwrap();
        assert_eq!(p.thresholds.warning, 0.002);
        assert_eq!(p.for_level(Level::Esp).thresholds.warning, 0.0015);
        assert_eq!(p.for_level(Level::Campaign).thresholds.warning, 0.002);
        assert_eq!(p.weight(ComplaintCode::Phishing), 8.0);
        assert_eq!(p.cool_down_days, 3);
    }

    #[test]
    fn windows_are_policy_too() {
        let p = parse("[windows]\nlengths = [\"2h\", \"2d\", \"14d\", \"60d\"]\n").unwrap();
        assert_eq!(p.windows.names(), "2h, 2d, 14d, 60d");
        assert!(p.explain(Level::Esp).contains("(2h, 2d, 14d, 60d)"));
        let e = error("\n[windows]\nlengths = [\"1h\", \"7d\", \"24h\", \"30d\"]\n");
        assert_eq!(
            e,
            "policy.toml:3: windows.lengths: windows must rise, each longer than the one before"
        );
    }

    #[test]
    fn bad_values_name_file_line_and_field() {
        assert_eq!(
            error("[tiers]\nwarning = 0.001\nthrottle = 0.0005\n"),
            "policy.toml:3: tiers: thresholds must rise with the tier: warning 0.001 < throttle 0.0005 < suspend 0.005 < exclude 0.01"
        );
        assert_eq!(
            error("\n[weights]\nspam = 2\n"),
            "policy.toml:3: weights.spam: unknown complaint code (codes: unwanted, misrepresented, policy-violation, phishing, unsubscribe-ignored, not-spam)"
        );
        assert!(error("[weights]\n\"not-spam\" = 1\n")
            .starts_with("policy.toml:2: weights.not-spam: 1: not-spam offsets"));
        assert!(error("[caps]\nmax_provider_share = 1.5\n")
            .starts_with("policy.toml:2: caps.max_provider_share: 1.5"));
        assert!(error("[tiers.esp]\nexclude = 2\n").starts_with("policy.toml:2: tiers.esp.exclude"));
        assert!(error("[volume]\nmin_delivered = 0\n")
            .starts_with("policy.toml:2: volume.min_delivered: 0: must be at least 1"));
        // Unknown fields and wrong types are syntax errors with line and column.
        let e = error("[caps]\nmax_per_reporter = \"three\"\n");
        assert!(e.contains("line 2"), "{e}");
        let e = error("[tiers]\nwarnin = 0.001\n");
        assert!(e.contains("unknown field") && e.contains("warnin"), "{e}");
    }

    #[test]
    fn a_changed_file_is_read_again_and_a_bad_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, "[volume]\nmin_delivered = 500\n").unwrap();
        let (mut file, policy) = PolicyFile::open(&path).unwrap();
        assert_eq!(policy.min_delivered, 500);
        assert!(file.changed().is_none());
        std::fs::write(&path, "[volume]\nmin_delivered = 2500\n").unwrap();
        assert_eq!(file.changed().unwrap().unwrap().min_delivered, 2500);
        std::fs::write(&path, "[volume]\nmin_delivered = -1\n").unwrap();
        assert!(file.changed().unwrap().is_err());
        assert!(file.changed().is_none(), "not read again until it changes");
    }
}
