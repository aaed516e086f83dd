//! Verification: checks every line and every link of a log and says exactly which line was
//! changed, deleted, inserted, reordered or torn (SPEC §7).
//!
//! Work is split in two. The expensive part, hashing each line once and validating it as JSON,
//! runs in parallel over chunks of whole lines and yields one small `LineInfo` per line. A
//! sequential pass then walks those infos in order, checks each link, and when a link breaks
//! looks one or two records ahead to tell the cases apart:
//!
//! | what happened | reported as |
//! |---|---|
//! | a line's content changed | `hash_mismatch` at that line |
//! | a CR added before a line's LF | `hash_mismatch` at that line, the message saying so (the last line included) |
//! | records deleted | `seq_gap` at the line after the gap |
//! | a line inserted (a copy, one from elsewhere, or a forgery with the right `seq` and `prev_hash`) | `seq_out_of_order` at it when its `seq` is behind, else `hash_mismatch` |
//! | two lines swapped | `seq_out_of_order` at the second |
//! | a record after one with `seq` 18446744073709551615 (`u64::MAX`): `seq` wrapped | `seq_out_of_order` at it |
//! | first records deleted | `bad_genesis` at line 1 |
//! | the first record's `seq` or `prev_hash` changed | `bad_genesis` at line 1 |
//! | an empty, non-UTF-8, non-JSON, non-object or unchained line | `empty_line`, `bad_utf8`, `bad_json`, `not_object`, `missing_chain_fields` at it |
//! | bytes after the last LF | `torn_tail` |
//!
//! Each of these is one problem, with no follow-on problems. What the links cannot tell apart:
//! a change to the last line shows only when it adds a CR; two adjacent changed lines are one
//! `hash_mismatch` at the second, whose message says the first may have changed too; a forgery
//! inserted just before the last line looks like the genuine one, which is then blamed.
//!
//! Memory stays flat: infos are produced and consumed one window of the file at a time.
//!
//! [`Verifier`] runs it all in one call: the check against the verifier state of an earlier
//! run, the walk, signed checkpoints and seals, in one [`Report`], and saves the new state.
//!
//! The files: `report.rs` holds what is found ([`Report`], [`Problem`], [`ProblemKind`]),
//! `walk.rs` the parallel line checks and the walk over the links, `checkpoints.rs` the check
//! against signed checkpoints, `state.rs` the check against the verifier state of an earlier
//! run, `seals.rs` the check of seal records.

mod checkpoints;
mod diagnose;
mod report;
mod seals;
mod segments;
mod state;
mod walk;

use std::path::{Path, PathBuf};

use crate::chain::seal_key::KeyFile;
use crate::error::{Error, Result};
use crate::reader::Snapshot;
use crate::trust::note::VerifierKey;
use crate::trust::state::{DEFAULT_SAMPLES, State, check_sample_size};
use walk::WalkOptions;

pub use report::{Anchored, Problem, ProblemKind, Report};
pub(crate) use state::check_state;
pub use walk::Resume;

/// The chunk of whole lines the walk is measured in unless told otherwise (4 MiB): a window of
/// the file is two chunks per thread (the memory a run holds), hashed and parsed in jobs of an
/// eighth of a chunk.
pub const DEFAULT_CHUNK_SIZE: usize = 4 << 20;

/// Options for [`verify`], the quick call; [`Verifier`] has them all.
///
/// ```
/// let opts = nexus_audit::VerifyOptions::new().max_problems(10).threads(2);
/// assert_eq!(opts.threads, Some(2));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// List at most this many problems (default 100); counting goes on.
    pub max_problems: usize,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
}

impl VerifyOptions {
    /// The defaults: 100 problems listed, all cores.
    #[must_use]
    pub fn new() -> Self {
        VerifyOptions::default()
    }

    /// Lists at most `n` problems (all are counted).
    #[must_use]
    pub fn max_problems(mut self, n: usize) -> Self {
        self.max_problems = n;
        self
    }

    /// Uses `n` worker threads (`None`: all cores).
    #[must_use]
    pub fn threads(mut self, n: impl Into<Option<usize>>) -> Self {
        self.threads = n.into();
        self
    }
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            max_problems: 100,
            threads: None,
        }
    }
}

/// Verifies the log at `path`: every line and link, nothing else.
///
/// # Errors
///
/// [`Error::Io`] and friends when the file cannot be opened or mapped. Integrity problems are
/// not errors: they are in the report.
pub fn verify(path: impl AsRef<Path>, opts: &VerifyOptions) -> Result<Report> {
    Verifier::from(opts).run(&Snapshot::open(path)?)
}

/// Verification in one call: compares the log with the verifier state of an earlier run,
/// walks every line (or, incrementally, the lines after the state's head), checks signed
/// checkpoints and seals, returns one [`Report`], and saves the new state when the log
/// verified clean.
///
/// | setting | default |
/// |---|---|
/// | [`max_problems`](Verifier::max_problems) | 100 listed (all are counted) |
/// | [`threads`](Verifier::threads) | all cores |
/// | [`chunk_size`](Verifier::chunk_size) | [`DEFAULT_CHUNK_SIZE`] (4 MiB) |
/// | [`state`](Verifier::state) | none: nothing is remembered |
/// | [`incremental`](Verifier::incremental) | off: every line is walked |
/// | [`samples`](Verifier::samples) | [`DEFAULT_SAMPLES`] records sampled by a full run |
/// | [`checkpoint`](Verifier::checkpoint), [`key`](Verifier::key) | none |
/// | [`seal_key`](Verifier::seal_key) | none: seals are not checked |
///
/// ```no_run
/// use nexus_audit::{Snapshot, Verifier};
///
/// # fn main() -> nexus_audit::Result<()> {
/// let report = Verifier::new()
///     .max_problems(10)
///     .state("/srv/auditor/nexus.state")?
///     .incremental(true)
///     .run(&Snapshot::open("audit.jsonl")?)?;
/// for problem in &report.problems {
///     eprintln!("line {}: {}: {}", problem.line, problem.kind, problem.message);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Verifier {
    walk: WalkOptions,
    /// Where the state is kept, and what it held when it was read (`None`: no file yet).
    state: Option<(PathBuf, Option<State>)>,
    incremental: bool,
    samples: Option<usize>,
    checkpoints: Vec<(String, Vec<u8>)>,
    keys: Vec<VerifierKey>,
    seal_key: Option<KeyFile>,
    /// Where to start without a state file (a caller that remembers what it proved).
    resume: Option<Resume>,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier::from(&VerifyOptions::default())
    }
}

impl From<&VerifyOptions> for Verifier {
    fn from(opts: &VerifyOptions) -> Self {
        Verifier {
            walk: WalkOptions {
                max_problems: opts.max_problems,
                threads: opts.threads,
                chunk_size: DEFAULT_CHUNK_SIZE,
            },
            state: None,
            incremental: false,
            samples: None,
            checkpoints: Vec::new(),
            keys: Vec::new(),
            resume: None,
            seal_key: None,
        }
    }
}

impl Verifier {
    /// A verifier with the defaults in the table above.
    #[must_use]
    pub fn new() -> Self {
        Verifier::default()
    }

    /// Walks only the lines after `resume` (and the link from the first of them to its head):
    /// for a caller that keeps what it proved in memory, such as `serve`. A state file given
    /// with [`state`](Verifier::state) takes precedence.
    #[must_use]
    pub fn resume_from(mut self, resume: Resume) -> Self {
        self.resume = Some(resume);
        self
    }

    /// Lists at most `n` problems in the report; all are counted in `problems_total`.
    #[must_use]
    pub fn max_problems(mut self, n: usize) -> Self {
        self.walk.max_problems = n;
        self
    }

    /// Runs on `n` worker threads (`None`: all cores).
    #[must_use]
    pub fn threads(mut self, n: impl Into<Option<usize>>) -> Self {
        self.walk.threads = n.into();
        self
    }

    /// Hashes and parses the log in windows of two chunks of about `bytes` of whole lines per
    /// thread, each chunk cut into eight jobs (at least one line each). Smaller chunks spread a
    /// small log over more jobs and windows; the report does not depend on it.
    #[must_use]
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.walk.chunk_size = bytes.max(1);
        self
    }

    /// Compares the log with the verifier state kept in the file at `path`, and writes the new
    /// state there (atomically) when the log verifies clean. The file is read now, so a bad
    /// state file is reported before any log is read; a missing one is created by the run.
    /// Each run starts from the state as read here: to start from the one a run saved, call
    /// `state` again (a new verifier, or this one).
    ///
    /// # Errors
    ///
    /// What [`State::load`] returns: [`Error::InvalidConfig`] for an empty, corrupt or newer
    /// state file, [`Error::Io`] when it cannot be read.
    pub fn state(mut self, path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let previous = State::load(&path)?;
        self.state = Some((path, previous));
        Ok(self)
    }

    /// The verifier state as it was read by [`state`](Verifier::state), if there was one.
    #[must_use]
    pub fn previous_state(&self) -> Option<&State> {
        self.state.as_ref().and_then(|(_, s)| s.as_ref())
    }

    /// With a [`state`](Verifier::state) that matches the log: walks only the lines after its
    /// head (and their link to it), and checks the state's proof of the lines before, instead
    /// of walking every line. SECURITY.md says what that proves.
    #[must_use]
    pub fn incremental(mut self, on: bool) -> Self {
        self.incremental = on;
        self
    }

    /// How many records a full run samples at random into the new state, for later
    /// incremental runs to check (1 to [`MAX_SAMPLES`](crate::MAX_SAMPLES));
    /// incremental runs keep the state's number.
    #[must_use]
    pub fn samples(mut self, n: usize) -> Self {
        self.samples = Some(n);
        self
    }

    /// Checks the log against a signed checkpoint note (its `name` is used in messages); its
    /// signature must be by a [`key`](Verifier::key) given.
    #[must_use]
    pub fn checkpoint(mut self, name: impl Into<String>, note: impl Into<Vec<u8>>) -> Self {
        self.checkpoints.push((name.into(), note.into()));
        self
    }

    /// Trusts `key` to sign checkpoints.
    #[must_use]
    pub fn key(mut self, key: VerifierKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Checks every seal record with the keys derived from the initial seal key
    /// (`seal.verify`).
    #[must_use]
    pub fn seal_key(mut self, key: KeyFile) -> Self {
        self.seal_key = Some(key);
        self
    }

    /// Verifies the log.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an incremental run from a state without a proof (format 1),
    /// a sample size out of range, a bad seal key or thread pool; [`Error::Io`] when the new
    /// state cannot be written. Integrity problems are not errors: they are in the report.
    pub fn run(&self, snapshot: &Snapshot) -> Result<Report> {
        self.run_with_progress(snapshot, &|_| {})
    }

    /// [`run`](Verifier::run), calling `progress` with the number of bytes walked so far.
    ///
    /// # Errors
    ///
    /// As [`run`](Verifier::run).
    pub fn run_with_progress(
        &self,
        snapshot: &Snapshot,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Report> {
        let sample_size = self.samples.unwrap_or(DEFAULT_SAMPLES);
        if let Some((path, previous)) = &self.state {
            check_sample_size(sample_size)?;
            if self.incremental && previous.as_ref().is_some_and(|s| s.proof.is_none()) {
                return Err(Error::InvalidConfig(format!(
                    "the state file {} holds no proof of the records before its head (format 1), so an incremental run could not check them: verify the whole log once with it",
                    path.display()
                )));
            }
        }
        // The state is compared first: an incremental run starts from it only when it matches.
        let (state_problem, resume) = match self.previous_state().map(|s| check_state(s, snapshot))
        {
            Some(Ok(resume)) => (None, resume.filter(|_| self.incremental)),
            Some(Err(problem)) => (Some(problem), None),
            None => (None, self.resume),
        };
        let report = walk::walk(snapshot, &self.walk, progress, resume)?;
        self.finish(snapshot, report, state_problem, resume)
    }

    /// Verifies the log at `log` whether it is one file or rotated (segments and a manifest
    /// beside it): a one-file log exactly as [`run_with_progress`](Verifier::run_with_progress)
    /// does; a rotated one file by file as one chain (SECURITY.md says what that proves), with
    /// the archive copies of pruned segments in `archive` too. Checkpoints, seals and the
    /// state are checked against the log's bytes joined in memory (an incremental run walks a
    /// rotated log in full).
    ///
    /// # Errors
    ///
    /// As [`run`](Verifier::run), and [`Error::Io`] when the log's directory or a manifest
    /// cannot be read.
    pub fn run_log(
        &self,
        log: &Path,
        archive: Option<&Path>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Report> {
        let set = crate::segment::LogSet::open(log)?;
        if !set.is_rotated() {
            if let Some(dir) = archive {
                return Err(Error::InvalidConfig(format!(
                    "{} has no manifest and no segments, so nothing of it was archived: verify it without --archive {}",
                    log.display(),
                    dir.display()
                )));
            }
            return self.run_with_progress(&Snapshot::open(log)?, progress);
        }
        let report = segments::verify_set(&set, archive, &self.walk, progress)?;
        if self.state.is_none() && self.checkpoints.is_empty() && self.seal_key.is_none() {
            return Ok(report);
        }
        let joined = set.joined()?;
        let state_problem = match self.previous_state().map(|s| check_state(s, &joined)) {
            Some(Err(problem)) => Some(problem),
            _ => None,
        };
        self.finish(&joined, report, state_problem, None)
    }

    /// Adds the state, checkpoint and seal checks to the walk's `report`, and saves the new
    /// state when it is clean.
    fn finish(
        &self,
        snapshot: &Snapshot,
        mut report: Report,
        state_problem: Option<Problem>,
        resume: Option<Resume>,
    ) -> Result<Report> {
        let max_problems = self.walk.max_problems;
        let sample_size = self.samples.unwrap_or(DEFAULT_SAMPLES);
        if let Some(p) = state_problem {
            report.add_problem(p, max_problems);
        }
        checkpoints::check_checkpoints(
            snapshot,
            &self.checkpoints,
            &self.keys,
            &mut report,
            max_problems,
        );
        if let Some(key) = &self.seal_key {
            let seals = seals::verify_seals(snapshot, key, self.walk.threads)?;
            seals::add_to_report(seals, &mut report, max_problems);
        }
        if let (Some((path, previous)), true) = (&self.state, report.ok) {
            // An incremental run moves the state's proof forward; a full run draws a new sample.
            let now = match (previous, resume) {
                (Some(before), Some(_)) => Some(before.extended(snapshot)?),
                _ => State::of(snapshot, sample_size)?,
            };
            if let Some(now) = now {
                now.save(path)?;
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
