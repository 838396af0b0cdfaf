//! `weatherlens study --dispatch slurm --wait` on a real Slurm cluster: two micro studies of the tiny config.
//!
//! Needs a running cluster that `sbatch`/`scontrol` reach, e.g. this project's one-node cluster:
//!
//! ```sh
//! scripts/slurm-local.sh start && eval "$(scripts/slurm-local.sh env)"
//! cargo test --release --workspace --test slurm -- --ignored
//! scripts/slurm-local.sh stop
//! ```
//!
//! (`.ci/run` does this.) Each job's state is checked with `scontrol` itself, independently of what
//! weatherlens reports. Without a cluster, a stand-in `sbatch` and `scontrol` (shell scripts that log their
//! arguments and print recorded answers) check what is submitted and how the job states are read.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn weatherlens(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weatherlens"))
        .args(args)
        .current_dir(dir)
        .env("HDF5_USE_FILE_LOCKING", "FALSE")
        .output()
        .unwrap()
}

/// Array task -> (JobState, ExitCode) of a job array, from `scontrol -o show job ID`.
fn task_states(array_job: u64) -> BTreeMap<usize, (String, String)> {
    let out = Command::new("scontrol")
        .args(["-o", "show", "job", &array_job.to_string()])
        .output()
        .expect("scontrol");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut states = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{key}=")))
                .map(str::to_string)
        };
        if let (Some(task), Some(state), Some(exit)) =
            (field("ArrayTaskId"), field("JobState"), field("ExitCode"))
        {
            states.insert(task.parse().expect("one task per record"), (state, exit));
        }
    }
    states
}

/// (JobState, ExitCode) of one job.
fn job_state(job: u64) -> (String, String) {
    let out = Command::new("scontrol")
        .args(["-o", "show", "job", &job.to_string()])
        .output()
        .expect("scontrol");
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |key: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
            .unwrap_or("")
            .to_string()
    };
    (field("JobState"), field("ExitCode"))
}

/// Writes an executable shell script.
fn script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

#[test]
#[ignore = "needs a Slurm cluster: scripts/slurm-local.sh start, then run with --ignored"]
fn studies_run_as_slurm_job_arrays_and_report_their_failures() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    fs::write(dir.join("tiny.toml"), include_str!("configs/tiny.toml")).unwrap();
    // The micro study's two good runs, two tasks at a time on one CPU each (the data they share is made once:
    // both start together and one waits for the other).
    let study = include_str!("configs/study-tiny.toml");
    let good_runs = &study[..study.find("[[runs]]\nname = \"broken\"").unwrap()];
    fs::write(
        dir.join("two.toml"),
        format!("{good_runs}\n[slurm]\nmax_parallel = 2\ncpus_per_task = 1\ntime = \"00:20:00\"\n"),
    )
    .unwrap();
    fs::write(dir.join("three.toml"), study).unwrap();
    let submission = || json(&dir.join("runs/study-tiny/slurm/submission.json"));
    let report = dir.join("runs/study-tiny/report");

    // 1. Two runs: both tasks COMPLETED, the report is written, --wait exits 0.
    let started = std::time::Instant::now();
    let out = weatherlens(
        dir,
        &[
            "study",
            "--config",
            "two.toml",
            "--dispatch",
            "slurm",
            "--wait",
            "--nulls",
            "10",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    eprintln!(
        "two-run study on Slurm: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let first = submission();
    let array_job = first["array_job"].as_u64().unwrap();
    let states = task_states(array_job);
    assert_eq!(states.len(), 2, "{states:?}");
    for (task, (state, exit)) in &states {
        assert_eq!(
            (state.as_str(), exit.as_str()),
            ("COMPLETED", "0:0"),
            "task {task}"
        );
    }
    assert_eq!(
        job_state(first["report_job"].as_u64().unwrap()).0,
        "COMPLETED"
    );
    let scripts = dir.join("runs/study-tiny/slurm");
    let runs_script = fs::read_to_string(scripts.join("runs.sbatch")).unwrap();
    assert!(
        runs_script.contains("#SBATCH --cpus-per-task=1\n"),
        "{runs_script}"
    );
    assert!(runs_script.contains("--run-index \"$SLURM_ARRAY_TASK_ID\""));
    assert!(scripts.join(format!("run-{array_job}_1.out")).is_file());
    let written = json(&report.join("report.json"));
    let runs = written["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r["error"].is_null()), "{runs:?}");
    assert!(report.join("report.md").is_file() && report.join("report.html").is_file());
    // --wait printed the report.
    assert!(String::from_utf8_lossy(&out.stdout).contains("study-tiny"));

    // 2. The same study with a run made to fail: its task FAILED, the others COMPLETED (their finished runs
    // skipped), the report lists the failure, and --wait exits non-zero.
    let started = std::time::Instant::now();
    let out = weatherlens(
        dir,
        &[
            "study",
            "--config",
            "three.toml",
            "--dispatch",
            "slurm",
            "--wait",
            "--nulls",
            "10",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "three-run study on Slurm (two finished, one failing): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("broken FAILED"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let second = submission();
    let states = task_states(second["array_job"].as_u64().unwrap());
    assert_eq!(states.len(), 3, "{states:?}");
    assert_eq!(states[&0].0, "COMPLETED");
    assert_eq!(states[&1].0, "COMPLETED");
    assert_eq!(
        (states[&2].0.as_str(), states[&2].1.as_str()),
        ("FAILED", "1:0")
    );
    assert_eq!(
        job_state(second["report_job"].as_u64().unwrap()).0,
        "COMPLETED"
    );
    let written = json(&report.join("report.json"));
    let runs = written["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    for run in &runs[..2] {
        assert!(run["error"].is_null());
        assert_eq!(
            run["skipped"],
            serde_json::json!(["train", "evaluate", "probe", "analyze", "jacobian"]),
            "a finished run is not run again: {run}"
        );
    }
    assert!(
        runs[2]["error"].as_str().unwrap().contains("test split"),
        "{}",
        runs[2]
    );
    assert!(
        fs::read_to_string(report.join("report.md"))
            .unwrap()
            .contains("**failed**")
    );

    // 3. --report-only rebuilds the same report from the run folders alone, with no Slurm involved.
    fs::remove_dir_all(&report).unwrap();
    let out = weatherlens(
        dir,
        &[
            "study",
            "--config",
            "three.toml",
            "--report-only",
            "--nulls",
            "10",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rebuilt = json(&report.join("report.json"));
    assert_eq!(rebuilt["runs"], written["runs"]);
    assert_eq!(rebuilt["scorecard"], written["scorecard"]);
}

#[test]
fn dispatch_submits_an_array_and_a_report_after_it_and_reads_their_states() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    fs::write(dir.join("tiny.toml"), include_str!("configs/tiny.toml")).unwrap();
    fs::write(
        dir.join("study.toml"),
        format!(
            "{}\n[slurm]\nmax_parallel = 2\ncpus_per_task = 2\npartition = \"debug\"\ngpus = 1\n",
            include_str!("configs/study-tiny.toml")
        ),
    )
    .unwrap();
    // sbatch logs its arguments and answers 100, then 101; scontrol answers as Slurm 22.05 does once the
    // array (100: tasks 0 and 1 COMPLETED, task 2 as $TASK_2) and the report job (101) have ended.
    let bin = dir.join("bin");
    fs::create_dir(&bin).unwrap();
    script(
        &bin.join("sbatch"),
        "#!/bin/bash\necho \"$*\" >> \"$SBATCH_LOG\"\necho $(( $(wc -l < \"$SBATCH_LOG\") + 99 ))\n",
    );
    script(
        &bin.join("scontrol"),
        "#!/bin/bash\n[[ $1 == -o && $2 == show && $3 == job ]] || exit 2\ncase $4 in\n\
         100) echo \"JobId=102 ArrayJobId=100 ArrayTaskId=0 JobName=study-tiny JobState=COMPLETED Reason=None ExitCode=0:0\"\n\
         echo \"JobId=103 ArrayJobId=100 ArrayTaskId=1 JobName=study-tiny JobState=COMPLETED Reason=None ExitCode=0:0\"\n\
         echo \"JobId=100 ArrayJobId=100 ArrayTaskId=2 JobName=study-tiny JobState=$TASK_2 ExitCode=0:0\" ;;\n\
         101) echo \"JobId=101 JobName=study-tiny-report JobState=COMPLETED Reason=None ExitCode=0:0\" ;;\n\
         *) echo \"slurm_load_jobs error: Invalid job id specified\" >&2; exit 1 ;;\nesac\n",
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dispatch = |task_2: &str| {
        let _ = fs::remove_file(dir.join("sbatch.log"));
        Command::new(env!("CARGO_BIN_EXE_weatherlens"))
            .args([
                "study",
                "--config",
                "study.toml",
                "--dispatch",
                "slurm",
                "--wait",
            ])
            .current_dir(dir)
            .env("PATH", &path)
            .env("SBATCH_LOG", dir.join("sbatch.log"))
            .env("TASK_2", task_2)
            .output()
            .unwrap()
    };

    let out = dispatch("COMPLETED");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let log = fs::read_to_string(dir.join("sbatch.log")).unwrap();
    let calls: Vec<&str> = log.lines().collect();
    let slurm_dir = dir.join("runs/study-tiny/slurm");
    let slurm_dir = slurm_dir.canonicalize().unwrap();
    assert_eq!(calls.len(), 2, "{log}");
    for option in [
        "--parsable",
        "--job-name=study-tiny",
        "--array=0-2%2",
        &format!("--output={}/run-%A_%a.out", slurm_dir.display()),
        &format!("--chdir={}", dir.canonicalize().unwrap().display()),
    ] {
        assert!(
            calls[0].split(' ').any(|w| w == option),
            "{option} in {}",
            calls[0]
        );
    }
    assert!(calls[0].ends_with("runs.sbatch"), "{}", calls[0]);
    assert!(
        calls[1].contains("--dependency=afterany:100 "),
        "{}",
        calls[1]
    );
    assert!(calls[1].ends_with("report.sbatch"), "{}", calls[1]);
    let runs_script = fs::read_to_string(slurm_dir.join("runs.sbatch")).unwrap();
    for line in [
        "#SBATCH --partition=debug\n",
        "#SBATCH --cpus-per-task=2\n",
        "#SBATCH --gres=gpu:1\n",
    ] {
        assert!(runs_script.contains(line), "{line} in {runs_script}");
    }
    assert!(runs_script.contains(" --runs runs --nulls 20 --run-index \"$SLURM_ARRAY_TASK_ID\"\n"));
    let report_script = fs::read_to_string(slurm_dir.join("report.sbatch")).unwrap();
    assert!(
        !report_script.contains("--gres"),
        "the report job needs no GPU: {report_script}"
    );
    assert!(
        report_script.contains(" --report-only\n"),
        "{report_script}"
    );
    let submission = json(&slurm_dir.join("submission.json"));
    assert_eq!(submission["array_job"], 100);
    assert_eq!(submission["report_job"], 101);
    assert_eq!(
        submission["runs"],
        serde_json::json!(["gnn", "shared", "broken"])
    );
    for (run, task, job) in [("gnn", 0, 102), ("shared", 1, 103), ("broken", 2, 100)] {
        let row = stderr
            .lines()
            .find(|l| l.starts_with(run))
            .unwrap_or_else(|| panic!("no row for {run}: {stderr}"));
        let words: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            words[1..4],
            [task.to_string(), job.to_string(), "COMPLETED".into()],
            "{row}"
        );
    }

    // A failed task: --wait exits 1 and names it.
    let out = dispatch("FAILED");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("broken FAILED"), "{stderr}");

    // Without sbatch: a clear error, not a panic.
    let out = Command::new(env!("CARGO_BIN_EXE_weatherlens"))
        .args(["study", "--config", "study.toml", "--dispatch", "slurm"])
        .current_dir(dir)
        .env("PATH", dir.join("nowhere"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot run `sbatch") && stderr.contains("SLURM_CONF"),
        "{stderr}"
    );
}
