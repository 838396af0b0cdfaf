//! `study --dispatch slurm`: the study's runs as one Slurm job array, its report as a job after them.
//!
//! Slurm does the scheduling; this file writes two batch scripts into `runs/<study>/slurm/` and submits them:
//!
//! - `runs.sbatch`, submitted with `sbatch --array=0-(N-1)[%max_parallel]`: array task k runs
//!   `weatherlens study --config FILE --run-index k`, i.e. run k of the study's plan, which records its outcome
//!   in its run folder ([`super::outcome`]) and exits non-zero when the run failed (the task is then FAILED);
//! - `report.sbatch`, submitted with `--dependency=afterany:<array job>`, so that it runs once every task has
//!   ended in any state: `weatherlens study --config FILE --report-only` builds the report from the run folders.
//!
//! Both set the thread count from the CPUs Slurm gave the task (`SLURM_CPUS_PER_TASK`). The study config's
//! `[slurm]` table adds `#SBATCH` lines (account, partition, time, CPUs, memory, GPUs, more). Jobs run in the
//! directory the study was submitted from (relative data paths keep their meaning), with the same binary: both
//! must be on a file system the compute nodes share.
//!
//! [`wait`] follows the jobs with `scontrol -o show job` (every second: `sbatch --wait` polls every 32 s) until the
//! report job has ended, and returns each task's final state and exit code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weatherlens_models::files::{self, FileError};

use super::PlannedRun;

/// The folder of a study's scripts, logs and `submission.json`, inside `runs/<study>/`.
pub const SLURM_FOLDER: &str = "slurm";
pub const RUNS_SCRIPT: &str = "runs.sbatch";
pub const REPORT_SCRIPT: &str = "report.sbatch";
pub const SUBMISSION_FILE: &str = "submission.json";

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: `slurm.{key}` {reason}")]
    Config {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error(
        "cannot run `{command}`: {source} (Slurm's client commands must be installed and find the cluster: SLURM_CONF)"
    )]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` printed no job id: `{stdout}`")]
    NoJobId { command: String, stdout: String },
    #[error("{0}")]
    Lost(String),
}

/// The `[slurm]` table of a study config: the `#SBATCH` options of its jobs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmConfig {
    /// At most this many runs at once (`--array=0-(N-1)%max_parallel`); none = as many as Slurm grants.
    pub max_parallel: Option<usize>,
    /// `--account`, `--partition`: for the run tasks and the report job.
    pub account: Option<String>,
    pub partition: Option<String>,
    /// `--time` of each run task and of the report job (e.g. "02:00:00").
    pub time: Option<String>,
    /// `--cpus-per-task` of each run task and of the report job; the jobs run this many threads.
    pub cpus_per_task: Option<usize>,
    /// `--mem` of each run task (e.g. "16G").
    pub mem: Option<String>,
    /// GPUs of each run task (`--gres=gpu:N`); pair with `--device` or `[training] devices`.
    pub gpus: Option<usize>,
    /// More `#SBATCH` options for the run tasks, each as on sbatch's command line (e.g. "--qos=long").
    pub extra: Vec<String>,
    /// More `#SBATCH` options for the report job.
    pub report_extra: Vec<String>,
}

impl SlurmConfig {
    /// Checks every value (`path` names the study config in errors).
    pub fn validate(&self, path: &Path) -> Result<(), SlurmError> {
        let invalid = |key: &str, reason: &str| SlurmError::Config {
            path: path.to_path_buf(),
            key: key.to_string(),
            reason: reason.to_string(),
        };
        for (key, value) in [
            ("max_parallel", self.max_parallel),
            ("cpus_per_task", self.cpus_per_task),
            ("gpus", self.gpus),
        ] {
            if value == Some(0) {
                return Err(invalid(key, "must be positive"));
            }
        }
        let texts = [
            ("account", &self.account),
            ("partition", &self.partition),
            ("time", &self.time),
            ("mem", &self.mem),
        ];
        for (key, value) in texts {
            if let Some(value) = value
                && (value.trim().is_empty() || value.chars().any(char::is_whitespace))
            {
                return Err(invalid(key, "must be one word"));
            }
        }
        for (key, options) in [("extra", &self.extra), ("report_extra", &self.report_extra)] {
            for option in options {
                if !option.starts_with('-') || option.chars().any(char::is_control) {
                    return Err(invalid(
                        key,
                        &format!("`{option}` is not one sbatch option (like \"--qos=long\")"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn shared_options(&self) -> Vec<String> {
        let mut options = Vec::new();
        for (flag, value) in [
            ("account", &self.account),
            ("partition", &self.partition),
            ("time", &self.time),
        ] {
            if let Some(value) = value {
                options.push(format!("--{flag}={value}"));
            }
        }
        if let Some(cpus) = self.cpus_per_task {
            options.push(format!("--cpus-per-task={cpus}"));
        }
        options
    }

    /// The `#SBATCH` options of each run task.
    pub fn run_options(&self) -> Vec<String> {
        let mut options = self.shared_options();
        if let Some(mem) = &self.mem {
            options.push(format!("--mem={mem}"));
        }
        if let Some(gpus) = self.gpus {
            options.push(format!("--gres=gpu:{gpus}"));
        }
        options.extend(self.extra.iter().cloned());
        options
    }

    /// The `#SBATCH` options of the report job.
    pub fn report_options(&self) -> Vec<String> {
        let mut options = self.shared_options();
        options.extend(self.report_extra.iter().cloned());
        options
    }
}

/// `text` as one word for bash.
fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=,+@%".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// A batch script: the `#SBATCH` options, the thread count from Slurm's CPUs, then `command` (already quoted
/// words; the last may expand a variable).
pub fn batch_script(what: &str, options: &[String], command: &[String]) -> String {
    let mut text = String::from("#!/bin/bash\n");
    for option in options {
        text.push_str(&format!("#SBATCH {option}\n"));
    }
    text.push_str(&format!(
        "# Written by `weatherlens study --dispatch slurm`: {what}.\n\
         set -eu\n\
         # As many threads as CPUs granted (SLURM_CPUS_PER_TASK is set only with --cpus-per-task).\n\
         export RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-${{SLURM_CPUS_ON_NODE:-1}}}}\"\n\
         exec {}\n",
        command.join(" ")
    ));
    text
}

/// What `sbatch` was given, and the jobs it made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submission {
    pub study: String,
    pub array_job: u64,
    pub report_job: u64,
    /// Run names by array task index.
    pub runs: Vec<String>,
    /// The scripts, `submission.json` and the jobs' logs (`run-<array job>_<task>.out`, `report-<job>.out`).
    pub folder: PathBuf,
    /// Where the report job writes the report.
    pub report: PathBuf,
}

/// The study's command line for its jobs: `program` and the words before `--run-index` / `--report-only`
/// (global flags, `study --config FILE --runs DIR --nulls N`; absolute paths).
#[derive(Debug, Clone)]
pub struct JobCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl JobCommand {
    fn words(&self, last: &[&str]) -> Vec<String> {
        std::iter::once(shell_quote(&self.program.to_string_lossy()))
            .chain(self.args.iter().map(|a| shell_quote(a)))
            .chain(last.iter().map(|w| w.to_string()))
            .collect()
    }
}

fn run_command(program: &str, args: &[String]) -> Result<String, SlurmError> {
    let command = format!("{program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| SlurmError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(SlurmError::Failed {
            command,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).to_string())
}

/// `sbatch --parsable ARGS`: the new job's id (`--parsable` prints `id` or `id;cluster`).
fn sbatch(args: Vec<String>) -> Result<u64, SlurmError> {
    let mut all = vec!["--parsable".to_string()];
    all.extend(args);
    let stdout = run_command("sbatch", &all)?;
    stdout
        .trim()
        .split(';')
        .next()
        .and_then(|id| id.trim().parse().ok())
        .ok_or_else(|| SlurmError::NoJobId {
            command: format!("sbatch {}", all.join(" ")),
            stdout: stdout.trim().to_string(),
        })
}

/// Writes the two scripts into `runs/<study>/slurm/` and submits them: the runs as one array, the report
/// after them. `study_dir` is `runs/<study>`; `slurm` the study's `[slurm]` table.
pub fn submit(
    study: &str,
    study_dir: &Path,
    planned: &[PlannedRun],
    slurm: &SlurmConfig,
    command: &JobCommand,
) -> Result<Submission, SlurmError> {
    let cwd = std::env::current_dir()
        .map_err(|e| FileError::new("reading the working directory", Path::new("."), e))?;
    let study_dir = cwd.join(study_dir);
    let folder = study_dir.join(SLURM_FOLDER);
    files::create_dir_all(&folder)?;
    let runs_script = folder.join(RUNS_SCRIPT);
    let report_script = folder.join(REPORT_SCRIPT);
    let run_names: Vec<String> = planned.iter().map(|r| r.name.clone()).collect();
    files::write_atomic(
        &runs_script,
        batch_script(
            &format!(
                "array task k runs run k of study `{study}` ({})",
                run_names.join(", ")
            ),
            &slurm.run_options(),
            &command.words(&["--run-index", "\"$SLURM_ARRAY_TASK_ID\""]),
        )
        .as_bytes(),
    )?;
    files::write_atomic(
        &report_script,
        batch_script(
            &format!("the report of study `{study}` from its run folders"),
            &slurm.report_options(),
            &command.words(&["--report-only"]),
        )
        .as_bytes(),
    )?;
    let mut array = format!("--array=0-{}", planned.len().saturating_sub(1));
    if let Some(parallel) = slurm.max_parallel {
        array.push_str(&format!("%{parallel}"));
    }
    let at = |name: &str| folder.join(name).to_string_lossy().to_string();
    let array_job = sbatch(vec![
        format!("--job-name={study}"),
        format!("--chdir={}", cwd.display()),
        format!("--output={}", at("run-%A_%a.out")),
        array,
        runs_script.to_string_lossy().to_string(),
    ])?;
    let report_job = sbatch(vec![
        format!("--job-name={study}-report"),
        format!("--chdir={}", cwd.display()),
        format!("--output={}", at("report-%j.out")),
        format!("--dependency=afterany:{array_job}"),
        report_script.to_string_lossy().to_string(),
    ])
    .map_err(|e| {
        SlurmError::Lost(format!(
            "the runs are submitted (array job {array_job}) but the report job is not: {e}. When they \
             have ended, build the report with `study --report-only`"
        ))
    })?;
    let submission = Submission {
        study: study.to_string(),
        array_job,
        report_job,
        runs: run_names,
        report: study_dir.join("report"),
        folder,
    };
    let json = serde_json::to_vec_pretty(&submission).map_err(|e| {
        FileError::new(
            "serialising",
            &submission.folder.join(SUBMISSION_FILE),
            std::io::Error::other(e),
        )
    })?;
    files::write_atomic(&submission.folder.join(SUBMISSION_FILE), &json)?;
    Ok(submission)
}

/// One job (or array task) as `scontrol -o show job` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub job_id: u64,
    /// The array's job id, for an array task.
    pub array_job_id: Option<u64>,
    /// The array task ids this record stands for: one for a task that started, several for pending tasks
    /// (Slurm shows those as one record, `ArrayTaskId=2-3`); empty for a job outside an array.
    pub array_tasks: Vec<usize>,
    /// `JobState`: PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, ...
    pub state: String,
    /// `ExitCode=status:signal`.
    pub exit_code: Option<(i32, i32)>,
}

impl JobRecord {
    /// Whether the job has ended (whatever the result).
    pub fn ended(&self) -> bool {
        ended(&self.state)
    }
}

/// Whether a `JobState` is final.
pub fn ended(state: &str) -> bool {
    matches!(
        state,
        "COMPLETED"
            | "FAILED"
            | "CANCELLED"
            | "TIMEOUT"
            | "OUT_OF_MEMORY"
            | "NODE_FAIL"
            | "PREEMPTED"
            | "BOOT_FAIL"
            | "DEADLINE"
    )
}

/// The `Key=Value` fields of one `scontrol -o` line. Values may hold spaces (a path): a word that does not
/// start a new `Key=` continues the value before it.
fn fields(line: &str) -> BTreeMap<String, String> {
    let is_key = |key: &str| {
        key.starts_with(|c: char| c.is_ascii_alphabetic())
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_:/".contains(c))
    };
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for word in line.split_whitespace() {
        match word.split_once('=') {
            Some((key, value)) if is_key(key) => {
                if let Some((k, v)) = current.replace((key.to_string(), value.to_string())) {
                    out.insert(k, v);
                }
            }
            _ => {
                if let Some((_, v)) = current.as_mut() {
                    v.push(' ');
                    v.push_str(word);
                }
            }
        }
    }
    if let Some((k, v)) = current {
        out.insert(k, v);
    }
    out
}

/// Array task ids as Slurm writes them: `3`, `0-3`, `0-7:2`, `1,3,5-6`, optionally with `%limit`.
fn task_ids(text: &str) -> Option<Vec<usize>> {
    let text = text.split('%').next().unwrap_or(text);
    let mut ids = Vec::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once(':') {
            Some((range, step)) => (range, step.parse::<usize>().ok()?.max(1)),
            None => (part, 1),
        };
        match range.split_once('-') {
            Some((a, b)) => ids.extend((a.parse::<usize>().ok()?..=b.parse().ok()?).step_by(step)),
            None => ids.push(range.parse().ok()?),
        }
    }
    Some(ids)
}

/// The records of `scontrol -o show job` output (one line each; lines without a `JobId` are skipped).
pub fn parse_jobs(text: &str) -> Vec<JobRecord> {
    text.lines()
        .filter_map(|line| {
            let f = fields(line);
            let job_id = f.get("JobId")?.parse().ok()?;
            Some(JobRecord {
                job_id,
                array_job_id: f.get("ArrayJobId").and_then(|v| v.parse().ok()),
                array_tasks: f
                    .get("ArrayTaskId")
                    .and_then(|v| task_ids(v))
                    .unwrap_or_default(),
                state: f
                    .get("JobState")
                    .cloned()
                    .unwrap_or_else(|| "UNKNOWN".into()),
                exit_code: f.get("ExitCode").and_then(|v| {
                    let (status, signal) = v.split_once(':')?;
                    Some((status.parse().ok()?, signal.parse().ok()?))
                }),
            })
        })
        .collect()
}

/// `scontrol -o show job ID`; `None` when Slurm no longer knows the job.
fn show_job(id: u64) -> Result<Option<Vec<JobRecord>>, SlurmError> {
    match run_command(
        "scontrol",
        &["-o".into(), "show".into(), "job".into(), id.to_string()],
    ) {
        Ok(text) => Ok(Some(parse_jobs(&text))),
        Err(SlurmError::Failed { stderr, .. }) if stderr.contains("Invalid job id") => Ok(None),
        Err(e) => Err(e),
    }
}

/// How one job of the study ended.
#[derive(Debug, Clone, Serialize)]
pub struct JobEnd {
    /// The run's name, or `report`.
    pub name: String,
    /// The array task index (runs only).
    pub task: Option<usize>,
    pub job_id: Option<u64>,
    /// The final `JobState`, or `UNKNOWN` when Slurm forgot the job before it was seen to end.
    pub state: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
}

impl JobEnd {
    pub fn completed(&self) -> bool {
        self.state == "COMPLETED"
    }
}

/// The study's jobs once the report job has ended.
#[derive(Debug, Clone, Serialize)]
pub struct StudyJobs {
    pub runs: Vec<JobEnd>,
    pub report: JobEnd,
}

impl StudyJobs {
    /// Every run task and the report job COMPLETED.
    pub fn succeeded(&self) -> bool {
        self.report.completed() && self.runs.iter().all(JobEnd::completed)
    }

    /// One line per job: name, task, job id, state, exit code.
    pub fn table(&self) -> String {
        let mut text = format!(
            "{:<24} {:>5} {:>8}  {:<14} exit\n",
            "job", "task", "job id", "state"
        );
        for job in self.runs.iter().chain(std::iter::once(&self.report)) {
            let show = |v: Option<String>| v.unwrap_or_else(|| "-".into());
            text.push_str(&format!(
                "{:<24} {:>5} {:>8}  {:<14} {}\n",
                job.name,
                show(job.task.map(|t| t.to_string())),
                show(job.job_id.map(|t| t.to_string())),
                job.state,
                match (job.exit_code, job.signal) {
                    (Some(code), Some(signal)) if signal != 0 =>
                        format!("{code} (signal {signal})"),
                    (Some(code), _) => code.to_string(),
                    _ => "-".into(),
                }
            ));
        }
        text
    }
}

/// Takes the array tasks' states from `records` into `runs`; a run already seen to end keeps its state unless
/// `overwrite`. Logs each run as it ends.
fn update_runs(runs: &mut [JobEnd], array_job: u64, records: &[JobRecord], overwrite: bool) {
    for record in records.iter().filter(|r| r.array_job_id == Some(array_job)) {
        for &k in &record.array_tasks {
            let Some(run) = runs.get_mut(k) else { continue };
            if ended(&run.state) && !overwrite {
                continue;
            }
            if record.ended() && run.state != record.state {
                tracing::info!(
                    "run `{}` (task {k}): {}{}",
                    run.name,
                    record.state,
                    record
                        .exit_code
                        .map_or(String::new(), |(c, _)| format!(", exit code {c}"))
                );
            }
            run.state = record.state.clone();
            run.job_id = Some(record.job_id);
            run.exit_code = record.exit_code.map(|(c, _)| c);
            run.signal = record.exit_code.map(|(_, s)| s);
        }
    }
}

/// One look at the jobs: updates `runs`, and returns the report job's end once it has ended.
fn poll_once(submission: &Submission, runs: &mut [JobEnd]) -> Result<Option<JobEnd>, SlurmError> {
    let records = show_job(submission.array_job)?.unwrap_or_default();
    update_runs(runs, submission.array_job, &records, false);
    let Some(records) = show_job(submission.report_job)? else {
        return Err(SlurmError::Lost(format!(
            "Slurm no longer knows the report job {} (its log is in {})",
            submission.report_job,
            submission.folder.display()
        )));
    };
    Ok(records
        .into_iter()
        .find(|r| r.job_id == submission.report_job && r.ended())
        .map(|r| JobEnd {
            name: "report".into(),
            task: None,
            job_id: Some(r.job_id),
            state: r.state,
            exit_code: r.exit_code.map(|(c, _)| c),
            signal: r.exit_code.map(|(_, s)| s),
        }))
}

/// Follows the jobs of `submission` until the report job has ended (polling `scontrol` every `poll`); logs each
/// run task as it ends. The jobs go on if this process is stopped.
pub fn wait(submission: &Submission, poll: Duration) -> Result<StudyJobs, SlurmError> {
    let mut runs: Vec<JobEnd> = submission
        .runs
        .iter()
        .enumerate()
        .map(|(k, name)| JobEnd {
            name: name.clone(),
            task: Some(k),
            job_id: None,
            state: "UNKNOWN".into(),
            exit_code: None,
            signal: None,
        })
        .collect();
    // Some failed `scontrol` calls in a row are tolerated (a busy or restarting controller).
    let mut failures = 0;
    loop {
        match poll_once(submission, &mut runs) {
            Ok(Some(report)) => {
                // The report job starts only after every task has ended, so the tasks' records are final now:
                // read them once more in case a task ended between the two calls of the last look.
                if let Some(records) = show_job(submission.array_job)? {
                    update_runs(&mut runs, submission.array_job, &records, true);
                }
                return Ok(StudyJobs { runs, report });
            }
            Ok(None) => failures = 0,
            Err(e @ SlurmError::Lost(_)) => return Err(e),
            Err(e) => {
                failures += 1;
                if failures >= 30 {
                    return Err(e);
                }
                tracing::warn!("{e} (trying again)");
            }
        }
        std::thread::sleep(poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `scontrol -o show job 23` on this project's one-node Slurm 22.05.8, task 2 having run `exit 3`
    /// (abridged: the fields between are as Slurm prints them).
    const FINISHED: &str = "\
JobId=23 ArrayJobId=23 ArrayTaskId=3 JobName=task.sh UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901757 Nice=0 Account=(null) QOS=(null) JobState=COMPLETED Reason=None Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:01 TimeLimit=UNLIMITED Command=/tmp/slurm verify/task.sh WorkDir=/tmp/slurm verify StdErr=/tmp/slurm verify/run-23_3.out TRES=cpu=2,mem=1M,node=1,billing=2 Socks/Node=* NtasksPerN:B:S:C=0:0:*:*
JobId=27 ArrayJobId=23 ArrayTaskId=2 JobName=task.sh UserId=root(0) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0 RunTime=00:00:01
JobId=26 ArrayJobId=23 ArrayTaskId=1 JobName=task.sh UserId=root(0) JobState=COMPLETED Reason=None ExitCode=0:0
JobId=25 ArrayJobId=23 ArrayTaskId=0 JobName=task.sh UserId=root(0) JobState=FAILED Reason=JobLaunchFailure ExitCode=0:9
";

    #[test]
    fn scontrol_records_give_each_task_its_state_and_exit_code() {
        let jobs = parse_jobs(FINISHED);
        assert_eq!(jobs.len(), 4);
        assert_eq!(
            jobs[0],
            JobRecord {
                job_id: 23,
                array_job_id: Some(23),
                array_tasks: vec![3],
                state: "COMPLETED".into(),
                exit_code: Some((0, 0)),
            }
        );
        assert_eq!(jobs[1].array_tasks, [2]);
        assert_eq!(jobs[1].state, "FAILED");
        assert_eq!(jobs[1].exit_code, Some((3, 0)));
        assert_eq!(jobs[3].exit_code, Some((0, 9)), "killed by SIGKILL");
        assert!(jobs.iter().all(JobRecord::ended));
        // A value with spaces stays whole, and the fields after it are still found.
        let f = fields(FINISHED.lines().next().unwrap());
        assert_eq!(f["Command"], "/tmp/slurm verify/task.sh");
        assert_eq!(f["TRES"], "cpu=2,mem=1M,node=1,billing=2");
        assert_eq!(f["NtasksPerN:B:S:C"], "0:0:*:*");
    }

    #[test]
    fn pending_tasks_are_one_record_over_a_range() {
        let text = "JobId=39 ArrayJobId=39 ArrayTaskId=2-3 JobName=x JobState=PENDING Reason=Resources ExitCode=0:0\n\
                    JobId=41 ArrayJobId=39 ArrayTaskId=1 JobName=x JobState=RUNNING Reason=None ExitCode=0:0\n";
        let jobs = parse_jobs(text);
        assert_eq!(jobs[0].array_tasks, [2, 3]);
        assert!(!jobs[0].ended() && !jobs[1].ended());
        assert_eq!(task_ids("0-3%1").unwrap(), [0, 1, 2, 3]);
        assert_eq!(task_ids("1,3,5-6").unwrap(), [1, 3, 5, 6]);
        assert_eq!(task_ids("0-7:2").unwrap(), [0, 2, 4, 6]);
        assert!(task_ids("N/A").is_none());
        // A job outside an array.
        let report = parse_jobs("JobId=24 JobName=report.sh JobState=COMPLETED ExitCode=0:0");
        assert!(report[0].array_tasks.is_empty() && report[0].array_job_id.is_none());
        assert!(parse_jobs("slurm_load_jobs error: Invalid job id specified").is_empty());
    }

    #[test]
    fn scripts_carry_the_options_the_thread_count_and_a_quoted_command() {
        let slurm: SlurmConfig = toml::from_str(
            r#"
            max_parallel = 2
            account = "climate"
            partition = "gpu"
            time = "02:00:00"
            cpus_per_task = 8
            mem = "16G"
            gpus = 1
            extra = ["--qos=long"]
            report_extra = ["--qos=short"]
            "#,
        )
        .unwrap();
        slurm.validate(Path::new("s.toml")).unwrap();
        assert_eq!(
            slurm.run_options(),
            [
                "--account=climate",
                "--partition=gpu",
                "--time=02:00:00",
                "--cpus-per-task=8",
                "--mem=16G",
                "--gres=gpu:1",
                "--qos=long"
            ]
        );
        assert_eq!(
            slurm.report_options(),
            [
                "--account=climate",
                "--partition=gpu",
                "--time=02:00:00",
                "--cpus-per-task=8",
                "--qos=short"
            ]
        );
        let command = JobCommand {
            program: PathBuf::from("/opt/weather lens/weatherlens"),
            args: vec!["study".into(), "--config".into(), "/s/it's.toml".into()],
        };
        let script = batch_script(
            "test",
            &slurm.run_options(),
            &command.words(&["--run-index", "\"$SLURM_ARRAY_TASK_ID\""]),
        );
        assert!(script.starts_with("#!/bin/bash\n#SBATCH --account=climate\n"));
        assert!(script.contains("#SBATCH --gres=gpu:1\n"));
        assert!(script.contains(
            "export RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-${SLURM_CPUS_ON_NODE:-1}}\"\n"
        ));
        assert!(script.ends_with(
            "exec '/opt/weather lens/weatherlens' study --config '/s/it'\\''s.toml' --run-index \"$SLURM_ARRAY_TASK_ID\"\n"
        ));
        // bash reads the quoted words back as they were.
        let echoed = Command::new("bash")
            .arg("-c")
            .arg(format!("printf '%s\\n' {}", command.words(&[]).join(" ")))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(echoed.stdout).unwrap(),
            "/opt/weather lens/weatherlens\nstudy\n--config\n/s/it's.toml\n"
        );
    }

    #[test]
    fn bad_slurm_values_name_the_key() {
        let check = |text: &str| {
            toml::from_str::<SlurmConfig>(text)
                .unwrap()
                .validate(Path::new("s.toml"))
                .unwrap_err()
                .to_string()
        };
        assert!(check("max_parallel = 0").contains("slurm.max_parallel"));
        assert!(check("partition = \"a b\"").contains("slurm.partition"));
        let err = check("extra = [\"qos=long\"]");
        assert!(
            err.contains("s.toml") && err.contains("slurm.extra"),
            "{err}"
        );
        assert!(toml::from_str::<SlurmConfig>("acount = \"x\"").is_err());
    }

    #[test]
    fn the_study_jobs_succeed_only_when_every_job_completed() {
        let job = |name: &str, state: &str, code: i32| JobEnd {
            name: name.into(),
            task: None,
            job_id: Some(1),
            state: state.into(),
            exit_code: Some(code),
            signal: Some(0),
        };
        let mut jobs = StudyJobs {
            runs: vec![job("a", "COMPLETED", 0), job("b", "COMPLETED", 0)],
            report: job("report", "COMPLETED", 0),
        };
        assert!(jobs.succeeded());
        jobs.runs[1] = job("b", "FAILED", 1);
        assert!(!jobs.succeeded());
        assert!(jobs.table().contains("FAILED"));
    }
}
